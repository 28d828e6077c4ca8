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
  bool sync_spd = true;    // fill the SPD maps once (off in the host process: its mirror owns them)
  bool start_host = true;  // make sure the host process runs (attach/host.h)
  uint32_t ct_max = 0;         // conntrack entries (--ct-max); 0: keep the pinned map's, else default
  uint32_t spd_max = 0;        // entries of each SPD map (--spd-max); 0: likewise
  uint32_t limit_log_interval = 0;  // seconds between limit warnings of a host it starts (0: default)
  bool only_if_attached = false;  // a re-plan: do nothing if DEV was detached meanwhile
};

struct AttachResult {
  AttachPlan plan;
  std::vector<std::string> warnings;  // replaced pins, plan warnings
  bool reattached = false;
};
AttachResult attach(const AttachRequest& req);
// Returns false when nothing is recorded for dev in this namespace.
bool detach(const std::string& dev);

}  // namespace ipsnat::attach
