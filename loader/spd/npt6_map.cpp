#include "spd/npt6_map.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "spd/mirror.h"
#include "util/error.h"

namespace ipsnat::spd {

Npt6Writer::Npt6Writer(int fd) : fd_(fd) {
  if (fd_ < 0) return;
  npt6_key k{}, next{};
  const void* prev = nullptr;
  for (int i = 0; i < IPSNAT_NPT6_MAX_ENTRIES && bpf_map_get_next_key(fd_, prev, &next) == 0; ++i) {
    auto* b = reinterpret_cast<const uint8_t*>(&next);
    written_[{b, b + sizeof(next)}] = npt6_rule{};  // value unknown: rewritten by the first write()
    k = next;
    prev = &k;
  }
}

void Npt6Writer::write(const SpdModel& model, const std::vector<Prefix>& inside) {
  if (fd_ < 0) return;
  auto want = npt6_entries(model, inside);
  for (const auto& [key, rule] : want) {
    auto it = written_.find(key);
    if (it != written_.end() && std::memcmp(&it->second, &rule, sizeof(rule)) == 0) continue;
    if (bpf_map_update_elem(fd_, key.data(), &rule, BPF_ANY) != 0) {
      int err = errno;
      if (err == E2BIG || err == ENOSPC) throw SpdMapFull("ipsnat_npt6", err);
      throw SysError("writing ipsnat_npt6", err);
    }
    written_[key] = rule;
  }
  for (auto it = written_.begin(); it != written_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    if (bpf_map_delete_elem(fd_, it->first.data()) != 0 && errno != ENOENT) throw SysError("deleting from ipsnat_npt6", errno);
    it = written_.erase(it);
  }
}

int npt6_pin_fd(const std::string& root) {
  std::string path = root + "/ipsnat_npt6";
  int fd = bpf_obj_get(path.c_str());
  if (fd >= 0) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == BPF_MAP_TYPE_LPM_TRIE &&
        info.key_size == sizeof(npt6_key) && info.value_size == sizeof(npt6_rule))
      return fd;
    close(fd);
  }
  spdlog::warn("spd: no usable {}: IPv6 is not translated (attach again to create it)", path);
  return -1;
}

}  // namespace ipsnat::spd
