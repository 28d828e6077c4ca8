// The SPD writer against maps too small for the SPD (maps/spd.h spd_health, docs/spd.md
// "Capacity"): the write is refused with SpdMapFull, the active generation stays what it was,
// the half-written one is never activated and is rewritten whole once the SPD fits again.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "maps/spd.h"
#include "spd/compiler.h"
#include "mirror/mirror.h"
#include "spd/tunnel_policy.h"
#include "sys/map_walk.h"

namespace ipsnat::test {
namespace {

using namespace ipsnat::spd;
using namespace ipsnat::mirror;

int create(bpf_map_type type, uint32_t key, uint32_t value, uint32_t max, uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);
  return bpf_map_create(type, nullptr, key, value, max, &o);
}

struct SmallMaps {
  SpdMapFds fds;
  explicit SmallMaps(uint32_t max) {
    fds.active = create(BPF_MAP_TYPE_ARRAY, 4, sizeof(spd_active), 1, 0);
    fds.dst = create(BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_dst_key), sizeof(spd_cell), max, BPF_F_NO_PREALLOC);
    fds.src = create(BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_src_key), 4, max, BPF_F_NO_PREALLOC);
    fds.lists = create(BPF_MAP_TYPE_HASH, sizeof(spd_list_key), sizeof(spd_list), max, BPF_F_NO_PREALLOC);
    fds.health = create(BPF_MAP_TYPE_ARRAY, 4, sizeof(spd_health), 1, 0);
  }
  ~SmallMaps() { fds.close_all(); }
  bool ok() const { return fds.active >= 0 && fds.dst >= 0 && fds.src >= 0 && fds.lists >= 0 && fds.health >= 0; }
  uint32_t active_gen() const {
    spd_active a{};
    uint32_t zero = 0;
    bpf_map_lookup_elem(fds.active, &zero, &a);
    return a.gen;
  }
  size_t entries(int fd, uint32_t gen) const {
    size_t n = 0;
    auto count = [&](const auto& key) { n += key.gen == gen; };
    if (fd == fds.dst) sys::walk_map_keys<spd_dst_key>(fd, count);
    if (fd == fds.src) sys::walk_map_keys<spd_src_key>(fd, count);
    if (fd == fds.lists) sys::walk_map_keys<spd_list_key>(fd, count);
    return n;
  }
};

// n out-policies 10.20.30.2/32 -> 10.99.i.0/24 with a template: one cell, one source entry and
// one list each.
std::vector<Policy> policies(int n) {
  std::vector<Policy> out;
  for (int i = 0; i < n; ++i) {
    Policy p = tunnel_policy(Dir::Out, Prefix{Address::v4(htonl(0x0a141e02)), 32},
                             Prefix{Address::v4(htonl(0x0a630000 | (i << 8))), 24}, 1);
    p.index = 8 * (i + 1);
    p.seq = i;
    out.push_back(p);
  }
  return out;
}

CompiledSpd compiled(const std::vector<Policy>& pols) {
  std::vector<const Policy*> ptrs;
  for (const auto& p : pols) ptrs.push_back(&p);
  NatConfig nat;
  nat.inside.push_back(Prefix{Address::v4(htonl(0xc0a80100)), 24});
  CompiledSpd c = compile_spd(ptrs, nat);
  EXPECT_FALSE(c.refused) << *c.refused;
  return c;
}

TEST(SpdCapacity, AnSpdLargerThanTheMapsIsNeverActivatedAndASmallerOneIs) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for BPF maps";
  SmallMaps m(64);
  ASSERT_TRUE(m.ok());
  SpdMapWriter w(m.fds);
  auto small = policies(10), big = policies(50);
  w.write(compiled(small));
  uint32_t gen = m.active_gen();
  EXPECT_EQ(m.entries(m.fds.dst, gen), 10u);

  // 50 more entries next to the active 10 fit (60 <= 64)...
  w.write(compiled(big));
  uint32_t gen2 = m.active_gen();
  ASSERT_NE(gen2, gen);
  EXPECT_EQ(m.entries(m.fds.dst, gen2), 50u);
  // ...but another 50 next to those do not: refused, nothing flipped.
  auto bigger = policies(51);
  EXPECT_THROW(w.write(compiled(bigger)), SpdMapFull);
  EXPECT_EQ(m.active_gen(), gen2);
  EXPECT_EQ(m.entries(m.fds.dst, gen2), 50u) << "the active generation was touched";
  EXPECT_THROW(w.write(compiled(bigger)), SpdMapFull);  // again, from a purged generation
  EXPECT_EQ(m.active_gen(), gen2);

  // A small SPD fits again: written whole into the half-written generation, then activated.
  w.write(compiled(small));
  EXPECT_EQ(m.active_gen(), gen);
  EXPECT_EQ(m.entries(m.fds.dst, gen), 10u);
  EXPECT_EQ(m.entries(m.fds.src, gen), 10u);
  EXPECT_EQ(m.entries(m.fds.lists, gen), 10u);
}

// Conntrack compares SPD versions for equality: a replaced spd_active map (SPD schema change,
// the ct map kept) must go on above its predecessor's versions, never count from 1 again.
TEST(SpdCapacity, AReplacedActiveMapContinuesAboveItsPredecessorsVersions) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for BPF maps";
  auto version = [](const SmallMaps& m) {
    spd_active a{};
    uint32_t zero = 0;
    bpf_map_lookup_elem(m.fds.active, &zero, &a);
    return a.version;
  };
  SmallMaps old_maps(64), new_maps(64);
  ASSERT_TRUE(old_maps.ok() && new_maps.ok());
  SpdMapWriter old_writer(old_maps.fds);
  uint64_t last = 0;
  for (int i = 1; i <= 5; ++i) {
    old_writer.write(compiled(policies(i)));
    EXPECT_GT(version(old_maps), last) << "swap " << i;
    last = version(old_maps);
  }
  SpdMapWriter new_writer(new_maps.fds);
  new_writer.write(compiled(policies(1)));
  EXPECT_GT(version(new_maps), last);
  SpdMapWriter adopting(old_maps.fds);  // a restart adopts the pinned map and goes on from it
  adopting.write(compiled(policies(2)));
  EXPECT_GT(version(old_maps), last);
}

TEST(SpdCapacity, HealthIsKeptInItsMap) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for BPF maps";
  SmallMaps m(64);
  ASSERT_TRUE(m.ok());
  SpdMapWriter w(m.fds);
  spd_health h{SPD_HEALTH_FAIL_CLOSED, 1, 2, 3, 1700000000, 4};
  w.set_health(h);
  spd_health back = w.health();
  EXPECT_EQ(back.flags, uint32_t(SPD_HEALTH_FAIL_CLOSED));
  EXPECT_EQ(back.failures, 4u);
  SpdMapFds none = m.fds;
  none.health = -1;  // pins of an older build: no map, no flag, no error
  SpdMapWriter w2(none);
  EXPECT_NO_THROW(w2.set_health(h));
  EXPECT_EQ(w2.health().flags, 0u);
}

}  // namespace
}  // namespace ipsnat::test
