#include "config/diff.h"

#include <algorithm>

namespace ipsnat::config {

namespace {
const Device* find(const std::vector<Device>& v, const std::string& name) {
  auto it = std::find_if(v.begin(), v.end(), [&](const Device& d) { return d.name == name; });
  return it == v.end() ? nullptr : &*it;
}

bool same_rule(const NatRule& a, const NatRule& b) {
  return a.kind == b.kind && a.inside == b.inside && a.to == b.to && a.to_count == b.to_count && a.destinations == b.destinations &&
         a.ipv6 == b.ipv6 && a.inside6 == b.inside6 && a.to6 == b.to6;
}
}  // namespace

DeviceChanges diff_devices(const Config& before, const Config& after) {
  DeviceChanges d;
  // The inside prefixes feed every device's plan (companion policies, NAT eligibility).
  bool inside_changed = before.inside != after.inside;
  for (const auto& dev : after.devices) {
    const Device* old = find(before.devices, dev.name);
    if (!old) d.added.push_back(dev);
    else if (old->mode != dev.mode || old->masquerade != dev.masquerade || old->masquerade_addr != dev.masquerade_addr ||
             old->binat != dev.binat ||
             inside_changed)
      d.changed.push_back(dev);
    else d.unchanged.push_back(dev);
  }
  for (const auto& dev : before.devices)
    if (!find(after.devices, dev.name)) d.removed.push_back(dev);
  return d;
}

bool nat_changed(const Config& before, const Config& after) {
  if (before.inside != after.inside || before.nat.size() != after.nat.size()) return true;
  for (size_t i = 0; i < after.nat.size(); ++i)
    if (!same_rule(before.nat[i], after.nat[i])) return true;
  return false;
}

bool datapath_config_changed(const Config& before, const Config& after) {
  return before.timeouts != after.timeouts || before.port_range != after.port_range;
}

}  // namespace ipsnat::config
