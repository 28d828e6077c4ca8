#pragma once
// Walking the keys of a BPF map with BPF_MAP_GET_NEXT_KEY while the datapath and other processes
// change it. libbpf (1.1) gives only the single step (bpf_map_get_next_key) and batch lookups,
// whose cursor and end-of-map rules differ by map type; it has no bounded walk.
//
// When the previous key was removed under the walk, the kernel answers with the map's first key
// (hash maps, LPM tries): the walk starts over and visits keys again. Under steady churn it could
// start over for ever, so every walk is bounded, and its callers take a key visited twice (and a
// key added or removed meanwhile) in their stride.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

namespace ipsnat::sys {

// Writes the key after `prev` (nullptr: the first key) to `next`; false at the end of the map.
using NextKeyFn = std::function<bool(const void* prev, void* next)>;
// Sees one key; it may remove that key from the map (the walk keeps its own copy).
using KeyVisitFn = std::function<void(const void* key)>;

// Visits at most `max_visits` keys of `key_size` bytes, each found by next_key after the last one
// visited, restarts included. True when next_key reported the end of the map, false when the bound
// stopped the walk first.
bool walk_keys(size_t key_size, uint64_t max_visits, const NextKeyFn& next_key, const KeyVisitFn& visit);

// walk_keys over a BPF map, at most twice its capacity (max_entries as the kernel reports it): a
// whole pass and one restart's worth. A map whose keys are not `key_size` bytes, or a descriptor
// that is no map, is not walked (false).
bool walk_map_keys(int map_fd, size_t key_size, const KeyVisitFn& visit);

// The same with the map's key type: visit(const Key&).
template <class Key, class Visit>
bool walk_map_keys(int map_fd, Visit&& visit) {
  static_assert(std::is_trivially_copyable_v<Key>, "a map key is plain bytes");
  return walk_map_keys(map_fd, sizeof(Key), [&visit](const void* bytes) {
    Key key;
    std::memcpy(&key, bytes, sizeof(key));
    visit(static_cast<const Key&>(key));
  });
}

}  // namespace ipsnat::sys
