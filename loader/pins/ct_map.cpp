#include "pins/ct_map.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <ctime>

#include "pins/names.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::pins {

template <class Family>
std::vector<typename CtTable<Family>::Entry> CtTable<Family>::entries() const {
  std::vector<Entry> all;
  sys::walk_map_keys<Key>(fd_, [&](const Key& k) {
    Entry e;
    e.key = k;
    if (bpf_map_lookup_elem(fd_, &k, &e.value) == 0) all.push_back(e);
  });
  return all;
}

template <class Family>
std::optional<typename CtTable<Family>::Value> CtTable<Family>::lookup(const Key& k) const {
  Value e{};
  if (bpf_map_lookup_elem(fd_, &k, &e) != 0) return std::nullopt;
  return e;
}

template <class Family>
bool CtTable<Family>::erase(const Key& k) {
  if (bpf_map_delete_elem(fd_, &k) == 0) return true;
  if (errno == ENOENT) return false;
  throw SysError(std::string("deleting ") + Family::kEntryName, errno);
}

template class CtTable<Ct4Family>;
template class CtTable<Ct6Family>;

CtMaps CtMaps::open_pinned(const std::string& root) {
  Fd ct(bpf_obj_get((root + "/ipsnat_ct").c_str()));
  if (!ct)
    throw UserError("no conntrack map at " + root + "/ipsnat_ct", "is ipsnat attached? see: ipsnat status");
  Fd cfg(bpf_obj_get((root + "/ipsnat_cfg").c_str()));
  if (!cfg)
    throw UserError("no config map at " + root + "/ipsnat_cfg", "is ipsnat attached? see: ipsnat status");
  return CtMaps(std::move(ct), std::move(cfg));
}

ipsnat_config CtMaps::config() const {
  ipsnat_config c{};
  uint32_t key = 0;
  if (bpf_map_lookup_elem(cfg_fd_, &key, &c) != 0) throw SysError("reading ipsnat_cfg", errno);
  return c;
}

std::optional<Ct6Map> Ct6Map::open_pinned(const std::string& root) {
  Fd fd(bpf_obj_get(state::pinned_map_path(root, kCt6).c_str()));
  if (!fd) return std::nullopt;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0 || info.key_size != sizeof(ipsnat_ct6_key) ||
      info.value_size != sizeof(ipsnat_ct6_entry))
    return std::nullopt;
  return Ct6Map(std::move(fd));
}

uint64_t boottime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace ipsnat::pins
