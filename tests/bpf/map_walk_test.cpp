// sys::walk_map_keys (loader/sys/map_walk.h) on the kernel's own maps: the kernel restarts a walk
// whose previous key was removed, and the walk stops at twice the capacity the kernel reports.
#include "sys/map_walk.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>

#include "util/fd.h"

namespace ipsnat::sys {
namespace {

constexpr uint32_t kCapacity = 4;

Fd hash_map_with_keys(std::set<uint32_t> keys) {
  Fd fd(bpf_map_create(BPF_MAP_TYPE_HASH, "walk_test", sizeof(uint32_t), sizeof(uint32_t), kCapacity, nullptr));
  EXPECT_TRUE(fd.valid());
  for (uint32_t k : keys) EXPECT_EQ(0, bpf_map_update_elem(fd.get(), &k, &k, BPF_NOEXIST));
  return fd;
}

TEST(KernelMapWalk, VisitsEveryKeyOfAKernelMapOnce) {
  Fd fd = hash_map_with_keys({1, 2, 3, 4});
  std::multiset<uint32_t> seen;
  EXPECT_TRUE(walk_map_keys<uint32_t>(fd.get(), [&](uint32_t k) { seen.insert(k); }));
  EXPECT_EQ((std::multiset<uint32_t>{1, 2, 3, 4}), seen);
}

// Each visited key is replaced: the kernel answers every step with the map's first key again, so
// only the bound (2 x max_entries) ends the walk.
TEST(KernelMapWalk, AKernelMapUnderChurnIsWalkedAtMostTwiceItsCapacity) {
  Fd fd = hash_map_with_keys({1, 2, 3, 4});
  uint32_t visits = 0;
  EXPECT_FALSE(walk_map_keys<uint32_t>(fd.get(), [&](uint32_t k) {
    ++visits;
    ASSERT_EQ(0, bpf_map_delete_elem(fd.get(), &k));
    uint32_t fresh = k + 100;
    ASSERT_EQ(0, bpf_map_update_elem(fd.get(), &fresh, &fresh, BPF_NOEXIST));
  }));
  EXPECT_EQ(2 * kCapacity, visits);
}

TEST(KernelMapWalk, AMapWithKeysOfAnotherSizeIsNotWalked) {
  Fd fd = hash_map_with_keys({1, 2});
  int visits = 0;
  EXPECT_FALSE(walk_map_keys<uint64_t>(fd.get(), [&](uint64_t) { ++visits; }));
  EXPECT_FALSE(walk_map_keys<uint32_t>(-1, [&](uint32_t) { ++visits; }));
  EXPECT_EQ(0, visits);
}

}  // namespace
}  // namespace ipsnat::sys
