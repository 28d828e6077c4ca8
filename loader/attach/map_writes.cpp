#include "attach/map_writes.h"

#include <bpf/bpf.h>

#include <cerrno>

#include "mirror/mirror.h"
#include "pins/names.h"
#include "state/pinned.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::attach {
namespace {

std::vector<ForwardEntry> entries_of(const std::vector<std::string>& specs) {
  std::vector<ForwardRule> rules;
  for (const auto& s : specs) rules.push_back(parse_forward_spec(s));
  return forward_entries(rules);
}

}  // namespace

void write_device_config(int fd, const std::string& pin_root, int ifindex, const ipsnat_dev_cfg& cfg) {
  Fd own;
  if (fd < 0) {
    std::string path = state::pinned_map_path(pin_root, pins::kDevices);
    own.reset(bpf_obj_get(path.c_str()));
    if (!own) throw SysError("opening " + path, errno);
    fd = own.get();
  }
  uint32_t key = static_cast<uint32_t>(ifindex);
  if (bpf_map_update_elem(fd, &key, &cfg, BPF_ANY) != 0) throw SysError("writing ipsnat_dev", errno);
}

void forget_device_config(const std::string& pin_root, int ifindex) {
  Fd fd(bpf_obj_get(state::pinned_map_path(pin_root, pins::kDevices).c_str()));
  if (!fd) return;
  uint32_t key = static_cast<uint32_t>(ifindex);
  bpf_map_delete_elem(fd.get(), &key);
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
