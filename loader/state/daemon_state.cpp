#include "state/daemon_state.h"

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace ipsnat::state {

nlohmann::json to_json(const DaemonState& s) {
  return {
      {"version", s.version},
      {"pid", s.pid},
      {"running", s.running},
      {"started", s.started},
      {"updated", s.updated},
      {"config", s.config},
      {"config_loaded", s.config_loaded},
      {"reloads", s.reloads},
      {"reload_failures", s.reload_failures},
      {"last_reload_error", s.last_reload_error},
      {"devices", s.devices},
      {"device_errors", s.device_errors},
      {"device_replan_errors", s.device_replan_errors},
      {"pin_root", s.pin_root},
      {"exit_when_detached", s.exit_when_detached},
      {"metrics", s.metrics},
      {"mirror",
       {{"enabled", s.mirror.enabled},
        {"healthy", s.mirror.healthy},
        {"events", s.mirror.events},
        {"resyncs", s.mirror.resyncs},
        {"overruns", s.mirror.overruns},
        {"last_resync", s.mirror.last_resync},
        {"policies", s.mirror.policies},
        {"last_error", s.mirror.last_error}}},
      {"gc",
       {{"enabled", s.gc.enabled},
        {"runs", s.gc.runs},
        {"evicted", s.gc.evicted},
        {"last_run", s.gc.last_run},
        {"last_error", s.gc.last_error}}},
  };
}

DaemonState state_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw UserError("daemon state is not a JSON object");
  DaemonState s;
  s.version = j.value("version", 0);
  s.pid = j.value("pid", 0);
  s.running = j.value("running", false);
  s.started = j.value("started", int64_t(0));
  s.updated = j.value("updated", int64_t(0));
  s.config = j.value("config", "");
  s.config_loaded = j.value("config_loaded", int64_t(0));
  s.reloads = j.value("reloads", uint64_t(0));
  s.reload_failures = j.value("reload_failures", uint64_t(0));
  s.last_reload_error = j.value("last_reload_error", "");
  s.devices = j.value("devices", std::vector<std::string>{});
  s.device_errors = j.value("device_errors", std::map<std::string, std::string>{});
  s.device_replan_errors = j.value("device_replan_errors", std::map<std::string, std::string>{});
  s.pin_root = j.value("pin_root", "");
  s.exit_when_detached = j.value("exit_when_detached", false);
  s.metrics = j.value("metrics", "");
  if (auto m = j.find("mirror"); m != j.end() && m->is_object()) {
    s.mirror.enabled = m->value("enabled", false);
    s.mirror.healthy = m->value("healthy", false);
    s.mirror.events = m->value("events", uint64_t(0));
    s.mirror.resyncs = m->value("resyncs", uint64_t(0));
    s.mirror.overruns = m->value("overruns", uint64_t(0));
    s.mirror.last_resync = m->value("last_resync", int64_t(0));
    s.mirror.policies = m->value("policies", uint64_t(0));
    s.mirror.last_error = m->value("last_error", "");
  }
  if (auto g = j.find("gc"); g != j.end() && g->is_object()) {
    s.gc.enabled = g->value("enabled", false);
    s.gc.runs = g->value("runs", uint64_t(0));
    s.gc.evicted = g->value("evicted", uint64_t(0));
    s.gc.last_run = g->value("last_run", int64_t(0));
    s.gc.last_error = g->value("last_error", "");
  }
  return s;
}

std::string state_file_path(const std::string& state_dir) { return state_dir + "/daemon.json"; }

void write_state_file(const std::string& state_dir, const DaemonState& s) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) throw UserError("cannot create state directory " + state_dir + ": " + ec.message());
  std::string path = state_file_path(state_dir);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw SysError("writing " + tmp, errno);
    out << to_json(s).dump() << "\n";
    if (!out.flush()) throw SysError("writing " + tmp, errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) < 0) throw SysError("renaming " + tmp, errno);
}

std::optional<DaemonState> read_state_file(const std::string& state_dir) {
  std::string path = state_file_path(state_dir);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw UserError("cannot read " + path + ": " + std::strerror(errno));
  }
  try {
    return state_from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception& e) {
    throw UserError("malformed daemon state " + path + ": " + e.what());
  }
}

bool daemon_alive(const DaemonState& s, int64_t now) {
  if (!s.running || s.pid <= 0) return false;
  if (kill(s.pid, 0) < 0 && errno == ESRCH) return false;
  return now - s.updated <= 3 * kPublishInterval.count();
}

}  // namespace ipsnat::state
