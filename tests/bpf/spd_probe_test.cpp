// The BPF lookups (bpf/lib/spd.h, run in the kernel through tc_spd_probe) on maps written by
// SpdMapWriter give the reference's answers for random overlapping SPDs and random flows.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>

#include "spd/compiler.h"
#include "spd/mirror.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_gen.h"
#include "support/spd_probe.h"

namespace ipsnat::test {

spd_probe_result probe(Datapath& dp, const Flow4& f) { return spd_probe(dp, f); }

TEST(SpdProbe, KernelLookupEqualsReferenceOnRandomSpds) {
  Datapath dp;
  spd::SpdMapWriter writer(spd::SpdMapFds::from_object(dp.skel()->obj));
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
