#pragma once
// What a running `ipsnat run` publishes for `ipsnat status` and liveness probes: a JSON file
// STATE_DIR/daemon.json (default /run/ipsnat/daemon.json), replaced atomically (write + rename)
// on every change and at least every kPublishInterval. Format: docs/operations.md.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ipsnat::state {

inline constexpr std::chrono::seconds kPublishInterval{5};
inline constexpr int kStateVersion = 1;

struct MirrorHealth {
  bool enabled = false;  // false: the SPD mirror is not part of this build/run
  bool healthy = false;
  uint64_t events = 0;
  uint64_t resyncs = 0;
  uint64_t overruns = 0;
  int64_t last_resync = 0;  // unix seconds, 0 = never
  uint64_t policies = 0;
  std::string last_error;
};

struct GcHealth {
  bool enabled = false;
  uint64_t runs = 0;
  uint64_t evicted = 0;
  int64_t last_run = 0;
  std::string last_error;
};

// Seconds between the host process's retries of a device it could not attach or re-plan
// (AttachService; `ipsnat status` says it).
inline constexpr unsigned kDeviceRetrySeconds = 5;

struct DaemonState {
  int version = kStateVersion;
  int pid = 0;
  bool running = false;  // false once the daemon exited cleanly
  int64_t started = 0;   // unix seconds
  int64_t updated = 0;
  std::string config;    // path, "" when run without a file
  int64_t config_loaded = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  std::string last_reload_error;
  std::vector<std::string> devices;
  std::map<std::string, std::string> device_errors;  // configured device -> why it is not attached
  std::map<std::string, std::string> device_replan_errors;  // attached device -> why its last re-plan failed
  std::string pin_root;
  // Started by `ipsnat attach` (run --exit-when-detached): it ends with the last device, and a
  // user's `ipsnat run` takes its place.
  bool exit_when_detached = false;
  std::string metrics;   // "ADDR:PORT" or ""
  MirrorHealth mirror;
  GcHealth gc;
};

nlohmann::json to_json(const DaemonState& s);
// Tolerant of missing fields (a newer or older daemon wrote it); throws on a non-object.
DaemonState state_from_json(const nlohmann::json& j);

std::string state_file_path(const std::string& state_dir);
// Creates the directory if needed; atomic replace.
void write_state_file(const std::string& state_dir, const DaemonState& s);
// nullopt when absent; throws UserError when unreadable or malformed.
std::optional<DaemonState> read_state_file(const std::string& state_dir);

// The state says running and its pid exists and was updated recently enough.
bool daemon_alive(const DaemonState& s, int64_t now_unix);

}  // namespace ipsnat::state
