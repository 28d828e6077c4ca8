#pragma once
// Reads a LimitSample from the pinned maps (syscalls; the logic is in limits/watcher.h), and the
// LimitReporter that the host process (LimitService) calls periodically: sample, observe, log.
#include <chrono>
#include <optional>
#include <string>

#include "limits/watcher.h"

namespace ipsnat::limits {

// nullopt while nothing is pinned under pin_root.
std::optional<LimitSample> read_limit_sample(const std::string& pin_root);

inline constexpr std::chrono::seconds kDefaultLogInterval{60};

// The first reading is the watcher's baseline (drops counted before this process started are
// not reported again), unless nothing was pinned when the reporter was made: the counters that
// appear later are new and count from 0.
class LimitReporter {
 public:
  LimitReporter(std::string pin_root, std::chrono::seconds interval);
  void set_interval(std::chrono::seconds interval) { watcher_.set_interval(interval); }
  // Samples and logs (spdlog warnings). Never throws: a failed read is
  // logged at debug level and retried next time.
  void tick();
  uint64_t lines() const { return lines_; }

 private:
  std::string root_;
  LimitWatcher watcher_;
  bool from_zero_;
  bool primed_ = false;
  uint64_t lines_ = 0;
};

}  // namespace ipsnat::limits
