#pragma once
// Metrics read from the pinned BPF maps on each scrape: packets/bytes by reason (summed over
// CPUs), map fill levels, active flows, NAT port use and per-policy traffic. Pure formatting is
// in add_datapath_metrics (unit-tested); DatapathMetrics reads the pins.
#include "config/config.h"
#include "daemon/service.h"
#include "state/pinned.h"

namespace ipsnat::daemon {

struct DatapathSnapshot {
  std::optional<std::vector<state::ReasonCount>> reasons;
  std::vector<state::MapFill> maps;
  std::optional<state::ConntrackSummary> conntrack;
};

void add_datapath_metrics(metrics::Exposition& e, const DatapathSnapshot& snap, const config::PortRange& ports);

class DatapathMetrics : public Service {
 public:
  explicit DatapathMetrics(std::string pin_root) : pins_(std::move(pin_root)) {}
  std::string name() const override { return "datapath_metrics"; }
  void apply(const config::Config& c) override { ports_ = c.port_range; }
  void collect(metrics::Exposition& e) const override;

 private:
  state::PinnedState pins_;
  config::PortRange ports_;
};

}  // namespace ipsnat::daemon
