// sys::walk_keys (loader/sys/map_walk.h): the bounded walk behind every loader walk of a BPF map's
// keys, over a fake map that answers next-key the way the kernel's hash maps and LPM tries do: a
// previous key no longer in the map gives the first key.
#include "sys/map_walk.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

namespace ipsnat::sys {
namespace {

// Calls beyond this fail the walk instead of hanging the test when a walk is unbounded.
constexpr int kRunaway = 1000;

struct FakeMap {
  std::set<uint32_t> keys;
  int calls = 0;

  // In key order; a removed `prev` restarts from the first key, as the kernel does.
  NextKeyFn next_key() {
    return [this](const void* prev, void* next) {
      if (++calls > kRunaway) return false;
      auto it = keys.begin();
      if (prev) {
        uint32_t p;
        std::memcpy(&p, prev, sizeof(p));
        if (keys.count(p)) it = keys.upper_bound(p);
      }
      if (it == keys.end()) return false;
      std::memcpy(next, &*it, sizeof(*it));
      return true;
    };
  }
};

uint32_t key_at(const void* k) {
  uint32_t v;
  std::memcpy(&v, k, sizeof(v));
  return v;
}

TEST(MapWalk, VisitsEveryKeyOnceAndReachesTheEnd) {
  FakeMap m{{1, 2, 3, 4, 5}};
  std::vector<uint32_t> seen;
  EXPECT_TRUE(walk_keys(sizeof(uint32_t), 10, m.next_key(), [&](const void* k) { seen.push_back(key_at(k)); }));
  EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 4, 5}), seen);
}

TEST(MapWalk, AMapOfExactlyTheBoundsKeysIsWalkedWhole) {
  FakeMap m{{1, 2, 3}};
  int visits = 0;
  EXPECT_TRUE(walk_keys(sizeof(uint32_t), 3, m.next_key(), [&](const void*) { ++visits; }));
  EXPECT_EQ(3, visits);
}

// The visitor removes the key it sees (as a concurrent GC would): asked for the key after it, the
// map starts over, and the walk goes on through the keys it had not reached.
TEST(MapWalk, AKeyRemovedUnderTheWalkRestartsItAndTheKeysAfterItAreStillVisited) {
  FakeMap m{{1, 2, 3, 4, 5}};
  std::vector<uint32_t> seen;
  EXPECT_TRUE(walk_keys(sizeof(uint32_t), 10, m.next_key(), [&](const void* k) {
    seen.push_back(key_at(k));
    if (key_at(k) == 3) m.keys.erase(3);
  }));
  EXPECT_EQ((std::vector<uint32_t>{1, 2, 3, 1, 2, 4, 5}), seen);
}

// Every visited key is replaced by a new one: each step starts over and the map never ends.
TEST(MapWalk, AWalkThatRestartsAtEveryStepIsStoppedByTheBound) {
  FakeMap m{{1, 2, 3}};
  int visits = 0;
  EXPECT_FALSE(walk_keys(sizeof(uint32_t), 6, m.next_key(), [&](const void* k) {
    ++visits;
    m.keys.erase(key_at(k));
    m.keys.insert(key_at(k) + 100);
  }));
  EXPECT_EQ(6, visits);
}

TEST(MapWalk, ANextKeyThatCyclesIsStoppedByTheBound) {
  int calls = 0;
  NextKeyFn cycle = [&](const void* prev, void* next) {
    if (++calls > kRunaway) return false;
    uint32_t k = prev && key_at(prev) == 1 ? 2 : 1;
    std::memcpy(next, &k, sizeof(k));
    return true;
  };
  std::vector<uint32_t> seen;
  EXPECT_FALSE(walk_keys(sizeof(uint32_t), 5, cycle, [&](const void* k) { seen.push_back(key_at(k)); }));
  EXPECT_EQ((std::vector<uint32_t>{1, 2, 1, 2, 1}), seen);
}

TEST(MapWalk, AnEmptyMapIsWalkedWithoutVisits) {
  FakeMap m;
  int visits = 0;
  EXPECT_TRUE(walk_keys(sizeof(uint32_t), 4, m.next_key(), [&](const void*) { ++visits; }));
  EXPECT_EQ(0, visits);
}

}  // namespace
}  // namespace ipsnat::sys
