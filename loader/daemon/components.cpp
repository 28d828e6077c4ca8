#include "daemon/components.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include <spdlog/spdlog.h>

#include "config/diff.h"
#include "pins/ct_gc.h"
#include "pins/ct_map.h"
#include "maps/config.h"
#include "maps/stats.h"
#include "pins/names.h"
#include "mirror/mirror.h"
#include "spd/nat.h"
#include "spd/npt6.h"
#include "spd/policy.h"
#include "state/pinned.h"
#include "sys/rtnl.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::daemon {

namespace {

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

bool pinned(const std::string& root, const char* name) {
  return access(state::pinned_map_path(root, name).c_str(), F_OK) == 0;
}

Prefix to_spd(const config::Ipv4Prefix& p) { return Prefix{Address::v4(htonl(p.addr)), p.len}; }


// A [[nat]] rule whose destination overlaps a policy's destination selector without lying inside
// it does not apply to that policy: one error line per such pair.
// An IPv6 rule refused for a policy (two rules on it, a pool beyond its selector) likewise; an IPv6
// rule whose `to` lies in no IPv6 tunnel out-policy's source selector translates nothing: one line.
void log_rule_errors(const spd::SpdModel& model, const spd::NatConfig& nat) {
  std::vector<bool> applies(nat.overrides.size(), false);
  for (const auto& [index, p] : model.by_index()) {
    if (p.sel.family == AF_INET6) {
      auto m = spd::npt6_of(p, nat.inside, nat.local, nat.overrides);
      if (!m.ok && m.why.rfind("nat rule", 0) == 0)
        spdlog::error("spd_mirror: policy {} ({}): {}", index, p.describe(), m.why);
      if (m.why.rfind("nat rule", 0) != 0 && m.rule.empty()) continue;
      for (size_t i = 0; i < nat.overrides.size(); ++i) {
        const auto& o = nat.overrides[i];
        applies[i] = applies[i] || (o.inside.addr.family == AF_INET6 && o.names(p));
      }
      continue;
    }
    for (const auto& n : spd::implied_nats(p, nat))
      if (n.kind == SPD_NAT_NONE && n.why.rfind("nat rule", 0) == 0)
        spdlog::error("spd_mirror: policy {} ({}): {}", index, p.describe(), n.why);
  }
  for (size_t i = 0; i < nat.overrides.size(); ++i)
    if (nat.overrides[i].inside.addr.family == AF_INET6 && !applies[i])
      spdlog::error("spd_mirror: nat rule {}: to {} lies in no IPv6 tunnel out-policy's source selector: it "
                    "translates nothing", nat.overrides[i].origin, nat.overrides[i].policy_src->str());
}

}  // namespace

// [[nat]] rules become the mirror's overrides: they apply to the out-policies whose source
// selector contains the rule's `to` (a source the kernel gives to those policies), restricted to
// the rule's destinations (spd::NatOverride).
spd::NatConfig nat_config_of(const config::Config& c, const std::vector<std::string>& inferred_inside) {
  spd::NatConfig n;
  for (const auto& p : c.inside) n.inside.push_back(to_spd(p));
  if (c.inside.empty())
    for (const auto& p : inferred_inside) n.inside.push_back(parse_prefix(p));
  for (const auto& r : c.nat) {
    spd::NatOverride o;
    o.origin = c.source + ":" + std::to_string(r.line);
    if (r.ipv6) {
      // NAT66 to an address (a range: its first and size) or a prefix's pool, or NPTv6 onto a prefix
      // (spd/npt6.h npt6_of).
      o.policy_src = r.to6;
      o.kind = r.kind == config::NatRule::Kind::kNapt ? SPD_NAT_NAPT : SPD_NAT_PREFIX;
      o.nat = r.to6;
      o.nat_count = r.to_count;
      o.inside = r.inside6;
      n.overrides.push_back(o);
      continue;
    }
    o.policy_src = to_spd(r.to);
    o.kind = r.kind == config::NatRule::Kind::kNapt ? SPD_NAT_NAPT : SPD_NAT_PREFIX;
    o.nat = to_spd(r.to);
    if (r.to_count > 1) {
      // A pool: its first address and size (the rule's `to` prefix, or range, still names the
      // policies it applies to).
      o.nat = Prefix{Address::v4(htonl(r.to.addr)), 32};
      o.nat_count = r.to_count;
    }
    o.inside = to_spd(r.inside);
    for (const auto& d : r.destinations) o.destinations.push_back(to_spd(d));
    n.overrides.push_back(o);
  }
  return n;
}

// ---- SPD mirror --------------------------------------------------------------------------

SpdMirrorService::SpdMirrorService(std::string pin_root) : pin_root_(std::move(pin_root)) {}
SpdMirrorService::~SpdMirrorService() = default;

int SpdMirrorService::fd() const { return mirror_ ? mirror_->fd() : -1; }

void SpdMirrorService::try_adopt() {
  if (mirror_ || !config_) return;
  if (!pinned(pin_root_, pins::kSpdActive)) {
    last_error_ = "nothing attached: no " + state::pinned_map_path(pin_root_, pins::kSpdActive);
    return;
  }
  try {
    auto nat = nat_config_of(*config_, inferred_inside_);
    nat.local = sys::local_addresses();
    mirror_ = std::make_unique<mirror::SpdMirror>(mirror::SpdMapFds::from_pins(pin_root_), nat);
    mirror_->sync_once();
    log_rule_errors(mirror_->model(), nat);
    last_resync_ = now_unix();
    last_error_.clear();
    spdlog::info("spd_mirror: following the SPD into {} ({} policies)", pin_root_, mirror_->model().size());
  } catch (const std::exception& e) {
    mirror_.reset();
    last_error_ = e.what();
    spdlog::warn("spd_mirror: {}", e.what());
  }
}

void SpdMirrorService::set_inferred_inside(std::vector<std::string> inside) {
  if (inside == inferred_inside_) return;
  inferred_inside_ = std::move(inside);
  if (config_ && config_->inside.empty() && mirror_) {
    spdlog::info("spd_mirror: inside prefixes inferred by attach changed; full sync");
    mirror_.reset();
  }
  try_adopt();
}

void SpdMirrorService::refresh_local() {
  if (!mirror_) return;
  try {
    mirror_->set_local(sys::local_addresses());
  } catch (const std::exception& e) {
    spdlog::error("spd_mirror: updating the gateway's addresses in ipsnat_inside: {}", e.what());
  }
}

void SpdMirrorService::apply(const config::Config& c) {
  bool nat_changed = !config_ || config::nat_changed(*config_, c);
  config_ = std::make_unique<config::Config>(c);
  if (nat_changed && mirror_) {
    // The mirror takes its NAT settings at construction: rebuild it, with a full sync.
    mirror_.reset();
  }
  try_adopt();
}

void SpdMirrorService::on_readable() {
  if (!mirror_) return;
  uint64_t before = mirror_->stats().resyncs;
  bool changed = mirror_->poll_once(0);
  if (mirror_->stats().resyncs != before) last_resync_ = now_unix();
  if (changed && on_change_) on_change_();
}

void SpdMirrorService::on_timer() {
  try_adopt();
  if (mirror_ && mirror_->retry_failed_write() && on_change_) on_change_();
}

void SpdMirrorService::collect(metrics::Exposition& e) const {
  using metrics::MetricType;
  e.family("ipsnat_mirror_up", "1 when the SPD mirror follows the kernel's SPD into the pinned maps", MetricType::kGauge)
      .add(mirror_ ? 1 : 0);
  if (!mirror_) return;
  const auto& s = mirror_->stats();
  e.family("ipsnat_mirror_events_total", "XFRM policy notifications applied", MetricType::kCounter).add(s.events);
  e.family("ipsnat_mirror_resyncs_total", "Full SPD dumps after lost notifications", MetricType::kCounter).add(s.resyncs);
  e.family("ipsnat_mirror_refusals_total", "Compiles refused (the maps kept the last exact SPD, failing closed)", MetricType::kCounter)
      .add(s.refusals);
  e.family("ipsnat_mirror_swaps_total", "Generation swaps of the SPD maps", MetricType::kCounter).add(s.swaps);
  e.family("ipsnat_mirror_policies", "Policies in the mirrored SPD", MetricType::kGauge).add(mirror_->model().size());
  e.family("ipsnat_mirror_last_resync_timestamp_seconds", "Last full sync of the SPD", MetricType::kGauge)
      .add(static_cast<uint64_t>(last_resync_));
}

void SpdMirrorService::report(state::DaemonState& st) const {
  st.mirror.enabled = true;
  st.mirror.healthy = mirror_ != nullptr;
  st.mirror.last_error = last_error_;
  st.mirror.last_resync = last_resync_;
  if (!mirror_) return;
  const auto& s = mirror_->stats();
  st.mirror.events = s.events;
  st.mirror.resyncs = s.resyncs;
  st.mirror.policies = mirror_->model().size();
  if (!s.last_refusal.empty()) st.mirror.last_error = "refused: " + s.last_refusal;
}

// ---- conntrack GC ------------------------------------------------------------------------

namespace {
constexpr uint64_t kNsPerSecond = 1000000000ull;
}  // namespace

CtGcService::CtGcService(std::string pin_root)
    : pin_root_(std::move(pin_root)), pacer_(std::make_unique<pins::GcPacer>(10 * kNsPerSecond, kNsPerSecond)) {}
CtGcService::~CtGcService() = default;

bool CtGcService::open() {
  if (maps_) return true;
  if (!pinned(pin_root_, pins::kCt) || !pinned(pin_root_, pins::kConfig)) {
    last_error_ = "nothing attached: no " + state::pinned_map_path(pin_root_, pins::kCt);
    return false;
  }
  try {
    maps_ = std::make_unique<pins::CtMaps>(pins::CtMaps::open_pinned(pin_root_));
    last_error_.clear();
    write_config();
    return true;
  } catch (const std::exception& e) {
    last_error_ = e.what();
    maps_.reset();
    return false;
  }
}

void CtGcService::write_config() {
  if (!config_) return;
  Fd fd(bpf_obj_get(state::pinned_map_path(pin_root_, pins::kConfig).c_str()));
  if (!fd) throw SysError("opening ipsnat_cfg", errno);
  uint32_t key = 0;
  ipsnat_config v{};
  bpf_map_lookup_elem(fd.get(), &key, &v);  // keep fields the file does not set (flags, rst, other)
  const auto& t = config_->timeouts;
  v.port_min = config_->port_range.min;
  v.port_max = config_->port_range.max;
  v.tcp_syn_s = t.tcp_transitory;
  v.tcp_fin_s = t.tcp_transitory;
  v.tcp_est_s = t.tcp_established;
  v.udp_s = t.udp;
  v.udp_stream_s = t.udp_stream;
  v.icmp_s = t.icmp;
  if (bpf_map_update_elem(fd.get(), &key, &v, BPF_ANY) < 0) throw SysError("writing ipsnat_cfg", errno);
  spdlog::info("ct_gc: port range {}-{} and timeouts written to ipsnat_cfg", v.port_min, v.port_max);
}

void CtGcService::apply(const config::Config& c) {
  config_ = std::make_unique<config::Config>(c);
  pacer_->set_interval(uint64_t(c.gc_interval) * kNsPerSecond);
  if (maps_) write_config();
  else open();
}

void CtGcService::on_timer() {
  if (!open()) return;
  state::PinnedState pins(pin_root_);
  uint64_t refused = 0;
  if (auto reasons = pins.reasons())
    for (const auto& r : *reasons)
      if (r.reason == IPSNAT_R_DROP_CT_FULL) refused = r.packets;
  uint64_t now = pins::boottime_ns();
  if (!pacer_->due(now, refused)) return;
  auto r = pins::CtGc(*maps_).sweep(now);
  pacer_->swept(now, 2 * r.flows - r.entries_deleted, pins.max_entries(pins::kCt).value_or(0));
  // IPv6 (NAT66) flows, by the same timeouts; no ipsnat_ct6 under an older build's attach.
  if (auto ct6 = pins::Ct6Map::open_pinned(pin_root_))
    r += pins::Ct6Gc(*ct6).sweep(now, ct::Timeouts::from_config(maps_->config()));
  ++runs_;
  evicted_ += r.removed;
  entries_deleted_ += r.entries_deleted;
  last_run_ = now_unix();
  if (r.removed) spdlog::debug("ct_gc: {} of {} flows expired", r.removed, r.flows);
}

void CtGcService::collect(metrics::Exposition& e) const {
  using metrics::MetricType;
  e.family("ipsnat_ct_gc_runs_total", "Conntrack GC sweeps", MetricType::kCounter).add(runs_);
  e.family("ipsnat_ct_gc_evicted_flows_total", "Flows deleted by the GC after their timeout", MetricType::kCounter)
      .add(evicted_);
}

void CtGcService::report(state::DaemonState& s) const {
  s.gc.enabled = true;
  s.gc.runs = runs_;
  s.gc.evicted = evicted_;
  s.gc.last_run = last_run_;
  s.gc.last_error = last_error_;
}

}  // namespace ipsnat::daemon
