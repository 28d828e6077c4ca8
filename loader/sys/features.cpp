#include "sys/features.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "maps/common.h"
#include "util/error.h"
#include "util/fd.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

namespace ipsnat::sys {
namespace {

unsigned long long effective_caps() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

std::pair<int, int> kernel_version() {
  utsname u{};
  uname(&u);
  int major = 0, minor = 0;
  std::sscanf(u.release, "%d.%d", &major, &minor);
  return {major, minor};
}

Feature probe_bpf_syscall() {
  Feature f{"bpf-syscall", false, true, ""};
  if (Fd probe(bpf_map_create(BPF_MAP_TYPE_ARRAY, "ipsnat_probe", 4, 4, 1, nullptr)); probe) {
    f.ok = true;
    f.detail = "map creation works";
  } else {
    f.detail = std::string("bpf(BPF_MAP_CREATE) failed: ") + strerror(errno) +
               " (needs CAP_BPF and a kernel with CONFIG_BPF_SYSCALL)";
  }
  return f;
}

Feature probe_prog(const char* name, bpf_prog_type type, bool required) {
  Feature f{name, false, required, ""};
  int r = libbpf_probe_bpf_prog_type(type, nullptr);
  f.ok = r == 1;
  f.detail = f.ok ? "loadable" : "the kernel refuses this program type";
  return f;
}

Feature probe_helper(const char* name, bpf_prog_type type, bpf_func_id helper, bool required) {
  Feature f{name, false, required, ""};
  f.ok = libbpf_probe_bpf_helper(type, helper, nullptr) == 1;
  f.detail = f.ok ? "available" : "helper missing in this kernel";
  return f;
}

}  // namespace

bool has_capability(int cap) { return (effective_caps() >> cap) & 1ULL; }

std::vector<Feature> FeatureProbe::probe() const {
  std::vector<Feature> out;
  bool net_admin = has_capability(CAP_NET_ADMIN);
  bool bpf = has_capability(CAP_BPF) || has_capability(CAP_SYS_ADMIN);
  out.push_back({"cap-net-admin", net_admin, true,
                 net_admin ? "present" : "missing: run as root or grant CAP_NET_ADMIN"});
  out.push_back({"cap-bpf", bpf, true, bpf ? "present" : "missing: run as root or grant CAP_BPF"});

  bool btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  out.push_back({"kernel-btf", btf, true,
                 btf ? "/sys/kernel/btf/vmlinux" : "missing: kernel needs CONFIG_DEBUG_INFO_BTF=y"});

  struct statfs fs {};
  bool bpffs = statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
  out.push_back({"bpffs", bpffs, true,
                 bpffs ? "/sys/fs/bpf is a BPF filesystem"
                       : "/sys/fs/bpf is not a BPF filesystem: mount -t bpf bpf /sys/fs/bpf "
                         "(under 'ip netns exec' use nsenter --net=/run/netns/NS instead)"});

  if (bpf) {
    out.push_back(probe_bpf_syscall());
    out.push_back(probe_prog("prog-sched-cls", BPF_PROG_TYPE_SCHED_CLS, true));
    out.push_back(probe_prog("prog-lwt-xmit", BPF_PROG_TYPE_LWT_XMIT, false));
    out.push_back(probe_helper("helper-xfrm-state", BPF_PROG_TYPE_SCHED_CLS,
                               BPF_FUNC_skb_get_xfrm_state, false));
  }

  auto [major, minor] = kernel_version();
  bool tcx = major > 6 || (major == 6 && minor >= 6);
  out.push_back({"tcx", tcx, false,
                 tcx ? "kernel >= 6.6: tcx links" : "kernel < 6.6: legacy clsact filters are used"});

  Fd nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_XFRM));
  out.push_back({"netlink-xfrm", nl.valid(), true,
                 nl ? "NETLINK_XFRM socket opens"
                         : std::string("cannot open NETLINK_XFRM: ") + strerror(errno) +
                               " (load the xfrm_user module)"});
  return out;
}

void FeatureProbe::require_all(const std::vector<Feature>& features) {
  for (const auto& f : features) {
    if (f.required && !f.ok) throw UserError(f.name + " " + f.detail, "see: ipsnat check");
  }
}

nlohmann::json FeatureProbe::to_json(const std::vector<Feature>& features) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& f : features)
    arr.push_back({{"name", f.name}, {"ok", f.ok}, {"required", f.required}, {"detail", f.detail}});
  return arr;
}

}  // namespace ipsnat::sys
