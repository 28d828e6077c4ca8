#pragma once
// The datapath's device map (ipsnat_dev) with its generation (ipsnat_dev_gen, maps/config.h):
// every write and removal of a device's entry goes through here, between two writes of the
// generation, so that the guard's masquerade stamps (bpf/lib/masq.h) never outlive the
// configuration they were made under. Writers hold the pin root's lock (PinStore::Lock), so the
// generation's read-modify-write has one writer at a time.
#include <cstdint>
#include <string>

#include "maps/config.h"

namespace ipsnat::pins {

// ipsnat_dev[ifindex] = *cfg, or its removal when cfg is null. gen_fd < 0: a datapath without the
// generation (nothing else is written).
void write_device(int dev_fd, int gen_fd, uint32_t ifindex, const ipsnat_dev_cfg* cfg);
// The same through the pinned maps under pin_root; false when ipsnat_dev is not pinned.
bool write_pinned_device(const std::string& pin_root, uint32_t ifindex, const ipsnat_dev_cfg* cfg);

}  // namespace ipsnat::pins
