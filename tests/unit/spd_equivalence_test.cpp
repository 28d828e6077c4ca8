// Random overlapping SPDs and random flows: the compiled maps, evaluated with the datapath's
// algorithm, must give the reference's answer for lookup, NAT target and coverage.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "support/spd_gen.h"

using namespace ipsnat::spd;

using ipsnat::test::Gen;


TEST(SpdEquivalence, RandomOverlappingSpds) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("10.1.2.0/29"));
  int compiled_spds = 0, refused = 0, ipsec_hits = 0, nat_hits = 0, covered_hits = 0;
  for (uint32_t seed = 1; seed <= 400; seed++) {
    Gen g(seed);
    SpdModel model;
    uint32_t n = g.u(1, 20);
    for (uint32_t i = 1; i <= n; i++) model.apply(PolicyUpsert{g.policy(i * 8 + 1)});
    auto pols = model.ordered();
    CompiledSpd c = compile_spd(pols, cfg);
    if (c.refused) {
      refused++;
      continue;
    }
    compiled_spds++;
    CompiledEvaluator ev(c);
    for (int k = 0; k < 400; k++) {
      Flow4 f = g.flow();
      const Policy* want = reference_lookup(pols, f);
      auto got = ev.lookup(f);
      ASSERT_EQ(want != nullptr, got.has_value()) << "seed " << seed << " flow " << f.str();
      if (want) {
        ASSERT_EQ(want->index, got->policy_index) << "seed " << seed << " flow " << f.str();
        ipsec_hits += want->is_ipsec();
      }
      auto wn = reference_nat_target(pols, cfg, f);
      auto gn = ev.nat_target(f);
      ASSERT_EQ(wn.has_value(), gn.has_value()) << "seed " << seed << " flow " << f.str();
      if (wn) {
        ASSERT_EQ(0, std::memcmp(&*wn, &*gn, sizeof(*wn))) << "seed " << seed << " flow " << f.str();
        nat_hits++;
      }
      bool wc = reference_out_covered(pols, f);
      ASSERT_EQ(wc, ev.out_covered(f)) << "seed " << seed << " flow " << f.str();
      covered_hits += wc;
    }
  }
  // The generator must exercise every outcome, and most SPDs must be representable.
  EXPECT_GT(compiled_spds, 200);
  EXPECT_GT(ipsec_hits, 1000);
  EXPECT_GT(nat_hits, 100);
  EXPECT_GT(covered_hits, 1000);
  RecordProperty("refused", refused);
  std::printf("compiled %d refused %d ipsec %d nat %d covered %d\n", compiled_spds, refused, ipsec_hits,
              nat_hits, covered_hits);
}

TEST(SpdEquivalence, TiesGoToTheOlderPolicyAndUpdatesMoveToTheBack) {
  Policy a;
  a.sel.family = AF_INET;
  a.sel.src = parse_prefix("0.0.0.0/0");
  a.sel.dst = parse_prefix("10.0.0.0/8");
  a.index = 9;
  a.tmpls.push_back(Template{});
  Policy b = a;
  b.index = 17;
  b.sel.src = parse_prefix("192.168.0.0/16");
  SpdModel m;
  m.apply(PolicyUpsert{a});
  m.apply(PolicyUpsert{b});
  Flow4 f;
  f.saddr = htonl(0xc0a80101);
  f.daddr = htonl(0x0a000001);
  EXPECT_EQ(9u, reference_lookup(m.ordered(), f)->index);
  auto c = compile_spd(m.ordered(), {});
  ASSERT_FALSE(c.refused);
  EXPECT_EQ(9u, CompiledEvaluator(c).lookup(f)->policy_index);
  a.tmpls[0].reqid = 5;  // an update of a: now newer than b
  m.apply(PolicyUpsert{a});
  EXPECT_EQ(17u, reference_lookup(m.ordered(), f)->index);
  c = compile_spd(m.ordered(), {});
  EXPECT_EQ(17u, CompiledEvaluator(c).lookup(f)->policy_index);
}

TEST(SpdEquivalence, RefusesWhatTheDatapathCannotSee) {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.dst = parse_prefix("10.0.0.0/8");
  p.sel.src = parse_prefix("0.0.0.0/0");
  p.sel.ifindex = 3;
  p.index = 1;
  SpdModel m;
  m.apply(PolicyUpsert{p});
  auto c = compile_spd(m.ordered(), {});
  ASSERT_TRUE(c.refused);
  EXPECT_NE(std::string::npos, c.refused->find("device"));
}

// The mirror compiles with persistent ids and a per-cell cache: after every event of a random
// sequence (adds, updates, deletes) the incremental result must still equal the reference.
TEST(SpdEquivalence, IncrementalCompilesStayExact) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  int checked = 0;
  for (uint32_t seed = 500; seed < 540; seed++) {
    Gen g(seed);
    SpdModel model;
    CompileIds ids;
    std::vector<Policy> live;
    for (int step = 0; step < 40; step++) {
      uint32_t op = g.u(0, 9);
      if (op < 5 || live.empty()) {
        live.push_back(g.policy(static_cast<uint32_t>(step * 8 + 1)));
        model.apply(PolicyUpsert{live.back()});
      } else if (op < 8) {
        Policy p = live[g.u(0, static_cast<uint32_t>(live.size() - 1))];
        p.priority = g.u(0, 4) * 100;
        model.apply(PolicyUpsert{p});
      } else {
        size_t i = g.u(0, static_cast<uint32_t>(live.size() - 1));
        PolicyDelete d;
        d.index = live[i].index;
        model.apply(d);
        live.erase(live.begin() + static_cast<ptrdiff_t>(i));
      }
      auto pols = model.ordered();
      CompiledSpd c = compile_spd(pols, cfg, &ids);
      if (c.refused) continue;
      CompiledEvaluator ev(c);
      for (int k = 0; k < 50; k++) {
        Flow4 f = g.flow();
        const Policy* want = reference_lookup(pols, f);
        auto got = ev.lookup(f);
        ASSERT_EQ(want != nullptr, got.has_value()) << "seed " << seed << " step " << step << " " << f.str();
        if (want) {
          ASSERT_EQ(want->index, got->policy_index) << "seed " << seed << " step " << step << " " << f.str();
        }
        ASSERT_EQ(reference_nat_target(pols, cfg, f).has_value(), ev.nat_target(f).has_value());
        ASSERT_EQ(reference_out_covered(pols, f), ev.out_covered(f)) << "seed " << seed << " step " << step;
        checked++;
      }
    }
  }
  EXPECT_GT(checked, 20000);
}
