#pragma once
// What a SIGHUP reload changes, as pure functions of the old and new Config (unit-tested):
// the daemon attaches added devices, detaches removed ones, re-attaches changed ones (mode, or
// the inside prefixes their companion policies and NAT are planned from), rebuilds the SPD
// mirror when the NAT settings changed and rewrites ipsnat_cfg when timeouts or ports changed.
#include <string>
#include <vector>

#include "config/config.h"

namespace ipsnat::config {

struct DeviceChanges {
  std::vector<Device> added;
  std::vector<Device> removed;
  std::vector<Device> changed;    // the new definition
  std::vector<Device> unchanged;  // the new definition
  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
};

// Devices are identified by name; order in the file does not matter.
DeviceChanges diff_devices(const Config& before, const Config& after);
// [[nat]] rules or inside prefixes differ (the SPD mirror's NAT configuration).
bool nat_changed(const Config& before, const Config& after);
// Values the datapath reads from ipsnat_cfg (timeouts, port range) differ.
bool datapath_config_changed(const Config& before, const Config& after);

}  // namespace ipsnat::config
