#include "spd/cover6.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "maps/cover6.h"
#include "pins/names.h"
#include "spd/mirror.h"
#include "state/pinned.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::spd {

namespace {

spd_cover6_key key_of(const Prefix& p) {
  spd_cover6_key k{};
  k.prefixlen = p.len;
  std::memcpy(k.daddr, p.addr.bytes.data(), sizeof(k.daddr));
  return k;
}

Prefix prefix_of(const spd_cover6_key& k) {
  Prefix p;
  p.addr.family = AF_INET6;
  std::memcpy(p.addr.bytes.data(), k.daddr, sizeof(k.daddr));
  p.len = static_cast<uint8_t>(k.prefixlen);
  return p;
}

}  // namespace

std::map<Prefix, uint32_t> cover6_prefixes(const SpdModel& model) {
  std::map<Prefix, uint32_t> out;
  for (const auto& [index, p] : model.by_index())
    if (p.dir == Dir::Out && p.sel.family == AF_INET6 && p.if_id == 0 && p.is_ipsec()) ++out[p.sel.dst];
  return out;
}

Cover6Writer::Cover6Writer(int fd) : fd_(fd) {
  if (fd_ < 0) return;
  spd_cover6_key k{}, next{};
  const void* prev = nullptr;
  for (int i = 0; i < IPSNAT_COVER6_MAX_ENTRIES && bpf_map_get_next_key(fd_, prev, &next) == 0; ++i) {
    written_[prefix_of(next)] = 0;  // value unknown: rewritten by the first write()
    k = next;
    prev = &k;
  }
}

void Cover6Writer::write(const SpdModel& model) {
  if (fd_ < 0) return;
  auto want = cover6_prefixes(model);
  for (const auto& [prefix, n] : want) {
    auto it = written_.find(prefix);
    if (it != written_.end() && it->second == n) continue;
    spd_cover6_key k = key_of(prefix);
    spd_cover6 v{n};
    if (bpf_map_update_elem(fd_, &k, &v, BPF_ANY) != 0) {
      int err = errno;
      if (err == E2BIG || err == ENOSPC) throw SpdMapFull(pins::kSpdCover6, err);
      throw SysError("writing spd_cover6", err);
    }
    written_[prefix] = n;
  }
  for (auto it = written_.begin(); it != written_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    spd_cover6_key k = key_of(it->first);
    if (bpf_map_delete_elem(fd_, &k) != 0 && errno != ENOENT) throw SysError("deleting from spd_cover6", errno);
    it = written_.erase(it);
  }
}

int cover6_pin_fd(const std::string& root) {
  std::string path = state::pinned_map_path(root, pins::kSpdCover6);
  if (Fd fd(bpf_obj_get(path.c_str())); fd) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && info.type == BPF_MAP_TYPE_LPM_TRIE &&
        info.key_size == sizeof(spd_cover6_key) && info.value_size == sizeof(spd_cover6))
      return fd.release();
  }
  spdlog::warn("spd: no usable {}: IPv6 cleartext to IPv6-covered prefixes is not guarded (attach again to create it)",
               path);
  return -1;
}

}  // namespace ipsnat::spd
