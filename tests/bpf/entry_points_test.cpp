#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "support/datapath.h"
#include "support/packet.h"

namespace ipsnat::test {

TEST(EntryPoints, NonIpv4IsPassedUntouchedAndCounted) {
  Datapath dp;
  Bytes arp = PacketBuilder().non_ip(0x0806, 60);
  auto r = dp.run(dp.skel()->progs.tc_snat_egress, arp);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, arp);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_IPV4), 1u);
}

TEST(EntryPoints, UncoveredDestinationIsPassedUntouched) {
  Datapath dp;
  Bytes pkt = PacketBuilder().udp({"192.168.1.10", "8.8.8.8"}, 40000, 53, Bytes(20, 0xab));
  ASSERT_TRUE(verify_checksums(pkt, 14).l4_ok);
  auto r = dp.run(dp.skel()->progs.tc_snat_egress, pkt);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, pkt);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_COVERED), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_IPV4), 0u);
}

}  // namespace ipsnat::test
