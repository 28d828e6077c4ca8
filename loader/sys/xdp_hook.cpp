#include "sys/xdp_hook.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sys/bpf_prog.h"
#include "util/error.h"

namespace ipsnat::sys {
namespace {

uint32_t attached_id(int ifindex) {
  uint32_t id = 0;
  if (bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id) != 0) return 0;
  return id;
}

}  // namespace

uint32_t XdpHook::ours_or_throw(const std::string& dev) const {
  uint32_t id = attached_id(ifindex_);
  if (id && bpf_prog_name(id) != prog_name_)
    throw UserError("\"" + dev + "\" has another XDP program (id " + std::to_string(id) + ")",
                    "remove it, or attach without --xdp-prefilter");
  return id;
}

void XdpHook::attach(int prog_fd, const std::string& dev) const {
  ours_or_throw(dev);
  int err = bpf_xdp_attach(ifindex_, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
  if (err == -EOPNOTSUPP || err == -EINVAL)
    throw UserError("the driver of \"" + dev + "\" has no native XDP (" + std::strerror(-err) +
                        "); generic XDP would also see the packets the kernel decrypted",
                    "attach without --xdp-prefilter");
  if (err) throw SysError("attaching the XDP program", err);
}

bool XdpHook::detach() const {
  uint32_t id = attached_id(ifindex_);
  if (!id || bpf_prog_name(id) != prog_name_) return false;
  int err = bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr);
  if (err && err != -ENODEV) throw SysError("removing the XDP program", err);
  return true;
}

}  // namespace ipsnat::sys
