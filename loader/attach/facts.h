#pragma once
// What an attach plans from: the host as the kernel reports it (links, addresses, routes, the
// SPD), read once under the pin root's lock; and the capabilities attach needs. The planner that
// turns these facts into steps (attach/plan.h) is pure.
#include <string>

#include "attach/plan.h"

namespace ipsnat::attach {

// Reads links, addresses, the SPD and routes (needs CAP_NET_ADMIN for the SPD).
HostFacts gather_facts(const std::string& dev, const Settings& settings);
// Throws UserError naming the first missing capability.
void require_privileges(bool need_bpf);

}  // namespace ipsnat::attach
