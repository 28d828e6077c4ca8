#pragma once
// `ipsnat attach` / `ipsnat detach` end to end: facts, plan, programs and pins, applier, state,
// SPD maps. The CLI verbs are thin wrappers around these.
#include <string>

#include <nlohmann/json.hpp>

#include "attach/plan.h"

namespace ipsnat::attach {

struct AttachRequest {
  std::string dev;
  Settings settings;
  std::string pin_root;  // resolved
  bool dry_run = false;
};

// Reads links, addresses, the SPD and routes (needs CAP_NET_ADMIN for the SPD).
HostFacts gather_facts(const std::string& dev, const Settings& settings);
// Throws UserError naming the first missing capability.
void require_privileges(bool need_bpf);

struct AttachResult {
  AttachPlan plan;
  std::vector<std::string> warnings;  // replaced pins, plan warnings
  bool reattached = false;
};
AttachResult attach(const AttachRequest& req);
// Returns false when nothing is recorded for dev in this namespace.
bool detach(const std::string& dev);

}  // namespace ipsnat::attach
