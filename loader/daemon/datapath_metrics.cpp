#include "daemon/datapath_metrics.h"

#include <spdlog/spdlog.h>

#include <string_view>

#include "util/error.h"

namespace ipsnat::daemon {

using metrics::MetricType;

namespace {
// "drop-leak-guard" -> {"drop", "leak-guard"}: the verdict is a label of its own so that
// `sum by (verdict)` gives drops vs passes vs translations.
std::pair<std::string, std::string> verdict_of(const std::string& reason) {
  auto dash = reason.find('-');
  if (dash == std::string::npos) return {"other", reason};
  return {reason.substr(0, dash), reason.substr(dash + 1)};
}
}  // namespace

void add_datapath_metrics(metrics::Exposition& e, const DatapathSnapshot& snap, const config::PortRange& ports) {
  e.family("ipsnat_datapath_pinned", "1 when the datapath's maps are pinned (ipsnat is attached)", MetricType::kGauge)
      .add(snap.reasons ? 1 : 0);
  if (snap.reasons) {
    auto& pk = e.family("ipsnat_packets_total", "Packets seen by the datapath, by verdict and reason (summed over CPUs)",
                        MetricType::kCounter);
    auto& by = e.family("ipsnat_bytes_total", "Bytes seen by the datapath, by verdict and reason (summed over CPUs)",
                        MetricType::kCounter);
    for (const auto& r : *snap.reasons) {
      auto [verdict, why] = verdict_of(r.name);
      pk.add(r.packets, {{"verdict", verdict}, {"reason", r.name}});
      by.add(r.bytes, {{"verdict", verdict}, {"reason", r.name}});
    }
  }
  if (!snap.maps.empty()) {
    auto& max = e.family("ipsnat_map_max_entries", "Capacity of each pinned BPF map", MetricType::kGauge);
    auto& used = e.family("ipsnat_map_entries", "Entries in each pinned hash/LPM map", MetricType::kGauge);
    for (const auto& m : snap.maps) {
      max.add(m.max_entries, {{"map", m.name}});
      if (m.entries) used.add(*m.entries, {{"map", m.name}});
    }
  }
  if (snap.conntrack) {
    const auto& ct = *snap.conntrack;
    // Each table by its protocols (every one listed, 0 included).
    auto by_proto = [](metrics::MetricFamily& f, const state::FlowCounts& c, const auto& protos) {
      for (const char* p : protos) {
        auto it = c.by_proto.find(p);
        f.add(it == c.by_proto.end() ? 0 : it->second, {{"proto", p}});
      }
    };
    by_proto(e.family("ipsnat_active_flows", "Flows in the IPv4 conntrack map (ipsnat_ct), by protocol", MetricType::kGauge),
             ct.ipv4, state::kProtos4);
    if (ct.ipv6)
      by_proto(e.family("ipsnat_active_flows6", "NAT66 flows in the IPv6 conntrack map (ipsnat_ct6), by protocol",
                        MetricType::kGauge),
               *ct.ipv6, state::kProtos6);
    // NAT addresses of both families (IPv6 ones are NAT66 addresses).
    auto& used = e.family("ipsnat_nat_ports_in_use", "NAT ports (and echo ids) bound on each NAT address",
                          MetricType::kGauge);
    auto& frac = e.family("ipsnat_nat_port_range_use_ratio",
                          "Bound NAT ports per NAT address over the size of the port range (0..1 per protocol "
                          "summed, so it can exceed 1 with TCP and UDP sharing a port number)",
                          MetricType::kGauge);
    auto& busiest = e.family("ipsnat_nat_busiest_endpoint_ports",
                             "Per NAT address, the most NAT ports bound toward one remote endpoint (address, port, "
                             "protocol): the port range runs out per remote endpoint",
                             MetricType::kGauge);
    for (const auto& [addr, n] : ct.ports_in_use) {
      used.add(n, {{"nat_address", addr}});
      frac.add_double(static_cast<double>(n) / ports.size(), {{"nat_address", addr}});
      auto b = ct.busiest_endpoint.find(addr);
      busiest.add(b == ct.busiest_endpoint.end() ? 0 : b->second, {{"nat_address", addr}});
    }
    e.family("ipsnat_nat_port_range_size", "Ports in the configured NAPT range", MetricType::kGauge).add(ports.size());
    // The per-policy numbers cover flows still tracked (entries carry the policy's reqid); a
    // monotonic per-policy counter needs a per-policy map in the datapath (hook: here).
    auto& pf = e.family("ipsnat_policy_flows", "Tracked flows by the reqid of the policy that required them",
                        MetricType::kGauge);
    auto& pp = e.family("ipsnat_policy_tracked_packets",
                        "Translated packets (both directions) of the flows currently tracked, by policy reqid",
                        MetricType::kGauge);
    auto& pb = e.family("ipsnat_policy_tracked_bytes",
                        "Translated bytes (both directions) of the flows currently tracked, by policy reqid",
                        MetricType::kGauge);
    for (const auto& [reqid, t] : ct.by_reqid) {
      metrics::Labels l{{"reqid", std::to_string(reqid)}};
      pf.add(t.flows, l);
      pp.add(t.packets, l);
      pb.add(t.bytes, l);
    }
  }
}

void DatapathMetrics::collect(metrics::Exposition& e) const {
  DatapathSnapshot snap;
  snap.reasons = pins_.reasons();
  snap.maps = pins_.map_fills();
  try {
    snap.conntrack = pins_.conntrack();
  } catch (const UserError& e) {  // another build's ipsnat_ct: no conntrack numbers rather than wrong ones
    spdlog::debug("metrics: {}", e.what());
  }
  add_datapath_metrics(e, snap, ports_);
  if (auto h = pins_.spd_health_state()) {
    e.family("ipsnat_spd_fail_closed",
             "1 while the maps cannot hold the SPD (too large, or a policy not representable) and the datapath fails "
             "closed (docs/robustness.md)",
             MetricType::kGauge)
        .add(h->flags & SPD_HEALTH_FAIL_CLOSED ? 1 : 0);
    e.family("ipsnat_spd_capacity_failures_total", "SPD map writes refused for lack of room (map full)",
             MetricType::kCounter)
        .add(h->failures);
  }
}

}  // namespace ipsnat::daemon
