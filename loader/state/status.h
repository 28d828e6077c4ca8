#pragma once
// Everything `ipsnat status` shows, gathered in one JSON document so that the text view, -j and
// the --check probe read the same facts: ipsnat's hooks on the devices of this network
// namespace, the pinned maps' fill levels, the reason counters, and the daemon's published
// state (daemon.json: mirror health, reloads).
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ipsnat::state {

struct StatusOptions {
  std::string pin_root;
  std::string state_dir = "/run/ipsnat";
};

nlohmann::json gather_status(const StatusOptions& opts);
// Healthy for a liveness/readiness probe: the daemon runs (published recently, pid alive), and
// every device it was configured with has an ipsnat hook. Fills `why` when not.
bool status_healthy(const nlohmann::json& status, std::string& why);
std::string status_to_text(const nlohmann::json& status);

}  // namespace ipsnat::state
