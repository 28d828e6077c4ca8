// A [[nat]] rule's `destinations` in the datapath (docs/config.md): the policy covers 10.0.0.0/8,
// the rule translates the LAN only towards 10.1.0.0/16. Golden packets: the translated one is
// built from scratch and its checksums verified independently; the other leaves the NAT untouched
// and the guard keeps its cleartext in.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

class NatRuleDestinations : public ::testing::Test {
 protected:
  NatRuleDestinations() {
    install_nat_target(dp, "10.0.0.0/8", for_destination(napt_target("172.30.0.5", "192.168.77.0/24", 3), "10.1.0.0/16"));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  Datapath dp;
  PacketBuilder eth;
};

TEST_F(NatRuleDestinations, TranslatedTowardsTheRulesDestinations) {
  Bytes payload(40, 0x33);
  auto r = dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.77.4", "10.1.9.9"}, 5000, 53, payload));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  Bytes want = eth.udp({"172.30.0.5", "10.1.9.9"}, 5000, 53, payload);
  EXPECT_EQ(r.out, want) << dp.nonzero_reasons();
  EXPECT_TRUE(verify_checksums(r.out, 14).ip_ok);
  EXPECT_TRUE(verify_checksums(r.out, 14).l4_ok);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);
}

TEST_F(NatRuleDestinations, ElsewhereInThePolicyNotTranslatedAndKeptIn) {
  Bytes pkt = eth.udp({"192.168.77.4", "10.2.9.9"}, 5000, 53, Bytes(40, 0x33));
  auto r = dp.run(dp.skel()->progs.tc_snat_egress, pkt);
  EXPECT_EQ(r.out, pkt) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 0u);
  EXPECT_EQ(dp.ct_all().size(), 0u);
  r = dp.run(dp.skel()->progs.tc_guard_egress, pkt);
  EXPECT_EQ(r.retval, TC_ACT_SHOT) << dp.nonzero_reasons();
}

}  // namespace
}  // namespace ipsnat::test
