#pragma once
// Read-only view of ipsnat's pinned BPF state, for `ipsnat status` and the metrics endpoint:
// the per-CPU reason counters, fill levels of the maps, and a conntrack summary. The ONE place
// that knows where maps are pinned (PIN_ROOT/<map name>, names as in the BPF object), so that a
// change of the pin layout by the attacher is a change here only.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maps/config.h"
#include "maps/spd.h"
#include "state/ct_summary.h"

namespace ipsnat::state {

std::string pinned_map_path(const std::string& pin_root, std::string_view map_name);

struct ReasonCount {
  unsigned reason = 0;
  std::string name;
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

struct MapFill {
  std::string name;
  uint32_t id = 0;
  std::string type;  // "hash", "percpu_array", ...
  uint32_t max_entries = 0;
  std::optional<uint64_t> entries;  // absent for arrays (always full)
};

class PinnedState {
 public:
  explicit PinnedState(std::string pin_root) : root_(std::move(pin_root)) {}
  const std::string& root() const { return root_; }
  bool exists() const;  // the pin directory is there

  // nullopt when the map is not pinned (nothing attached yet).
  std::optional<std::vector<ReasonCount>> reasons() const;
  std::optional<MapFill> map_fill(std::string_view name) const;
  // Both conntrack tables (ipsnat_ct6 when pinned with this build's layout); nullopt when
  // ipsnat_ct is not pinned; throws UserError when it has another build's layout (never read).
  std::optional<ConntrackSummary> conntrack() const;
  // Every pinned map of the BPF object that is present.
  std::vector<MapFill> map_fills() const;
  // Without walking the entries (cheap enough to call every second).
  std::optional<uint32_t> max_entries(std::string_view name) const;
  // spd_health[0] (maps/spd.h) and ipsnat_cfg[0] (maps/config.h); nullopt when not pinned.
  std::optional<spd_health> spd_health_state() const;
  std::optional<ipsnat_config> datapath_config() const;
  // Entries of the SPD maps in the active generation and in the other one.
  struct SpdFill {
    uint32_t active_gen = 0;
    std::string map;
    uint32_t max_entries = 0;
    uint64_t active = 0, other = 0;
  };
  std::vector<SpdFill> spd_fills() const;

 private:
  std::string root_;
};

}  // namespace ipsnat::state
