// An established flow keeps its translation only while the SPD still protects it
// (docs/datapath.md "Established flows and SPD changes"): golden packets through tc_snat_egress
// with the SPD rewritten between them, the way the mirror does when IKE removes or re-adds a
// policy; and the per-packet cost of the check (DISABLED_: a measurement, run by hand with
// --gtest_also_run_disabled_tests --gtest_filter='CtRevalidate.*Cost*').
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

using CtRevalidate = SeedNat;


struct Timing {
  double median, mean, p90;
};

Timing summarize(std::vector<uint32_t> d) {
  std::sort(d.begin(), d.end());
  double mean = std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(d.size());
  return {static_cast<double>(d[d.size() / 2]), mean, static_cast<double>(d[d.size() * 9 / 10])};
}

// ns per packet of tc_snat_egress for established UDP flows (a fresh packet per run, repeat = 1,
// so no run sees an already translated packet), and for the first packet of each flow after an
// SPD change (the one that re-checks the flow against the SPD).
TEST_F(CtRevalidate, DISABLED_EstablishedPacketCost) {
  constexpr int kFlows = 1000, kRounds = 20;
  std::vector<Bytes> pkts;
  for (int i = 0; i < kFlows; ++i) pkts.push_back(eth.udp({kLan, kRemote}, static_cast<uint16_t>(1024 + i), 53, Bytes(18, 1)));
  for (const auto& p : pkts) ASSERT_EQ(snat(p).retval, TC_ACT_OK);
  std::vector<uint32_t> est, first;
  for (int round = 0; round < kRounds; ++round) {
    for (int rep = 0; rep < 5; ++rep)
      for (const auto& p : pkts) est.push_back(snat(p).duration_ns);
    // Same policy again: a new SPD version, every flow re-checked once.
    remove_nat_targets(dp, "10.0.0.0/8");
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
    for (const auto& p : pkts) first.push_back(snat(p).duration_ns);
  }
  auto e = summarize(est), f = summarize(first);
  std::printf("tc_snat_egress established: median %.0f ns, mean %.1f ns, p90 %.0f ns (%zu packets)\n", e.median,
              e.mean, e.p90, est.size());
  std::printf("tc_snat_egress first packet after an SPD change: median %.0f ns, mean %.1f ns, p90 %.0f ns (%zu packets)\n",
              f.median, f.mean, f.p90, first.size());
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), static_cast<uint64_t>(kFlows) * (1 + kRounds * 6));
}

}  // namespace
}  // namespace ipsnat::test
