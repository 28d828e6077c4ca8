#include "state/status.h"

#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <cstdio>
#include <optional>
#include <set>
#include <vector>

#include "maps/config.h"
#include "maps/spd.h"
#include "maps/stats.h"
#include "state/daemon_state.h"
#include "pins/names.h"
#include "state/pinned.h"
#include "sys/bpf_prog.h"
#include "sys/hook_census.h"
#include "sys/tc_hook.h"
#include "util/error.h"

namespace ipsnat::state {

namespace {

nlohmann::json hooks_of_this_netns() {
  nlohmann::json devices = nlohmann::json::array();
  struct if_nameindex* all = if_nameindex();
  if (!all) return devices;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
    nlohmann::json hooks = nlohmann::json::array();
    for (auto [dir, label] : {std::pair{sys::TcDirection::kIngress, "tc-ingress"}, std::pair{sys::TcDirection::kEgress, "tc-egress"}}) {
      uint32_t id = sys::TcHook(static_cast<int>(i->if_index), dir).query();
      if (id)
        hooks.push_back({{"hook", label},
                         {"prog_id", id},
                         {"prog", sys::bpf_prog_name(id)},
                         {"runs_before", sys::programs_before_ipsnat(static_cast<int>(i->if_index), dir)}});
    }
    if (!hooks.empty()) devices.push_back({{"dev", i->if_name}, {"ifindex", i->if_index}, {"hooks", hooks}});
  }
  if_freenameindex(all);
  return devices;
}

std::string ago(int64_t then, int64_t now) {
  if (then <= 0) return "never";
  int64_t d = now - then;
  if (d < 120) return std::to_string(d) + "s ago";
  if (d < 7200) return std::to_string(d / 60) + "m ago";
  return std::to_string(d / 3600) + "h ago";
}

uint64_t reason_packets(const std::optional<std::vector<ReasonCount>>& reasons, unsigned r) {
  if (reasons)
    for (const auto& c : *reasons)
      if (c.reason == r) return c.packets;
  return 0;
}

// The resource limits (docs/robustness.md row 5): how close each is, what it dropped, the hint.
nlohmann::json gather_limits(const PinnedState& pins) {
  nlohmann::json l = nlohmann::json::object();
  auto reasons = pins.reasons();
  if (auto ct_max = pins.max_entries("ipsnat_ct")) {
    std::optional<ConntrackSummary> ct;
    std::string unread;  // why ipsnat_ct is not read (another build's layout)
    try {
      ct = pins.conntrack();
    } catch (const UserError& e) {
      unread = std::string(e.what()) + " (" + e.hint() + ")";
    }
    FlowCounts v4 = ct ? ct->ipv4 : FlowCounts{};
    l["conntrack"] = {{"entries", v4.entries},
                      {"max_entries", *ct_max},
                      {"flows", v4.flows},
                      {"max_flows", *ct_max / 2},
                      {"flows_by_proto", v4.by_proto},
                      {"full", v4.entries + 2 > *ct_max},
                      {"drops_ct_full", reason_packets(reasons, IPSNAT_R_DROP_CT_FULL)},
                      {"hint", "raise --ct-max (ipsnat attach; the map is resized only when recreated)"}};
    if (!unread.empty()) l["conntrack"]["error"] = unread;
    // The IPv6 (NAT66) table: its size is fixed (maps/ct6.h); drop-ct-full counts both tables.
    auto ct6_max = pins.max_entries(pins::kCt6);
    if (ct && ct->ipv6 && ct6_max)
      l["conntrack6"] = {{"entries", ct->ipv6->entries},
                         {"max_entries", *ct6_max},
                         {"flows", ct->ipv6->flows},
                         {"max_flows", *ct6_max / 2},
                         {"flows_by_proto", ct->ipv6->by_proto},
                         {"full", ct->ipv6->entries + 2 > *ct6_max},
                         {"hint", "shorten the timeouts (config): ipsnat_ct6 has a fixed size"}};
    ipsnat_config cfg = pins.datapath_config().value_or(ipsnat_config{});
    uint32_t min = cfg.port_min ? cfg.port_min : IPSNAT_DEF_PORT_MIN, max = cfg.port_max ? cfg.port_max : IPSNAT_DEF_PORT_MAX;
    if (max < min) max = min;
    nlohmann::json by = nlohmann::json::array();
    if (ct)
      for (const auto& [addr, n] : ct->ports_in_use)
        by.push_back({{"nat_address", addr}, {"bindings", n}, {"busiest_endpoint", ct->busiest_endpoint.count(addr) ? ct->busiest_endpoint.at(addr) : 0}});
    l["nat_ports"] = {{"port_min", min},
                      {"port_max", max},
                      {"range_size", max - min + 1},
                      {"by_address", by},
                      {"drops_no_port", reason_packets(reasons, IPSNAT_R_DROP_NO_PORT)},
                      {"hint", "widen port_range (config) - each NAT address has the range once per remote endpoint"}};
  }
  auto fills = pins.spd_fills();
  if (!fills.empty()) {
    nlohmann::json spd;
    auto h = pins.spd_health_state();
    spd["health_map"] = h.has_value();
    spd["fail_closed"] = h && (h->flags & SPD_HEALTH_FAIL_CLOSED);
    spd["unrepresentable"] = h && (h->flags & SPD_HEALTH_FAIL_CLOSED) && (h->flags & SPD_HEALTH_UNREPRESENTABLE);
    spd["write_failed"] = h && (h->flags & SPD_HEALTH_FAIL_CLOSED) && (h->flags & SPD_HEALTH_WRITE_FAILED);
    spd["policy_unknown"] = h && (h->flags & SPD_HEALTH_POLICY_UNKNOWN);
    spd["fail_closed_since"] = h ? h->since : 0;
    spd["capacity_failures"] = h ? h->failures : 0;
    if (h) spd["needed_per_generation"] = {{"spd_dst", h->dst}, {"spd_src", h->src}, {"spd_lists", h->lists}};
    nlohmann::json maps = nlohmann::json::array();
    for (const auto& f : fills)
      maps.push_back({{"name", f.map}, {"max_entries", f.max_entries}, {"active_generation", f.active}, {"other_generation", f.other}});
    spd["maps"] = maps;
    spd["drops_spd_incomplete"] = reason_packets(reasons, IPSNAT_R_DROP_SPD_INCOMPLETE);
    spd["drops_spd_unrepresentable"] = reason_packets(reasons, IPSNAT_R_DROP_SPD_UNREPRESENTABLE);
    spd["hint"] = "raise --spd-max (ipsnat attach; each map must hold two generations of the SPD)";
    l["spd"] = spd;
  }
  return l;
}

std::string limits_to_text(const nlohmann::json& l, int64_t now) {
  std::string out;
  if (l.empty()) return out;
  out += "limits:\n";
  char line[512];
  if (l.contains("conntrack") && l["conntrack"].contains("error")) {
    out += "  conntrack: NOT READ: " + l["conntrack"].value("error", "") + "\n";
  } else if (l.contains("conntrack")) {
    const auto& c = l["conntrack"];
    uint64_t drops = c.value("drops_ct_full", uint64_t(0));
    std::snprintf(line, sizeof(line), "  conntrack: %llu/%llu entries (%llu of %llu flows)%s, %llu packets dropped (drop-ct-full)%s\n",
                  static_cast<unsigned long long>(c.value("entries", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("max_entries", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("flows", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("max_flows", uint64_t(0))), c.value("full", false) ? " FULL" : "",
                  static_cast<unsigned long long>(drops),
                  drops || c.value("full", false) ? ("; " + c.value("hint", "")).c_str() : "");
    out += line;
  }
  if (l.contains("conntrack6")) {
    const auto& c = l["conntrack6"];
    std::string protos;
    for (const auto& [proto, n] : c.at("flows_by_proto").items())
      protos += (protos.empty() ? ": " : ", ") + std::to_string(n.get<uint64_t>()) + " " + proto;
    std::snprintf(line, sizeof(line), "  conntrack6: %llu/%llu entries (%llu of %llu flows%s)%s%s\n",
                  static_cast<unsigned long long>(c.value("entries", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("max_entries", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("flows", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("max_flows", uint64_t(0))), protos.c_str(),
                  c.value("full", false) ? " FULL" : "", c.value("full", false) ? ("; " + c.value("hint", "")).c_str() : "");
    out += line;
  }
  if (l.contains("nat_ports")) {
    const auto& n = l["nat_ports"];
    uint64_t drops = n.value("drops_no_port", uint64_t(0));
    uint64_t size = n.value("range_size", uint64_t(0));
    std::snprintf(line, sizeof(line), "  nat ports: range %u-%u (%llu ports per NAT address and remote endpoint), %llu packets dropped (drop-no-port)%s\n",
                  n.value("port_min", 0u), n.value("port_max", 0u), static_cast<unsigned long long>(size),
                  static_cast<unsigned long long>(drops), drops ? ("; " + n.value("hint", "")).c_str() : "");
    out += line;
    for (const auto& a : n.at("by_address")) {
      uint64_t busiest = a.value("busiest_endpoint", uint64_t(0));
      std::snprintf(line, sizeof(line), "    %s: %llu bindings, busiest remote endpoint %llu/%llu ports%s\n",
                    a.value("nat_address", "").c_str(), static_cast<unsigned long long>(a.value("bindings", uint64_t(0))),
                    static_cast<unsigned long long>(busiest), static_cast<unsigned long long>(size),
                    busiest >= size ? " EXHAUSTED" : "");
      out += line;
    }
  }
  if (l.contains("spd")) {
    const auto& s = l["spd"];
    std::string maps;
    for (const auto& m : s.at("maps"))
      maps += (maps.empty() ? "" : ", ") + m.value("name", "") + " " + std::to_string(m.value("active_generation", uint64_t(0))) +
              "+" + std::to_string(m.value("other_generation", uint64_t(0))) + "/" + std::to_string(m.value("max_entries", 0u));
    uint64_t drops = s.value("drops_spd_incomplete", uint64_t(0));
    int64_t since = static_cast<int64_t>(s.value("fail_closed_since", uint64_t(0)));
    std::string since_text = since ? " (since " + ago(since, now) + ")" : std::string();
    const char* closed = "the datapath fails closed (cleartext to every destination dropped at the uplink)";
    if (s.value("write_failed", false)) {
      out += "  spd: NOT WRITTEN" + since_text + ": the kernel refused a map write, " + closed +
             "; the SPD mirror's log says why and it retries every second\n";
    } else if (s.value("unrepresentable", false)) {
      out += "  spd: NOT REPRESENTABLE" + since_text + ": a policy cannot be mirrored exactly, " + closed +
             "; `ipsnat policies` names the policy\n";
    } else if (s.value("fail_closed", false)) {
      const auto& need = s.at("needed_per_generation");
      out += "  spd: LARGER THAN THE MAPS" + since_text + ": " + closed + "; the SPD needs " +
             std::to_string(need.value("spd_dst", 0u)) + " spd_dst, " + std::to_string(need.value("spd_src", 0u)) +
             " spd_src, " + std::to_string(need.value("spd_lists", 0u)) + " spd_lists entries per generation; " +
             s.value("hint", "") + "\n";
    } else {
      out += std::string("  spd: fits") + (s.value("health_map", false) ? "" : " (no spd_health map: cannot fail closed; attach again)") + "\n";
    }
    if (s.value("policy_unknown", false))
      out += "  spd: A POLICY IS NOT REPRESENTABLE: cleartext to its destinations fails closed (" +
             std::to_string(s.value("drops_spd_unrepresentable", uint64_t(0))) +
             " packets dropped, drop-spd-unrepresentable), the rest of the SPD is mirrored exactly; `ipsnat policies` "
             "names the policy\n";
    out += "    entries (active+other generation/max): " + maps + "; " + std::to_string(drops) +
           " packets dropped (drop-spd-incomplete), " + std::to_string(s.value("capacity_failures", uint64_t(0))) +
           " writes refused for lack of room\n";
  }
  return out;
}

}  // namespace

nlohmann::json gather_status(const StatusOptions& opts) {
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  nlohmann::json j;
  j["pin_root"] = opts.pin_root;
  j["devices"] = hooks_of_this_netns();

  PinnedState pins(opts.pin_root);
  j["pinned"] = pins.exists();
  nlohmann::json maps = nlohmann::json::array();
  for (const auto& m : pins.map_fills()) {
    nlohmann::json mj{{"name", m.name}, {"id", m.id}, {"type", m.type}, {"max_entries", m.max_entries}};
    if (m.entries) mj["entries"] = *m.entries;
    maps.push_back(mj);
  }
  j["maps"] = maps;
  nlohmann::json counters = nlohmann::json::array();
  if (auto reasons = pins.reasons())
    for (const auto& r : *reasons) counters.push_back({{"reason", r.name}, {"packets", r.packets}, {"bytes", r.bytes}});
  j["counters"] = counters;

  j["limits"] = gather_limits(pins);

  auto daemon = read_state_file(opts.state_dir);
  if (daemon) {
    nlohmann::json d = to_json(*daemon);
    d["alive"] = daemon_alive(*daemon, now);
    d["state_file"] = state_file_path(opts.state_dir);
    j["daemon"] = d;
  } else {
    j["daemon"] = {{"alive", false}, {"state_file", state_file_path(opts.state_dir)}};
  }
  j["now"] = now;
  return j;
}

bool status_healthy(const nlohmann::json& s, std::string& why) {
  const auto& d = s.at("daemon");
  if (!d.value("alive", false)) {
    why = d.contains("pid") ? "the daemon is not running (state " + d.value("state_file", "") + " is stale or says stopped)"
                            : "no daemon state at " + d.value("state_file", "");
    return false;
  }
  std::set<std::string> hooked;
  for (const auto& dev : s.at("devices")) hooked.insert(dev.value("dev", ""));
  for (const auto& want : d.value("devices", std::vector<std::string>{}))
    if (!hooked.count(want)) {
      why = "configured device \"" + want + "\" has no ipsnat hook";
      return false;
    }
  // Its routes or companion policies may be missing until a retry succeeds. A device that is gone
  // (an xfrm interface its IKE daemon removed, a PPP link down) has nothing left to miss: the link's
  // return re-plans it, and a configured one already fails the hook check above.
  if (d.contains("device_replan_errors") && d["device_replan_errors"].is_object())
    for (const auto& [dev, err] : d["device_replan_errors"].items()) {
      if (if_nametoindex(dev.c_str()) == 0) continue;
      why = "re-planning device \"" + dev + "\" failed: " + err.get<std::string>();
      return false;
    }
  return true;
}

std::string status_to_text(const nlohmann::json& s) {
  std::string out;
  int64_t now = s.value("now", int64_t(0));
  const auto& d = s.at("daemon");
  if (d.value("alive", false)) {
    out += "daemon: running, pid " + std::to_string(d.value("pid", 0)) + ", started " + ago(d.value("started", int64_t(0)), now) +
           ", config " + (d.value("config", "").empty() ? std::string("(defaults)") : d.value("config", "")) + ", " +
           std::to_string(d.value("reloads", 0)) + " reloads, " + std::to_string(d.value("reload_failures", 0)) +
           " rejected\n";
    if (!d.value("last_reload_error", "").empty()) out += "  last reload error: " + d.value("last_reload_error", "") + "\n";
    if (d.contains("device_errors") && d["device_errors"].is_object())
      for (const auto& [dev, err] : d["device_errors"].items())
        out += "  device " + dev + " not attached: " + err.get<std::string>() + "\n";
    if (d.contains("device_replan_errors") && d["device_replan_errors"].is_object())
      for (const auto& [dev, err] : d["device_replan_errors"].items())
        out += "  device " + dev + " re-planning failed (retried every " + std::to_string(kDeviceRetrySeconds) +
               " s): " + err.get<std::string>() + "\n";
    const auto& m = d.at("mirror");
    if (m.value("enabled", false))
      out += "  mirror: " + std::string(m.value("healthy", false) ? "healthy" : "UNHEALTHY") + ", " +
             std::to_string(m.value("policies", 0)) + " policies, " + std::to_string(m.value("events", 0)) +
             " events, " + std::to_string(m.value("resyncs", 0)) + " resyncs, last resync " +
             ago(m.value("last_resync", int64_t(0)), now) + "\n";
    else
      out += "  mirror: not running in this build\n";
    const auto& g = d.at("gc");
    if (g.value("enabled", false))
      out += "  conntrack gc: " + std::to_string(g.value("runs", 0)) + " runs, " + std::to_string(g.value("evicted", 0)) +
             " evicted, last " + ago(g.value("last_run", int64_t(0)), now) + "\n";
    else
      out += "  conntrack gc: not running in this build\n";
  } else {
    out += "daemon: not running\n";
  }
  if (s.at("devices").empty()) out += "hooks: none in this network namespace\n";
  for (const auto& dev : s.at("devices"))
    for (const auto& h : dev.at("hooks")) {
      out += "hook: " + dev.value("dev", "") + " " + h.value("hook", "") + " prog " + h.value("prog", "") + " id " +
             std::to_string(h.value("prog_id", 0)) + "\n";
      for (const auto& p : h.value("runs_before", std::vector<std::string>{}))
        out += "  warning: " + p + " runs before it and may end classification (ipsnat never sees what it passes)\n";
    }
  if (!s.value("pinned", false)) out += "maps: nothing pinned under " + s.value("pin_root", "") + "\n";
  for (const auto& m : s.at("maps")) {
    out += "map: " + m.value("name", "") + " (" + m.value("type", "") + ", id " + std::to_string(m.value("id", 0)) + ") ";
    out += m.contains("entries") ? std::to_string(m.value("entries", 0)) + "/" + std::to_string(m.value("max_entries", 0)) + " entries\n"
                                 : std::to_string(m.value("max_entries", 0)) + " slots\n";
  }
  bool any = false;
  for (const auto& c : s.at("counters")) {
    if (c.value("packets", uint64_t(0)) == 0) continue;
    if (!any) out += "counters:\n";
    any = true;
    char line[128];
    std::snprintf(line, sizeof(line), "  %-24s %12llu pkts %14llu bytes\n", c.value("reason", "").c_str(),
                  static_cast<unsigned long long>(c.value("packets", uint64_t(0))),
                  static_cast<unsigned long long>(c.value("bytes", uint64_t(0))));
    out += line;
  }
  if (!any && !s.at("counters").empty()) out += "counters: all zero\n";
  if (s.contains("limits")) out += limits_to_text(s.at("limits"), now);
  return out;
}

}  // namespace ipsnat::state
