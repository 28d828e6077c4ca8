#pragma once
// The daemon's attachments: at start every [[device]] is attached, or adopted when its pinned
// programs and state record exist (same program ids, no detach/attach flap); on SIGHUP added
// devices are attached, removed ones detached, changed ones (mode, inside prefixes) re-planned in
// place; after every SPD change the mirror reports, each device's routes and companion policies
// are re-planned, and so are the devices attached by hand (`ipsnat attach`, recorded in the state
// store under this pin root in this network namespace) with the knobs they were attached with.
// The union of every recorded device's inside prefixes is the mirror's NAT when the config names
// none (checked every second: a device attached by hand meanwhile counts). Nothing is detached
// on exit; when_nothing_attached is called once no device is recorded under the pin root.
// A device that cannot be attached (absent, no such kind) is logged with its config line and
// retried on the timer; the others keep running. So is a device whose re-plan failed (its routes
// or policies may be missing until one succeeds): nothing else may happen to re-plan it. The configuration's [[forward]] rules are
// written to ipsnat_fwd at start and on every reload (removed ones deleted from the map).
#include <functional>
#include <map>
#include <string>

#include "attach/state.h"
#include "spd/nat.h"
#include "daemon/service.h"
#include "state/daemon_state.h"
#include "sys/rtnl_watch.h"

namespace ipsnat::daemon {

class AttachService : public Service {
 public:
  // mirror_live: whether the daemon's SPD mirror writes the maps now (then attach must not
  // write them itself: one writer per pin root). inferred_inside: told the inside prefixes that
  // attach inferred, for the mirror's NAT when the config names none.
  AttachService(std::string pin_root, std::function<bool()> mirror_live,
                std::function<void(std::vector<std::string>)> inferred_inside,
                std::function<void()> when_nothing_attached);
  std::string name() const override { return "attach"; }
  std::chrono::milliseconds period() const override { return std::chrono::seconds(1); }
  // Follows the recorded devices; every kRetryTicks retries the configured devices that could not
  // be attached and re-plans the devices whose last re-plan failed.
  void on_timer() override;
  void apply(const config::Config& c) override;
  void collect(metrics::Exposition& e) const override;
  void report(state::DaemonState& s) const override;

  // After the kernel's SPD changed: re-plan every attached device, configured or by hand.
  void replan() { replan_after("an SPD change"); }

  // Links, addresses, routes and rules: a change re-plans every device (inside prefixes, the uplink,
  // nexthops) and then calls on_host_change (the mirror's copy of the gateway's addresses).
  int fd() const override { return watch_.fd(); }
  void on_readable() override;
  void set_on_host_change(std::function<void()> f) { on_host_change_ = std::move(f); }

 private:
  // Re-plans every attached device (only_failed: those whose last re-plan failed); `cause` ("an SPD
  // change") names what a failure is logged after. A failure is logged once per distinct error.
  void replan_after(const char* cause, bool only_failed = false);
  static constexpr unsigned kRetryTicks = state::kDeviceRetrySeconds;  // ticks of period(), 1 s
  void attach_device(const config::Device& d, bool replan_only);
  // A device attached by hand, re-planned from its record.
  void replan_recorded(const attach::AttachState& st);
  bool configured(const std::string& dev) const;
  std::vector<spd::NatOverride> ipv6_rules() const;
  // ipsnat_fwd := the configuration's [[forward]] + what `attach --forward` recorded; false while
  // the map is not pinned yet (nothing attached), retried on the timer.
  bool sync_forwards();
  void publish_inside() const;
  std::string pin_root_;
  std::function<bool()> mirror_live_;
  std::function<void(std::vector<std::string>)> inferred_inside_;
  std::function<void()> when_nothing_attached_;
  config::Config config_;
  unsigned ticks_ = 0;
  bool applied_ = false;
  std::map<std::string, std::string> errors_;  // device -> why it is not attached
  std::map<std::string, std::string> replan_errors_;  // device -> why its last re-plan failed
  std::map<std::string, std::string> modes_;   // device -> "route" | "policy" once attached
  uint64_t attaches_ = 0, detaches_ = 0, replans_ = 0;
  bool forwards_synced_ = false;
  sys::RtnlWatch watch_;
  std::function<void()> on_host_change_;
  uint64_t host_changes_ = 0;
  size_t forwards_ = 0;
};

}  // namespace ipsnat::daemon
