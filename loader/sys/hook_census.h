#pragma once
// What runs on a device's TC hook before ipsnat's filter and may end classification there, so
// that ipsnat never sees the packet: tcx programs (the kernel runs them before every clsact
// filter) and clsact filters with a lower priority number than TcHook::kPriority. Any of them
// returning "pass" (TC_ACT_OK, TCX_PASS) bypasses the leak guard or the reverse path.
#include <string>
#include <vector>

#include "sys/tc_hook.h"

namespace ipsnat::sys {

// One description per program or filter, e.g. "tcx program 42 (cil_to_netdev)",
// "filter prio 1 matchall". Empty when nothing runs first (or the kernel has no tcx).
std::vector<std::string> programs_before_ipsnat(int ifindex, TcDirection dir);

// "eth0 egress: filter prio 1 matchall runs before ipsnat and may end classification (...)".
std::vector<std::string> warnings_for_programs_before_ipsnat(int ifindex, const std::string& dev);

}  // namespace ipsnat::sys
