// The SPD larger than its maps (maps/spd.h spd_health): while SPD_HEALTH_FAIL_CLOSED is set the
// leak guard treats every destination the stale generation does not cover as covered.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

// A policy the maps cannot express (SPD_V_UNKNOWN: bound to a device, or an ICMP type) fails
// closed only the flows the kernel could give it: for 10.99.0.0/16 in front of the seed's
// translating 10.0.0.0/8 (priority 92), cleartext to 10.99.0.0/16 is dropped and not translated,
// every other destination works as before; behind the /8 it never decides.
class SpdUnknownPolicy : public SeedNat {
 protected:
  void add(uint32_t index, uint32_t priority, bool dev_bound) {
    spd::Policy p;
    p.sel.family = AF_INET;
    p.sel.src = ipsnat::parse_prefix("0.0.0.0/0");
    p.sel.dst = ipsnat::parse_prefix("10.99.0.0/16");
    p.index = index;
    p.priority = priority;
    if (dev_bound) {
      p.sel.ifindex = 3;
    } else {
      p.sel.proto = kIcmp;
      p.sel.sport = 8;  // echo request
      p.sel.sport_mask = 0xffff;
    }
    spd::Template t;
    t.mode = 1;
    t.proto = IPPROTO_ESP;
    t.reqid = 40;
    p.tmpls.push_back(t);
    install_policy(dp, p);
  }
  Bytes udp_to(const std::string& dst) { return eth.udp({kLan, dst}, 40000, 53, Bytes(8, 1)); }
  Bytes ping_to(const std::string& dst) { return eth.icmp_echo({kLan, dst}, 8, 77, 1, Bytes(8, 2)); }
};

TEST_F(SpdUnknownPolicy, ADeviceBoundPolicyFailsClosedOnlyItsDestinations) {
  add(1001, 10, true);
  EXPECT_EQ(snat(udp_to(kRemote)).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(snat(udp_to("10.99.0.1")).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u) << "not translated: " << dp.nonzero_reasons();
  for (const Bytes& p : {udp_to("10.99.0.1"), ping_to("10.99.200.7")})
    EXPECT_EQ(guard(p).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_SPD_UNREPRESENTABLE), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(guard(udp_to("8.8.8.8")).retval, TC_ACT_UNSPEC);  // uncovered: passes
  EXPECT_EQ(guard(udp_to(kRemote)).retval, TC_ACT_SHOT);      // covered: the ordinary guard
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_LEAK_GUARD), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_SPD_INCOMPLETE), 0u);
  // The gateway's own IKE to that destination still leaves.
  EXPECT_EQ(guard(eth.udp({"200.2.2.2", "10.99.0.1"}, 500, 500, Bytes(8, 1))).retval, TC_ACT_UNSPEC);
}

TEST_F(SpdUnknownPolicy, AnIcmpTypePolicyFailsClosedOnlyIcmp) {
  add(1001, 10, false);
  EXPECT_EQ(snat(udp_to("10.99.0.1")).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u) << "UDP never meets it: " << dp.nonzero_reasons();
  EXPECT_EQ(snat(ping_to("10.99.0.1")).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u) << "ICMP not translated: " << dp.nonzero_reasons();
  EXPECT_EQ(guard(ping_to("10.99.0.1")).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_SPD_UNREPRESENTABLE), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(snat(ping_to(kRemote)).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u) << dp.nonzero_reasons();
}

TEST_F(SpdUnknownPolicy, ShadowedByAHigherPriorityPolicyItNeverDecides) {
  add(1001, 200, true);
  add(1009, 200, false);
  EXPECT_EQ(snat(udp_to("10.99.0.1")).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(snat(ping_to("10.99.0.1")).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(guard(udp_to("10.99.0.1")).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_LEAK_GUARD), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_SPD_UNREPRESENTABLE), 0u);
}

}  // namespace
}  // namespace ipsnat::test
