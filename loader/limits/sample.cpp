#include "limits/sample.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "maps/stats.h"
#include "pins/names.h"
#include "state/pinned.h"

namespace ipsnat::limits {

std::optional<LimitSample> read_limit_sample(const std::string& pin_root) {
  state::PinnedState pins(pin_root);
  auto reasons = pins.reasons();
  if (!reasons) return std::nullopt;
  LimitSample s;
  for (const auto& r : *reasons) {
    if (r.reason == IPSNAT_R_DROP_CT_FULL) s.ct_full_drops = r.packets;
    if (r.reason == IPSNAT_R_DROP_NO_PORT) s.no_port_drops = r.packets;
    if (r.reason == IPSNAT_R_DROP_SPD_INCOMPLETE) s.spd_incomplete_drops = r.packets;
    if (r.reason == IPSNAT_R_DROP_SPD_UNREPRESENTABLE) s.spd_unrepresentable_drops = r.packets;
  }
  s.ct_max = pins.max_entries(pins::kCt).value_or(0);
  s.spd_max = pins.max_entries(pins::kSpdDst).value_or(0);
  ipsnat_config cfg = pins.datapath_config().value_or(ipsnat_config{});
  s.port_min = cfg.port_min ? cfg.port_min : IPSNAT_DEF_PORT_MIN;
  s.port_max = cfg.port_max ? cfg.port_max : IPSNAT_DEF_PORT_MAX;
  if (auto h = pins.spd_health_state()) {
    s.spd_fail_closed = h->flags & SPD_HEALTH_FAIL_CLOSED;
    s.spd_policy_unknown = h->flags & SPD_HEALTH_POLICY_UNKNOWN;
    if (h->flags & SPD_HEALTH_UNREPRESENTABLE) s.spd_cause = SpdCause::kUnrepresentable;
    if (h->flags & SPD_HEALTH_WRITE_FAILED) s.spd_cause = SpdCause::kWriteFailed;
    s.spd_dst = h->dst, s.spd_src = h->src, s.spd_lists = h->lists;
  }
  return s;
}

LimitReporter::LimitReporter(std::string pin_root, std::chrono::seconds interval)
    : root_(std::move(pin_root)),
      watcher_(interval),
      from_zero_(access(state::pinned_map_path(root_, pins::kStats).c_str(), F_OK) != 0) {}

void LimitReporter::tick() {
  std::optional<LimitSample> s;
  try {
    s = read_limit_sample(root_);
  } catch (const std::exception& e) {
    spdlog::debug("limit: reading the counters under {}: {}", root_, e.what());
    return;
  }
  if (!s) return;
  auto now = LimitWatcher::Clock::now();
  if (!primed_ && from_zero_) {
    LimitSample zero = *s;
    zero.ct_full_drops = zero.no_port_drops = zero.spd_incomplete_drops = zero.spd_unrepresentable_drops = 0;
    zero.spd_fail_closed = zero.spd_policy_unknown = false;
    watcher_.observe(zero, now);
  }
  primed_ = true;
  // "recovered" at the warnings' level too: a log filtered to warnings shows where each episode ends.
  for (const auto& l : watcher_.observe(*s, now)) {
    spdlog::warn("{}", l.text);
    ++lines_;
  }
}

}  // namespace ipsnat::limits
