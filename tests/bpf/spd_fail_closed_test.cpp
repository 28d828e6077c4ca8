// The SPD larger than its maps (maps/spd.h spd_health): while SPD_HEALTH_FAIL_CLOSED is set the
// leak guard treats every destination the stale generation does not cover as covered.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <linux/pkt_cls.h>

#include "maps/spd.h"
#include "maps/stats.h"
#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

class SpdFailClosed : public SeedNat {
 protected:
  void set_flags(uint32_t flags) {
    spd_health h{};
    h.flags = flags;
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_health), &zero, &h, BPF_ANY), 0);
  }
};

TEST_F(SpdFailClosed, UncoveredCleartextPassesWhileTheMapsAreComplete) {
  Bytes p = eth.udp({"200.2.2.2", "8.8.8.8"}, 40000, 53, Bytes(8, 1));
  auto r = guard(p);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_COVERED), 1u);
}

TEST_F(SpdFailClosed, EveryCleartextDestinationIsCoveredWhileFailingClosed) {
  set_flags(SPD_HEALTH_FAIL_CLOSED);
  // Not in the (stale) maps: dropped as drop-spd-incomplete.
  for (const char* dst : {"8.8.8.8", "172.16.0.1", "100.1.1.1"}) {
    auto r = guard(eth.udp({"200.2.2.2", dst}, 40000, 53, Bytes(8, 1)));
    EXPECT_EQ(r.retval, TC_ACT_SHOT) << dst;
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_SPD_INCOMPLETE), 3u);
  // Covered by the maps themselves: the ordinary leak-guard drop.
  EXPECT_EQ(guard(eth.udp({kLan, kRemote}, 40000, 53, Bytes(8, 1))).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_LEAK_GUARD), 1u);
  // IKE and ESP still leave.
  EXPECT_EQ(guard(eth.udp({"200.2.2.2", "100.1.1.1"}, 500, 500, Bytes(8, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(guard(eth.udp({"200.2.2.2", "100.1.1.1"}, 4500, 4500, Bytes(8, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_IPSEC), 2u);
}

TEST_F(SpdFailClosed, TranslationOfTheStaleGenerationGoesOn) {
  set_flags(SPD_HEALTH_FAIL_CLOSED);
  auto r = snat(eth.udp({kLan, kRemote}, 40000, 53, Bytes(8, 1)));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);
}

TEST_F(SpdFailClosed, ClearingTheFlagPassesUncoveredCleartextAgain) {
  set_flags(SPD_HEALTH_FAIL_CLOSED);
  EXPECT_EQ(guard(eth.udp({"200.2.2.2", "8.8.8.8"}, 40000, 53, Bytes(8, 1))).retval, TC_ACT_SHOT);
  set_flags(0);
  EXPECT_EQ(guard(eth.udp({"200.2.2.2", "8.8.8.8"}, 40000, 53, Bytes(8, 1))).retval, TC_ACT_UNSPEC);
}

}  // namespace
}  // namespace ipsnat::test
