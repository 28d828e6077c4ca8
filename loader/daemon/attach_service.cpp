#include "daemon/attach_service.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <functional>

#include <spdlog/spdlog.h>

#include "attach/forward.h"
#include "attach/session.h"
#include "config/diff.h"
#include "daemon/components.h"
#include "pins/names.h"
#include "spd/policy.h"
#include "state/pinned.h"
#include "util/fd.h"

namespace ipsnat::daemon {

namespace {
attach::ModeRequest mode_of(config::DeviceMode m) {
  switch (m) {
    case config::DeviceMode::kRoute: return attach::ModeRequest::Route;
    case config::DeviceMode::kPolicy: return attach::ModeRequest::Policy;
    default: return attach::ModeRequest::Auto;
  }
}

std::string where(const config::Config& c, const config::Device& d) {
  return (c.source.empty() ? std::string("(defaults)") : c.source) + ":" + std::to_string(d.line);
}
}  // namespace

AttachService::AttachService(std::string pin_root, std::function<bool()> mirror_live,
                             std::function<void(std::vector<std::string>)> inferred_inside,
                             std::function<void()> when_nothing_attached)
    : pin_root_(std::move(pin_root)),
      mirror_live_(std::move(mirror_live)),
      inferred_inside_(std::move(inferred_inside)),
      when_nothing_attached_(std::move(when_nothing_attached)) {}

bool AttachService::configured(const std::string& dev) const {
  return std::any_of(config_.devices.begin(), config_.devices.end(),
                     [&](const config::Device& d) { return d.name == dev; });
}

// The IPv6 [[nat]] rules, which decide the IPv6 plan lines and policy mode's routes as they decide
// the mirror's rules (the IPv4 plan keeps what the SPD implies).
std::vector<spd::NatOverride> AttachService::ipv6_rules() const {
  std::vector<spd::NatOverride> out;
  for (auto& o : nat_config_of(config_, {}).overrides)
    if (o.inside.addr.family == AF_INET6) out.push_back(std::move(o));
  return out;
}

void AttachService::replan_recorded(const attach::AttachState& st) {
  attach::AttachRequest req;
  req.dev = st.dev;
  req.pin_root = pin_root_;
  req.settings.mode = st.mode == "route" ? attach::ModeRequest::Route : attach::ModeRequest::Policy;
  for (const auto& p : st.inside_configured) req.settings.inside.push_back(parse_prefix(p));
  req.settings.nat_rules = ipv6_rules();
  req.settings.table = st.table;
  req.settings.rule_priority = st.rule_priority;
  req.settings.own_table = st.own_table;
  req.settings.replanned = true;  // this is the host
  req.settings.route_mtu = st.route_mtu;
  req.settings.masquerade = st.masquerade;
  if (!st.masquerade_addr.empty()) req.settings.masquerade_addr = parse_address(st.masquerade_addr);
  req.settings.xdp_prefilter = st.xdp_prefilter;
  req.settings.binat = st.binat;
  req.settings.allow_empty = true;  // policies may all go away and come back (IKE rekey, restart)
  req.sync_spd = false;             // the mirror owns the SPD maps
  req.start_host = false;           // this is the host
  req.only_if_attached = true;      // detached meanwhile: nothing to re-add
  for (const auto& w : attach::attach(req).warnings) spdlog::warn("attach {}: {}", st.dev, w);
}

void AttachService::attach_device(const config::Device& d, bool replan_only) {
  attach::StateStore store(attach::StateStore::resolve_dir());
  auto prev = store.load(attach::StateStore::id_for(d.name));
  attach::AttachRequest req;
  req.dev = d.name;
  req.pin_root = pin_root_;
  req.settings.mode = mode_of(d.mode);
  req.settings.masquerade = d.masquerade;
  if (d.masquerade_addr) req.settings.masquerade_addr = Address::v4(*d.masquerade_addr);
  req.settings.xdp_prefilter = prev && prev->xdp_prefilter;  // no config key: kept as `ipsnat attach` set it
  req.settings.binat = d.binat;
  for (const auto& p : config_.inside) req.settings.inside.push_back(parse_prefix(p.str()));
  req.settings.nat_rules = ipv6_rules();
  req.settings.replanned = true;  // this daemon is the host
  if (prev) {  // kept as `ipsnat attach` set them: no config key
    req.settings.table = prev->table;
    req.settings.rule_priority = prev->rule_priority;
    req.settings.own_table = prev->own_table;
  }
  // The daemon starts before IKE has installed anything, and policies come and go with rekeys.
  req.settings.allow_empty = true;
  req.start_host = false;  // this daemon is the host
  req.only_if_attached = replan_only;
  // One writer of the SPD maps: while the daemon's mirror runs it owns them. A device attached
  // before (state and pinned programs exist) is adopted from its pins: same programs, no reload.
  req.sync_spd = !prev && !mirror_live_();
  auto res = attach::attach(req);
  for (const auto& w : res.warnings) spdlog::warn("attach {}: {}", d.name, w);
  modes_[d.name] = attach::to_string(res.plan.mode);
  if (!replan_only)
    spdlog::info("attach {}: {} mode, {} ({} steps)", d.name, modes_[d.name],
                 prev ? "adopted the pinned state" : "attached", res.plan.steps.size());
}

bool AttachService::sync_forwards() {
  std::string path = state::pinned_map_path(pin_root_, pins::kForwards);
  auto map = pins::ForwardMap::open_pinned(pin_root_);
  if (!map) {
    if (errno != ENOENT) spdlog::error("forward: opening {}: {}", path, strerror(errno));
    return false;
  }
  // What hand-run attaches recorded stays (detach removes it); the configuration's rules win
  // over theirs for the same outside port.
  std::vector<attach::ForwardRule> rules;
  attach::StateStore store(attach::StateStore::resolve_dir());
  for (const auto& entry : store.list_here(pin_root_))
    for (const auto& spec : entry.second.forwards) rules.push_back(attach::parse_forward_spec(spec));
  for (const auto& f : config_.forwards) rules.push_back(attach::forward_rule_of(f));
  size_t removed = attach::sync_forward_map(*map, attach::forward_entries(rules));
  map.reset();
  if (forwards_ != config_.forwards.size() || removed)
    spdlog::info("forward: {} port-forwards from the configuration in ipsnat_fwd ({} removed)",
                 config_.forwards.size(), removed);
  forwards_ = config_.forwards.size();
  return true;
}

void AttachService::publish_inside() const {
  std::vector<std::string> inside;
  attach::StateStore store(attach::StateStore::resolve_dir());
  for (const auto& entry : store.list_here(pin_root_))
    for (const auto& p : entry.second.inside)
      if (std::find(inside.begin(), inside.end(), p) == inside.end()) inside.push_back(p);
  inferred_inside_(inside);
}

void AttachService::apply(const config::Config& c) {
  config::Config before = applied_ ? config_ : config::Config{};
  auto diff = config::diff_devices(before, c);
  config_ = c;
  applied_ = true;
  for (const auto& d : diff.removed) {
    errors_.erase(d.name);
    replan_errors_.erase(d.name);
    modes_.erase(d.name);
    try {
      if (attach::detach(d.name)) {
        ++detaches_;
        spdlog::info("detach {}: removed from the configuration", d.name);
      }
    } catch (const std::exception& e) {
      spdlog::error("detach {}: {}", d.name, e.what());
    }
  }
  std::vector<config::Device> todo = diff.added;
  todo.insert(todo.end(), diff.changed.begin(), diff.changed.end());
  // Devices still failing from before are retried with the new settings too.
  for (const auto& d : diff.unchanged)
    if (errors_.count(d.name)) todo.push_back(d);
  for (const auto& d : todo) {
    replan_errors_.erase(d.name);  // attached anew, or failing as not attached
    try {
      attach_device(d, false);
      ++attaches_;
      errors_.erase(d.name);
    } catch (const std::exception& e) {
      errors_[d.name] = e.what();
      modes_.erase(d.name);
      spdlog::error("attach {} ({}): {}; retrying every {}s", d.name, where(c, d), e.what(),
                    kRetryTicks * period().count() / 1000);
    }
  }
  // Unchanged devices are re-planned too: the device itself may have changed (re-created,
  // another if_id or okey) although its configuration did not.
  for (const auto& d : diff.unchanged) {
    if (errors_.count(d.name)) continue;
    try {
      attach_device(d, true);
      replan_errors_.erase(d.name);
    } catch (const std::exception& e) {
      spdlog::error("attach {} ({}): re-planning on reload failed: {}; retrying every {}s", d.name, where(c, d),
                    e.what(), kRetryTicks);
      replan_errors_[d.name] = e.what();  // retried on the timer like any failed re-plan
    }
  }
  publish_inside();
  forwards_synced_ = sync_forwards();
}

void AttachService::on_timer() {
  if (!forwards_synced_) forwards_synced_ = sync_forwards();
  publish_inside();
  if (when_nothing_attached_ && config_.devices.empty() &&
      attach::StateStore(attach::StateStore::resolve_dir()).list_here(pin_root_).empty()) {
    when_nothing_attached_();
    return;
  }
  bool retry = ++ticks_ % kRetryTicks == 0;
  if (retry && !replan_errors_.empty()) replan_after("a failed re-plan", true);
  if (errors_.empty() || !retry) return;
  bool any = false;
  for (const auto& d : config_.devices) {
    auto it = errors_.find(d.name);
    if (it == errors_.end()) continue;
    try {
      attach_device(d, false);
      ++attaches_;
      errors_.erase(it);
      any = true;
    } catch (const std::exception& e) {
      if (it->second != e.what()) spdlog::error("attach {} ({}): {}", d.name, where(config_, d), e.what());
      it->second = e.what();
    }
  }
  if (any) publish_inside();
}

void AttachService::replan_after(const char* cause, bool only_failed) {
  ++replans_;
  std::map<std::string, std::string> failing;  // what replan_errors_ becomes
  auto replan_one = [&](const std::string& dev, const std::function<void()>& replan_dev) {
    auto before = replan_errors_.find(dev);
    if (only_failed && before == replan_errors_.end()) return;
    try {
      replan_dev();
      if (before != replan_errors_.end())
        spdlog::info("attach {}: re-planned after {} (it had failed: {})", dev, cause, before->second);
    } catch (const std::exception& e) {
      if (before == replan_errors_.end() || before->second != e.what())
        spdlog::error("attach {}: re-planning after {} failed: {}; retrying every {}s", dev, cause, e.what(),
                      kRetryTicks);
      failing[dev] = e.what();
    }
  };
  for (const auto& d : config_.devices)
    if (!errors_.count(d.name)) replan_one(d.name, [&] { attach_device(d, true); });
  attach::StateStore store(attach::StateStore::resolve_dir());
  for (const auto& entry : store.list_here(pin_root_)) {
    const auto& st = entry.second;
    if (!configured(st.dev)) replan_one(st.dev, [&] { replan_recorded(st); });
  }
  replan_errors_ = std::move(failing);  // a device detached or unconfigured meanwhile is dropped too
}

void AttachService::on_readable() {
  if (!watch_.drain()) return;
  ++host_changes_;
  replan_after("a change of the host's links, addresses, routes or rules");
  publish_inside();  // the mirror rebuilds itself when the inferred prefixes changed
  if (on_host_change_) on_host_change_();
}

void AttachService::collect(metrics::Exposition& e) const {
  using metrics::MetricType;
  auto& up = e.family("ipsnat_device_attached", "1 for each configured device ipsnat is attached to, 0 while it fails",
                      MetricType::kGauge);
  for (const auto& d : config_.devices) {
    auto m = modes_.find(d.name);
    up.add(m != modes_.end() ? 1 : 0, {{"device", d.name}, {"mode", m != modes_.end() ? m->second : "none"}});
  }
  e.family("ipsnat_port_forwards", "Port-forwards of the configuration ([[forward]]) written to the datapath",
           MetricType::kGauge)
      .add(forwards_synced_ ? forwards_ : 0);
  e.family("ipsnat_attach_replans_total", "Re-plans of the devices' routes and policies after SPD changes",
           MetricType::kCounter)
      .add(replans_);
  e.family("ipsnat_host_changes_total", "Link, address or route changes that re-planned the devices",
           MetricType::kCounter)
      .add(host_changes_);
  e.family("ipsnat_device_replan_failing",
           "Devices whose last re-plan failed (retried every " + std::to_string(kRetryTicks) +
               " s; their routes or policies may be missing)",
           MetricType::kGauge)
      .add(replan_errors_.size());
}

void AttachService::report(state::DaemonState& s) const {
  s.device_errors = errors_;
  s.device_replan_errors = replan_errors_;
}

}  // namespace ipsnat::daemon
