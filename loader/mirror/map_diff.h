#pragma once
// Brings a BPF map to a wanted set of entries by difference: new and changed keys first, then the
// stale ones deleted, so a key that stays is never absent in between; and opens such a map's pin
// only when its layout is this build's (the writers of spd_cover6 and ipsnat_npt6).
#include <bpf/bpf.h>

#include <cerrno>
#include <map>
#include <string>

#include "mirror/mirror.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::mirror {

// `written` is what the map holds, kept up to date. key_of / value_of make the map's structs;
// same(a, b) tells an unchanged value. Throws SpdMapFull when the map has no room, SysError for
// another refused write.
template <class K, class V, class KeyOf, class ValueOf, class Same>
void write_by_difference(int fd, const std::string& map, const std::map<K, V>& want, std::map<K, V>& written,
                         KeyOf key_of, ValueOf value_of, Same same) {
  for (const auto& [k, v] : want) {
    auto it = written.find(k);
    if (it != written.end() && same(it->second, v)) continue;
    auto key = key_of(k);
    auto value = value_of(v);
    if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) {
      int err = errno;
      if (err == E2BIG || err == ENOSPC) throw SpdMapFull(map, err);
      throw SysError("writing " + map, err);
    }
    written[k] = v;
  }
  for (auto it = written.begin(); it != written.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    auto key = key_of(it->first);
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) throw SysError("deleting from " + map, errno);
    it = written.erase(it);
  }
}

// The pinned map at `path` when it is an LPM trie of these key and value sizes (this build's
// layout), else -1.
inline int pinned_lpm_fd(const std::string& path, uint32_t key_size, uint32_t value_size) {
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd) return -1;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && info.type == BPF_MAP_TYPE_LPM_TRIE &&
      info.key_size == key_size && info.value_size == value_size)
    return fd.release();
  return -1;
}

}  // namespace ipsnat::mirror
