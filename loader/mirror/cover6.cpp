#include "mirror/cover6.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "maps/cover6.h"
#include "pins/names.h"
#include "mirror/map_diff.h"
#include "mirror/mirror.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::mirror {

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

std::map<Prefix, uint32_t> cover6_prefixes(const spd::SpdModel& model) {
  std::map<Prefix, uint32_t> out;
  for (const auto& [index, p] : model.by_index())
    if (p.dir == spd::Dir::Out && p.sel.family == AF_INET6 && p.if_id == 0 && p.is_ipsec()) ++out[p.sel.dst];
  return out;
}

Cover6Writer::Cover6Writer(int fd) : fd_(fd) {
  if (fd_ < 0) return;
  sys::walk_map_keys<spd_cover6_key>(fd_, [&](const spd_cover6_key& k) {
    written_[prefix_of(k)] = 0;  // value unknown: rewritten by the first write()
  });
}

void Cover6Writer::write(const spd::SpdModel& model) {
  if (fd_ < 0) return;
  write_by_difference(
      fd_, pins::kSpdCover6, cover6_prefixes(model), written_, key_of, [](uint32_t n) { return spd_cover6{n}; },
      [](uint32_t a, uint32_t b) { return a == b; });
}

int cover6_pin_fd(const std::string& root) {
  std::string path = state::pinned_map_path(root, pins::kSpdCover6);
  if (int fd = pinned_lpm_fd(path, sizeof(spd_cover6_key), sizeof(spd_cover6)); fd >= 0) return fd;
  spdlog::warn("spd: no usable {}: IPv6 cleartext to IPv6-covered prefixes is not guarded (attach again to create it)",
               path);
  return -1;
}

}  // namespace ipsnat::mirror
