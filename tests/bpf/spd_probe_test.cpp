// The BPF lookups (bpf/lib/spd.h, run in the kernel through tc_spd_probe) on maps written by
// SpdMapWriter give the reference's answers for random overlapping SPDs and random flows.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>

#include "spd/compiler.h"
#include "spd/incremental.h"
#include "mirror/mirror.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_gen.h"
#include "support/spd_probe.h"
#include "sys/map_walk.h"

namespace ipsnat::test {

spd_probe_result probe(Datapath& dp, const Flow4& f) { return spd_probe(dp, f); }

TEST(SpdProbe, KernelLookupEqualsReferenceOnRandomSpds) {
  Datapath dp;
  mirror::SpdMapWriter writer(mirror::SpdMapFds::from_object(dp.skel()->obj));
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("10.1.2.0/29"));
  int spds = 0, flows = 0, ipsec = 0, nat = 0, covered = 0;
  uint32_t runs_before = 0;
  for (uint32_t seed = 1000; seed < 1060; seed++) {
    Gen g(seed);
    SpdModel model;
    uint32_t n = g.u(1, 20);
    for (uint32_t i = 1; i <= n; i++) model.apply(PolicyUpsert{g.policy(i * 8 + 1)});
    auto pols = model.ordered();
    CompiledSpd c = compile_spd(pols, cfg);
    if (c.refused) continue;
    writer.write(c);  // alternates generations: both are exercised
    spds++;
    for (int k = 0; k < 60; k++) {
      Flow4 f = g.flow();
      if (f.proto == IPPROTO_ICMP) f.sport = f.dport = 0;
      auto r = probe(dp, f);
      ASSERT_EQ(runs_before + 1, r.runs);
      runs_before = r.runs;
      flows++;
      const Policy* want = reference_lookup(pols, f);
      ASSERT_EQ(want != nullptr, r.found != 0) << "seed " << seed << " " << f.str();
      if (want) {
        ASSERT_EQ(want->index, r.policy_index) << "seed " << seed << " " << f.str();
        ipsec += want->is_ipsec();
      }
      auto wn = reference_nat_target(pols, cfg, f);
      ASSERT_EQ(wn.has_value(), r.nat_found != 0) << "seed " << seed << " " << f.str();
      if (wn) {
        ASSERT_EQ(0, std::memcmp(&*wn, &r.nat, sizeof(r.nat))) << "seed " << seed << " " << f.str();
        nat++;
      }
      bool wc = reference_out_covered(pols, f);
      ASSERT_EQ(wc, r.covered != 0) << "seed " << seed << " " << f.str();
      covered += wc;
    }
  }
  EXPECT_GT(spds, 40);
  EXPECT_GT(ipsec, 200);
  EXPECT_GT(nat, 50);
  EXPECT_GT(covered, 200);
  std::printf("spds %d flows %d ipsec %d nat %d covered %d\n", spds, flows, ipsec, nat, covered);
}

// The mirror's path: random adds, updates, deletes and flushes compiled incrementally and
// written by difference into alternating generations (batched where the kernel allows), then
// probed through the BPF code after every step.
TEST(SpdProbe, IncrementalWritesEqualReferenceAfterEveryChange) {
  Datapath dp;
  mirror::SpdMapWriter writer(mirror::SpdMapFds::from_object(dp.skel()->obj));
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("10.1.2.0/29"));
  int writes = 0, flows = 0, ipsec = 0, nat = 0;
  // One model, compiler and writer for all seeds (as in the mirror): each seed starts with a flush.
  SpdModel model;
  spd::IncrementalSpd inc(cfg);
  for (uint32_t seed = 2000; seed < 2014; seed++) {
    Gen g(seed);
    model.apply(PolicyFlush{});
    ChangeGen changes(g);
    for (int step = 0; step < 40; step++) {
      changes.step(model);
      inc.update(model, model.take_changes().indices);
      writer.stage(inc.take_delta());
      if (inc.refused()) continue;
      writer.write(inc);
      writes++;
      auto pols = model.ordered();
      for (int k = 0; k < 12; k++) {
        Flow4 f = g.flow();
        if (f.proto == IPPROTO_ICMP) f.sport = f.dport = 0;
        auto r = probe(dp, f);
        flows++;
        const Policy* want = reference_lookup(pols, f);
        ASSERT_EQ(want != nullptr, r.found != 0) << "seed " << seed << " step " << step << " " << f.str();
        if (want) {
          ASSERT_EQ(want->index, r.policy_index) << "seed " << seed << " step " << step << " " << f.str();
          ASSERT_EQ(want->is_ipsec(), r.verdict == SPD_V_IPSEC);
          ipsec += want->is_ipsec();
        }
        auto wn = reference_nat_target(pols, cfg, f);
        ASSERT_EQ(wn.has_value(), r.nat_found != 0) << "seed " << seed << " step " << step << " " << f.str();
        if (wn) {
          ASSERT_EQ(0, std::memcmp(&*wn, &r.nat, sizeof(r.nat)));
          nat++;
        }
        ASSERT_EQ(reference_out_covered(pols, f), r.covered != 0) << "seed " << seed << " step " << step;
      }
    }
  }
  EXPECT_GT(writes, 300);
  EXPECT_GT(ipsec, 300);
  EXPECT_GT(nat, 20);
  std::printf("writes %d flows %d ipsec %d nat %d batch fallback %d\n", writes, flows, ipsec, nat,
              writer.batch_fallback());
}

// A writer over maps an earlier process wrote (a daemon restarted on its pins): the entries it
// left in both generations are gone after the new writer's first sync, and the lookups give the
// new SPD's answers.
TEST(SpdProbe, AWriterOverAnEarlierProcesssMapsLeavesOnlyItsOwnEntries) {
  Datapath dp;
  mirror::SpdMapFds fds = mirror::SpdMapFds::from_object(dp.skel()->obj);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  auto first_sync = [&](mirror::SpdMapWriter& w, spd::IncrementalSpd& inc, const SpdModel& m) {
    inc.rebuild(m);
    w.stage(inc.take_delta());
    ASSERT_FALSE(inc.refused());
    w.write(inc);
    ASSERT_TRUE(w.inactive_unwritten());
    w.write(inc);  // as SpdMirror does: both generations filled
    ASSERT_FALSE(w.inactive_unwritten());
  };
  auto count = [](int fd, auto key) {
    size_t n = 0;
    sys::walk_map_keys<decltype(key)>(fd, [&n](const auto&) { ++n; });
    return n;
  };
  // Two random SPDs the maps can carry, the earlier one larger.
  Gen g(3000);
  SpdModel earlier, now;
  auto fill = [&](SpdModel& m, uint32_t n, uint32_t first_index) {
    do {
      m.apply(PolicyFlush{});
      for (uint32_t i = 0; i < n; i++) m.apply(PolicyUpsert{g.policy(first_index + i * 8)});
    } while (compile_spd(m.ordered(), cfg).refused);
  };
  fill(earlier, 20, 1);
  fill(now, 12, 5);
  {
    mirror::SpdMapWriter w(fds);
    spd::IncrementalSpd inc(cfg);
    first_sync(w, inc, earlier);
  }
  mirror::SpdMapWriter w(fds);
  spd::IncrementalSpd inc(cfg);
  first_sync(w, inc, now);
  CompiledSpd snap = inc.snapshot();
  EXPECT_EQ(2 * snap.dst.size(), count(fds.dst, spd_dst_key{}));
  EXPECT_EQ(2 * snap.src.size(), count(fds.src, spd_src_key{}));
  EXPECT_EQ(2 * snap.lists.size(), count(fds.lists, spd_list_key{}));
  auto pols = now.ordered();
  int found = 0;
  for (int k = 0; k < 200; k++) {
    Flow4 f = g.flow();
    if (f.proto == IPPROTO_ICMP) f.sport = f.dport = 0;
    auto r = probe(dp, f);
    const Policy* want = reference_lookup(pols, f);
    ASSERT_EQ(want != nullptr, r.found != 0) << f.str();
    if (want) {
      ASSERT_EQ(want->index, r.policy_index) << f.str();
    }
    found += want != nullptr;
    ASSERT_EQ(reference_out_covered(pols, f), r.covered != 0) << f.str();
  }
  EXPECT_GT(found, 10);
}

TEST(SpdProbe, EmptyMapsCoverNothing) {
  Datapath dp;
  Flow4 f;
  f.saddr = parse_ipv4("192.168.1.10");
  f.daddr = parse_ipv4("10.0.0.1");
  f.proto = IPPROTO_UDP;
  f.sport = 1000;
  f.dport = 53;
  auto r = probe(dp, f);
  EXPECT_EQ(0u, r.found);
  EXPECT_EQ(0u, r.nat_found);
  EXPECT_EQ(0u, r.covered);
}

}  // namespace ipsnat::test
