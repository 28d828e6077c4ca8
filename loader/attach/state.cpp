#include "attach/state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::attach {

nlohmann::json AttachState::to_json() const {
  nlohmann::json steps_j = nlohmann::json::array();
  for (const auto& s : steps) steps_j.push_back(step_to_json(s));
  return {{"format", kFormat},       {"dev", dev},          {"ifindex", ifindex},
          {"netns", netns},          {"mode", mode},        {"kind", kind},
          {"if_id", if_id},          {"pin_root", pin_root}, {"prog_pins", prog_pins},
          {"clsact_created", clsact_created}, {"lo_clsact_created", lo_clsact_created}, {"inside", inside},
          {"inside_configured", inside_configured}, {"forwards", forwards}, {"table", table},
          {"rule_priority", rule_priority}, {"own_table", own_table}, {"route_mtu", route_mtu}, {"masquerade", masquerade},
          {"masquerade_addr", masquerade_addr}, {"xdp_prefilter", xdp_prefilter}, {"binat", binat},
          {"daemon_pid", daemon_pid},
          {"steps", steps_j}};
}

AttachState AttachState::from_json(const nlohmann::json& j) {
  if (j.value("format", 0) != kFormat)
    throw UserError("attach state has format " + std::to_string(j.value("format", 0)) + ", expected " +
                        std::to_string(kFormat),
                    "written by another ipsnat version");
  AttachState s;
  s.dev = j.at("dev");
  s.ifindex = j.at("ifindex");
  s.netns = j.at("netns");
  s.mode = j.at("mode");
  s.kind = j.value("kind", "");
  s.if_id = j.value("if_id", 0u);
  s.pin_root = j.at("pin_root");
  s.prog_pins = j.value("prog_pins", std::vector<std::string>{});
  s.clsact_created = j.value("clsact_created", false);
  s.lo_clsact_created = j.value("lo_clsact_created", false);
  s.inside = j.value("inside", std::vector<std::string>{});
  // A record without the key kept its inside prefixes fixed: so does its re-plan.
  s.inside_configured = j.value("inside_configured", s.inside);
  s.forwards = j.value("forwards", std::vector<std::string>{});
  s.table = j.value("table", s.table);
  s.rule_priority = j.value("rule_priority", s.rule_priority);
  s.own_table = j.value("own_table", false);
  s.route_mtu = j.value("route_mtu", s.route_mtu);
  s.masquerade = j.value("masquerade", false);
  s.masquerade_addr = j.value("masquerade_addr", "");
  s.xdp_prefilter = j.value("xdp_prefilter", false);
  s.binat = j.value("binat", false);
  s.daemon_pid = j.value("daemon_pid", 0);
  for (const auto& st : j.at("steps")) s.steps.push_back(step_from_json(st));
  return s;
}

std::string StateStore::resolve_dir() {
  if (const char* env = std::getenv("IPSNAT_STATE_DIR"); env && *env) return env;
  return "/run/ipsnat";
}

uint64_t StateStore::current_netns() {
  struct stat st {};
  if (stat("/proc/self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

std::string StateStore::id_for(const std::string& dev) { return std::to_string(current_netns()) + "@" + dev; }

std::optional<AttachState> StateStore::load(const std::string& id) const {
  std::ifstream in(path(id));
  if (!in) return std::nullopt;
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw UserError("attach state " + path(id) + " is unreadable: " + e.what(), "remove it after checking the device");
  }
  return AttachState::from_json(j);
}

void StateStore::save(const std::string& id, const AttachState& s) const {
  if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("creating " + dir_, errno);
  std::string tmp = path(id) + ".tmp";
  Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throw SysError("writing " + tmp, errno);
  std::string text = s.to_json().dump(1) + "\n";
  ssize_t n = write(fd.get(), text.data(), text.size());
  int err = errno;
  fsync(fd.get());
  fd.reset();
  if (n != static_cast<ssize_t>(text.size())) throw SysError("writing " + tmp, n < 0 ? err : EIO);
  if (rename(tmp.c_str(), path(id).c_str()) != 0) throw SysError("renaming " + tmp, errno);
}

void StateStore::remove(const std::string& id) const { unlink(path(id).c_str()); }

std::vector<std::pair<std::string, AttachState>> StateStore::list_here(const std::string& pin_root) const {
  auto out = list_netns();
  std::erase_if(out, [&](const auto& entry) { return entry.second.pin_root != pin_root; });
  return out;
}

std::vector<std::pair<std::string, AttachState>> StateStore::list_netns() const {
  std::vector<std::pair<std::string, AttachState>> out;
  std::string prefix = std::to_string(current_netns()) + "@";
  DIR* d = opendir(dir_.c_str());
  if (!d) return out;
  std::vector<std::string> ids;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.starts_with(prefix) && name.ends_with(".json")) ids.push_back(name.substr(0, name.size() - 5));
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  for (const auto& id : ids) {
    try {
      if (auto st = load(id)) out.emplace_back(id, std::move(*st));
    } catch (const std::exception&) {
      // A record being replaced or unreadable: its own attach/detach reports it.
    }
  }
  return out;
}

}  // namespace ipsnat::attach
