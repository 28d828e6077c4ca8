#include "pins/ct_map.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
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

template <class Family>
std::string layout_mismatch(int fd, const std::string& path) {
  using Key = typename Family::Key;
  using Value = typename Family::Value;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return "pinned map " + path + " is unreadable (" + std::strerror(errno) + ")";
  if (info.key_size == sizeof(Key) && info.value_size == sizeof(Value)) return {};
  return "pinned map " + path + " has " + std::to_string(info.key_size) + "-byte keys and " +
         std::to_string(info.value_size) + "-byte values, this build reads " + std::to_string(sizeof(Key)) +
         "-byte keys and " + std::to_string(sizeof(Value)) + "-byte values";
}

template <class Family>
void require_layout(int fd, const std::string& path) {
  std::string why = layout_mismatch<Family>(fd, path);
  if (!why.empty())
    throw UserError(why, "another ipsnat build pinned it: use that build's ipsnat, or attach with this one, "
                         "which replaces it and loses its flows");
}

template std::string layout_mismatch<Ct4Family>(int, const std::string&);
template std::string layout_mismatch<Ct6Family>(int, const std::string&);
template void require_layout<Ct4Family>(int, const std::string&);
template void require_layout<Ct6Family>(int, const std::string&);

CtMaps CtMaps::open_pinned(const std::string& root) {
  std::string path = state::pinned_map_path(root, kCt);
  Fd ct(bpf_obj_get(path.c_str()));
  if (!ct) throw UserError("no conntrack map at " + path, "is ipsnat attached? see: ipsnat status");
  require_layout<Ct4Family>(ct.get(), path);
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
  std::string path = state::pinned_map_path(root, kCt6);
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd || !layout_mismatch<Ct6Family>(fd.get(), path).empty()) return std::nullopt;
  return Ct6Map(std::move(fd));
}

uint64_t boottime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace ipsnat::pins
