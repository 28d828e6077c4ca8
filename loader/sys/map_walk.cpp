#include "sys/map_walk.h"

#include <bpf/bpf.h>

#include <utility>
#include <vector>

namespace ipsnat::sys {

bool walk_keys(size_t key_size, uint64_t max_visits, const NextKeyFn& next_key, const KeyVisitFn& visit) {
  // Two buffers: the key asked after stays intact while next_key writes the next one, and while
  // the visitor removes it from the map.
  std::vector<uint8_t> last(key_size), next(key_size);
  const void* prev = nullptr;
  for (uint64_t visits = 0;; ++visits) {
    if (!next_key(prev, next.data())) return true;
    if (visits == max_visits) return false;
    visit(next.data());
    last.swap(next);
    prev = last.data();
  }
}

bool walk_map_keys(int map_fd, size_t key_size, const KeyVisitFn& visit) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0 || info.key_size != key_size) return false;
  return walk_keys(
      key_size, 2ULL * info.max_entries,
      [map_fd](const void* prev, void* next) { return bpf_map_get_next_key(map_fd, prev, next) == 0; }, visit);
}

}  // namespace ipsnat::sys
