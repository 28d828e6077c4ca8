#pragma once
// Resource limits of the datapath, watched from successive counter readings (docs/robustness.md,
// row 5): the conntrack table full (drop-ct-full), the NAT port range exhausted (drop-no-port),
// the SPD maps stale: larger than the maps, not representable in them, or not written (spd_health
// FAIL_CLOSED, drop-spd-incomplete), and a policy the maps carry as unknown, failing closed where
// it could apply (spd_health POLICY_UNKNOWN, drop-spd-unrepresentable). Pure logic: the
// caller reads the pinned maps (limits/sample.h) and logs the lines; tests feed samples and a
// clock.
//
// Per limit: the first drop (or the SPD condition) after a quiet time gives a warning at once;
// while it lasts, at most one warning per interval, each with the packets dropped since the line
// before; one "recovered" line after a whole interval without drops (and the SPD fitting again).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ipsnat::limits {

enum class Limit { kCtFull, kNoPort, kSpdTooLarge, kSpdPolicyUnknown };
// Why the SPD maps are stale (maps/spd.h spd_health): no room, a policy they cannot express, or a
// write the kernel refused otherwise.
enum class SpdCause { kTooLarge, kUnrepresentable, kWriteFailed };
inline constexpr int kLimitCount = 4;
const char* limit_name(Limit l);  // "ct-full", "no-port", "spd-too-large", "spd-policy-unknown"

// One reading. Counters are cumulative over CPUs (a smaller value than before means the map was
// recreated: counted from 0). The rest only goes into the messages.
struct LimitSample {
  uint64_t ct_full_drops = 0;
  uint64_t no_port_drops = 0;
  uint64_t spd_incomplete_drops = 0;
  uint64_t spd_unrepresentable_drops = 0;
  bool spd_fail_closed = false;
  bool spd_policy_unknown = false;  // spd_health SPD_HEALTH_POLICY_UNKNOWN
  SpdCause spd_cause = SpdCause::kTooLarge;
  uint32_t ct_max = 0;  // ipsnat_ct entries (2 per flow)
  uint32_t port_min = 0, port_max = 0;
  uint32_t spd_max = 0;  // entries of each SPD map, both generations
  uint32_t spd_dst = 0, spd_src = 0, spd_lists = 0;  // what the current SPD needs per generation
};

struct LimitLine {
  Limit limit;
  bool recovered = false;  // false: a warning
  uint64_t dropped = 0;    // packets since the previous line of this limit (or the sample before)
  std::string text;
};

class LimitWatcher {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LimitWatcher(std::chrono::seconds interval) : interval_(interval) {}
  void set_interval(std::chrono::seconds interval) { interval_ = interval; }
  std::chrono::seconds interval() const { return interval_; }

  // The lines to log for this reading (usually none). The first reading is the baseline: drops
  // counted before it are not reported, a standing SPD condition is.
  std::vector<LimitLine> observe(const LimitSample& s, Clock::time_point now);

 private:
  struct State {
    uint64_t last = 0;
    uint64_t pending = 0;  // dropped since the last line
    bool active = false;   // a warning was logged and no "recovered" yet
    SpdCause cause = SpdCause::kTooLarge;  // the SPD's at the last warning (its "recovered" names it)
    Clock::time_point since{};  // the last line, or the previous reading while quiet
  };
  std::chrono::seconds interval_;
  bool primed_ = false;
  State st_[kLimitCount];
};

}  // namespace ipsnat::limits
