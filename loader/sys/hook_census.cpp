#include "sys/hook_census.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>

#include "sys/bpf_prog.h"
#include "sys/rtnl.h"

namespace ipsnat::sys {

namespace {

// tcx attach points (Linux 6.6, enum bpf_attach_type); the libbpf 1.1 headers this builds with
// may predate them. The values are uapi and never change.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

std::string prog_label(uint32_t id) {
  std::string label = "tcx program " + std::to_string(id);
  if (std::string name = bpf_prog_name(id); !name.empty()) label += " (" + name + ")";
  return label;
}

}  // namespace

std::vector<std::string> programs_before_ipsnat(int ifindex, TcDirection dir) {
  std::vector<std::string> out;
  bool ingress = dir == TcDirection::kIngress;
  uint32_t ids[64], count = 64, flags = 0;
  // EINVAL: a kernel without tcx (nothing can run there).
  if (bpf_prog_query(ifindex, static_cast<bpf_attach_type>(ingress ? kBpfTcxIngress : kBpfTcxEgress), 0, &flags, ids,
                     &count) == 0)
    for (uint32_t i = 0; i < count; ++i) out.push_back(prog_label(ids[i]));
  for (const auto& f : sys::tc_filters(ifindex, ingress))
    if (f.prio < TcHook::kPriority)
      out.push_back("filter prio " + std::to_string(f.prio) + " " + f.kind + (f.bpf_name.empty() ? "" : " " + f.bpf_name));
  return out;
}

std::vector<std::string> warnings_for_programs_before_ipsnat(int ifindex, const std::string& dev) {
  std::vector<std::string> out;
  for (auto [dir, label] : {std::pair{TcDirection::kIngress, "ingress"}, std::pair{TcDirection::kEgress, "egress"}})
    for (const auto& p : programs_before_ipsnat(ifindex, dir))
      out.push_back(dev + " " + label + ": " + p +
                    " runs before ipsnat and may end classification (a pass verdict skips ipsnat's leak guard and "
                    "reverse translation)");
  return out;
}

}  // namespace ipsnat::sys
