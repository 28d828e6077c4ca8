#include "pins/dev_map.h"

#include <bpf/bpf.h>

#include <cerrno>

#include "pins/names.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::pins {
namespace {

// The one device of the map with a masquerade address; 0 when none or several have one. A key
// visited twice (the walk restarted after a removal) makes no device the only one: the guard's
// slow path.
uint32_t only_masquerading_device(int dev_fd) {
  uint32_t found = 0;
  int n = 0;
  sys::walk_map_keys<uint32_t>(dev_fd, [&](uint32_t ifindex) {
    ipsnat_dev_cfg c{};
    if (bpf_map_lookup_elem(dev_fd, &ifindex, &c) == 0 && c.masq_addr != 0) {
      found = ifindex;
      ++n;
    }
  });
  return n == 1 ? found : 0;
}

void write_gen(int gen_fd, const ipsnat_dev_gen& g) {
  uint32_t zero = 0;
  if (bpf_map_update_elem(gen_fd, &zero, &g, BPF_ANY) != 0) throw SysError("writing ipsnat_dev_gen", errno);
}

}  // namespace

void write_device(int dev_fd, int gen_fd, uint32_t ifindex, const ipsnat_dev_cfg* cfg) {
  uint32_t zero = 0;
  ipsnat_dev_gen g{};
  if (gen_fd >= 0) {
    if (bpf_map_lookup_elem(gen_fd, &zero, &g) != 0) throw SysError("reading ipsnat_dev_gen", errno);
    // While the change is under way no stamp is trusted: no device is the only masquerading one.
    write_gen(gen_fd, {g.gen + 1, 0});
  }
  if (cfg) {
    if (bpf_map_update_elem(dev_fd, &ifindex, cfg, BPF_ANY) != 0) throw SysError("writing ipsnat_dev", errno);
  } else if (bpf_map_delete_elem(dev_fd, &ifindex) != 0 && errno != ENOENT) {
    throw SysError("removing from ipsnat_dev", errno);
  }
  if (gen_fd >= 0) write_gen(gen_fd, {g.gen + 2, only_masquerading_device(dev_fd)});
}

bool write_pinned_device(const std::string& pin_root, uint32_t ifindex, const ipsnat_dev_cfg* cfg) {
  Fd dev(bpf_obj_get(state::pinned_map_path(pin_root, kDevices).c_str()));
  if (!dev) return false;
  Fd gen(bpf_obj_get(state::pinned_map_path(pin_root, kDeviceGen).c_str()));
  write_device(dev.get(), gen.get(), ifindex, cfg);
  return true;
}

}  // namespace ipsnat::pins
