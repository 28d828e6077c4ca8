#pragma once
// Reads a LimitSample from the pinned maps (syscalls; the logic is in limits/watcher.h), and the
// LimitReporter that the daemon and the follower call periodically: sample, observe, log.
#include <chrono>
#include <optional>
#include <string>

#include "limits/watcher.h"

namespace ipsnat::limits {

// nullopt while nothing is pinned under pin_root.
std::optional<LimitSample> read_limit_sample(const std::string& pin_root);

inline constexpr std::chrono::seconds kDefaultLogInterval{60};

class LimitReporter {
 public:
  LimitReporter(std::string pin_root, std::chrono::seconds interval) : root_(std::move(pin_root)), watcher_(interval) {}
  void set_interval(std::chrono::seconds interval) { watcher_.set_interval(interval); }
  // Samples and logs (spdlog warnings). Never throws: a failed read is
  // logged at debug level and retried next time.
  void tick();
  uint64_t lines() const { return lines_; }

 private:
  std::string root_;
  LimitWatcher watcher_;
  uint64_t lines_ = 0;
};

}  // namespace ipsnat::limits
