#pragma once
// The resource-limit warnings in the daemon (limits/sample.h): every second a reading of the
// pinned counters; at most one warning per limit per limit_log_interval (config, --limit-log-interval).
#include <memory>
#include <string>

#include "daemon/service.h"
#include "limits/sample.h"

namespace ipsnat::daemon {

class LimitService : public Service {
 public:
  explicit LimitService(std::string pin_root)
      : reporter_(std::move(pin_root), limits::kDefaultLogInterval) {}
  std::string name() const override { return "limits"; }
  std::chrono::milliseconds period() const override { return std::chrono::seconds(1); }
  void on_timer() override { reporter_.tick(); }
  // The first reading is the baseline, taken at start rather than a period later: drops from the
  // moment the daemon runs are reported.
  void apply(const config::Config& c) override {
    reporter_.set_interval(std::chrono::seconds(c.limit_log_interval));
    if (!started_) reporter_.tick();
    started_ = true;
  }

 private:
  limits::LimitReporter reporter_;
  bool started_ = false;
};

}  // namespace ipsnat::daemon
