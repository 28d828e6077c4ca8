#pragma once
// The record of what `ipsnat attach` added to a device, so that `ipsnat detach` — from a fresh
// process, also after a crash — removes exactly that. JSON, one file per device and network
// namespace: STATE_DIR/<netns inode>@<dev>.json (STATE_DIR = $IPSNAT_STATE_DIR or /run/ipsnat),
// 0600 in a 0700 directory, replaced atomically (write + rename). Steps are recorded *before*
// they are applied and dropped again when applying fails, so a crash leaves at most a step
// that detach finds already absent.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attach/plan.h"

namespace ipsnat::attach {

struct AttachState {
  static constexpr int kFormat = 1;
  std::string dev;
  int ifindex = 0;
  uint64_t netns = 0;
  std::string mode;
  std::string kind;
  uint32_t if_id = 0;
  std::string pin_root;
  std::vector<std::string> prog_pins;
  bool clsact_created = false;
  // The clsact qdisc on lo was created for this attach's lo step (or handed over to it by the
  // attach that created it): the last attach using lo removes it.
  bool lo_clsact_created = false;
  std::vector<std::string> inside;  // NAT inside prefixes the SPD mirror is configured with
  // The --inside prefixes attach was given; empty: the host's re-plan infers them again, so a LAN
  // (or an IPv6 prefix) that appears after attach is seen.
  std::vector<std::string> inside_configured;
  std::vector<std::string> forwards;  // port-forwards this attach wrote (ForwardRule::spec())
  // The attach's own knobs, so that the host process re-plans the device as it was attached.
  uint32_t table = Settings{}.table;
  uint32_t rule_priority = Settings{}.rule_priority;
  bool own_table = false;  // --table or --rule-priority: never the main table
  uint32_t route_mtu = 0;
  bool masquerade = false;
  std::string masquerade_addr;  // "" : the uplink's own address
  bool xdp_prefilter = false;
  bool binat = false;
  int daemon_pid = 0;  // the host process (attach/host.h) when the device was attached
  std::vector<Step> steps;  // applied (or being applied), in order

  nlohmann::json to_json() const;
  static AttachState from_json(const nlohmann::json& j);
};

class StateStore {
 public:
  static std::string resolve_dir();
  explicit StateStore(std::string dir) : dir_(std::move(dir)) {}
  // "<netns inode>@<dev>": a device name is unique only within its namespace.
  static std::string id_for(const std::string& dev);
  static uint64_t current_netns();

  std::optional<AttachState> load(const std::string& id) const;
  void save(const std::string& id, const AttachState& s) const;
  void remove(const std::string& id) const;
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& id) const { return dir_ + "/" + id + ".json"; }
  // The devices attached in this network namespace with their maps under pin_root, by id.
  std::vector<std::pair<std::string, AttachState>> list_here(const std::string& pin_root) const;
  // Every device attached in this network namespace, whatever its pin root, by id.
  std::vector<std::pair<std::string, AttachState>> list_netns() const;

 private:
  std::string dir_;
};

}  // namespace ipsnat::attach
