#pragma once
// An attach's writes to the maps every attach under the pin root shares: its device's entry in
// ipsnat_dev, its port-forwards in ipsnat_fwd, and the one SPD sync that fills the SPD maps before
// any program sees traffic (the host process's mirror keeps them live from then on).
#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "attach/forward.h"
#include "maps/config.h"
#include "spd/nat.h"

namespace ipsnat::attach {

// ipsnat_dev[ifindex] = cfg with its generation (pins/dev_map.h), through fd and gen_fd or, when
// fd < 0, the pinned maps.
void write_device_config(int fd, int gen_fd, const std::string& pin_root, int ifindex, const ipsnat_dev_cfg& cfg);
// Deletes ipsnat_dev[ifindex]; nothing when the map is not pinned.
void forget_device_config(const std::string& pin_root, int ifindex);

// One full sync of obj's SPD maps from the kernel's SPD (mirror/mirror.h). Returns a warning when
// the datapath fails closed (the SPD not representable, not written, or larger than the maps).
std::vector<std::string> sync_spd_once(bpf_object* obj, const spd::NatConfig& nat);

// In the map: the port-forwards recorded as old_specs (ForwardRule::spec()) out, `now` in.
// Returns the specs to record now.
std::vector<std::string> replace_forwards(pins::ForwardMap& map, const std::vector<std::string>& old_specs,
                                          const std::vector<ForwardRule>& now);
// Deletes the port-forwards recorded as specs from the pinned ipsnat_fwd, if it is pinned.
void forget_forwards(const std::string& pin_root, const std::vector<std::string>& specs);

}  // namespace ipsnat::attach
