#include "pins/ct_map.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::pins {

CtMaps CtMaps::open_pinned(const std::string& root) {
  Fd ct(bpf_obj_get((root + "/ipsnat_ct").c_str()));
  if (!ct)
    throw UserError("no conntrack map at " + root + "/ipsnat_ct", "is ipsnat attached? see: ipsnat status");
  Fd cfg(bpf_obj_get((root + "/ipsnat_cfg").c_str()));
  if (!cfg)
    throw UserError("no config map at " + root + "/ipsnat_cfg", "is ipsnat attached? see: ipsnat status");
  CtMaps m(ct.get(), cfg.get());
  m.owned_ct_ = std::move(ct);
  m.owned_cfg_ = std::move(cfg);
  return m;
}

std::vector<ct::Entry> CtMaps::entries() const {
  std::vector<ct::Entry> all;
  // The datapath adds and the GC deletes concurrently: a walk restarted by a deleted key yields
  // duplicates, dropped by pairing.
  sys::walk_map_keys<ipsnat_ct_key>(ct_fd_, [&](const ipsnat_ct_key& k) {
    ct::Entry e;
    e.key = k;
    if (bpf_map_lookup_elem(ct_fd_, &k, &e.value) == 0) all.push_back(e);
  });
  return all;
}

std::optional<ipsnat_ct_entry> CtMaps::lookup(const ipsnat_ct_key& k) const {
  ipsnat_ct_entry e{};
  if (bpf_map_lookup_elem(ct_fd_, &k, &e) != 0) return std::nullopt;
  return e;
}

bool CtMaps::erase(const ipsnat_ct_key& k) {
  if (bpf_map_delete_elem(ct_fd_, &k) == 0) return true;
  if (errno == ENOENT) return false;
  throw SysError("deleting a conntrack entry", errno);
}

ipsnat_config CtMaps::config() const {
  ipsnat_config c{};
  uint32_t key = 0;
  if (bpf_map_lookup_elem(cfg_fd_, &key, &c) != 0) throw SysError("reading ipsnat_cfg", errno);
  return c;
}

uint64_t boottime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace ipsnat::pins
