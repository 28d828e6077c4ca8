#include "state/status.h"

#include <bpf/bpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <set>

#include "state/daemon_state.h"
#include "state/pinned.h"
#include "sys/tc_hook.h"

namespace ipsnat::state {

namespace {

std::string prog_name(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  std::string name;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
  close(fd);
  return name;
}

nlohmann::json hooks_of_this_netns() {
  nlohmann::json devices = nlohmann::json::array();
  struct if_nameindex* all = if_nameindex();
  if (!all) return devices;
  for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
    nlohmann::json hooks = nlohmann::json::array();
    for (auto [dir, label] : {std::pair{TcDirection::kIngress, "tc-ingress"}, std::pair{TcDirection::kEgress, "tc-egress"}}) {
      uint32_t id = TcHook(static_cast<int>(i->if_index), dir).query();
      if (id) hooks.push_back({{"hook", label}, {"prog_id", id}, {"prog", prog_name(id)}});
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
    for (const auto& h : dev.at("hooks"))
      out += "hook: " + dev.value("dev", "") + " " + h.value("hook", "") + " prog " + h.value("prog", "") + " id " +
             std::to_string(h.value("prog_id", 0)) + "\n";
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
  return out;
}

}  // namespace ipsnat::state
