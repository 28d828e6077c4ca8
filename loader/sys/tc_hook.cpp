#include "sys/tc_hook.h"

#include <bpf/libbpf.h>

#include <cerrno>

#include "sys/rtnl.h"
#include "util/error.h"

namespace ipsnat::sys {
namespace {

bpf_tc_hook make_hook(int ifindex, TcDirection dir) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = dir == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return hook;
}

bpf_tc_opts make_opts(int prog_fd) {
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = TcHook::kHandle;
  opts.priority = TcHook::kPriority;
  opts.prog_fd = prog_fd;
  return opts;
}

}  // namespace

void TcHook::attach(int prog_fd, bool clsact_seen) const {
  auto hook = make_hook(ifindex_, dir_);
  // Created only where it is missing: on an existing one the kernel refuses with an extack that
  // libbpf logs ("Exclusivity flag on"), a line in the host process's log on every re-plan.
  int err = clsact_seen || has_clsact(ifindex_) ? 0 : bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) throw SysError("creating clsact qdisc", err);
  auto opts = make_opts(prog_fd);
  opts.flags = BPF_TC_F_REPLACE;
  err = bpf_tc_attach(&hook, &opts);
  if (err) throw SysError("attaching TC program", err);
}

bool TcHook::detach() const {
  auto hook = make_hook(ifindex_, dir_);
  auto opts = make_opts(0);
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return false;  // ENODEV: the device is gone
  if (err) throw SysError("detaching TC program", err);
  return true;
}

uint32_t TcHook::query() const {
  auto hook = make_hook(ifindex_, dir_);
  auto opts = make_opts(0);
  if (bpf_tc_query(&hook, &opts) != 0) return 0;
  return opts.prog_id;
}

}  // namespace ipsnat::sys
