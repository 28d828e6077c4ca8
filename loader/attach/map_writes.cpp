#include "attach/map_writes.h"

#include <bpf/bpf.h>

#include <cerrno>

#include "mirror/mirror.h"
#include "pins/dev_map.h"
#include "pins/names.h"
#include "state/pinned.h"
#include "util/error.h"

namespace ipsnat::attach {
namespace {

std::vector<ForwardEntry> entries_of(const std::vector<std::string>& specs) {
  std::vector<ForwardRule> rules;
  for (const auto& s : specs) rules.push_back(parse_forward_spec(s));
  return forward_entries(rules);
}

}  // namespace

void write_device_config(int fd, int gen_fd, const std::string& pin_root, int ifindex, const ipsnat_dev_cfg& cfg) {
  uint32_t key = static_cast<uint32_t>(ifindex);
  if (fd >= 0) {
    pins::write_device(fd, gen_fd, key, &cfg);
    return;
  }
  if (!pins::write_pinned_device(pin_root, key, &cfg))
    throw SysError("opening " + state::pinned_map_path(pin_root, pins::kDevices), errno);
}

void forget_device_config(const std::string& pin_root, int ifindex) {
  pins::write_pinned_device(pin_root, static_cast<uint32_t>(ifindex), nullptr);
}

std::vector<std::string> sync_spd_once(bpf_object* obj, const spd::NatConfig& nat) {
  mirror::SpdMirror mirror(mirror::SpdMapFds::from_object(obj), nat);
  mirror.sync_once();
  const auto& stats = mirror.stats();
  const std::string closed = ": the datapath fails closed, cleartext to every destination is dropped at the uplink";
  if (!stats.last_refusal.empty())
    return {"SPD not representable: " + stats.last_refusal + closed + " until the policy is gone"};
  if (!stats.last_write_error.empty())
    return {"SPD maps not written (" + stats.last_write_error + ")" + closed + " until the host process writes them"};
  if (stats.fail_closed) return {"SPD larger than the maps (" + stats.last_capacity_error + ")" + closed + " (raise --spd-max)"};
  return {};
}

std::vector<std::string> replace_forwards(pins::ForwardMap& map, const std::vector<std::string>& old_specs,
                                          const std::vector<ForwardRule>& now) {
  delete_forward_entries(map, entries_of(old_specs));
  write_forward_map(map, forward_entries(now));
  std::vector<std::string> specs;
  for (const auto& f : now) specs.push_back(f.spec());
  return specs;
}

void forget_forwards(const std::string& pin_root, const std::vector<std::string>& specs) {
  if (specs.empty()) return;
  if (auto map = pins::ForwardMap::open_pinned(pin_root)) delete_forward_entries(*map, entries_of(specs));
}

}  // namespace ipsnat::attach
