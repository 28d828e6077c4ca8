// BINAT (`attach --binat`, bpf/lib/binat.h) through the real datapath (BPF_PROG_TEST_RUN): a
// decrypted connection from the policy's remote selector to an address of its 1:1 map's block
// reaches the LAN host mapped to it, and the host's answers leave as the mapped address; without
// the device's flag, from outside the remote selector, through another policy's SA, in
// cleartext, beyond the LAN, or as a stray segment nothing is opened. A decrypted packet is made
// with the test seam (Datapath(true): the SA's reqid from skb->mark). Packets are compared with
// ones built from scratch; checksums by the independent routine in tests/support.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>

#include "support/inbound_flow.h"
#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

// Out-policy 10.20.40.0/24 -> 10.99.0.0/16 (reqid 9) mapping LAN 172.31.7.0/24 1:1 onto its source;
// out-policy 10.20.50.0/24 -> 10.97.0.0/16 (reqid 9) mapping the smaller LAN 172.31.8.0/26 onto the
// block's first quarter.
const std::string kFar = "10.99.3.4", kMapped = "10.20.40.77", kHost = "172.31.7.77";
constexpr uint32_t kReqid = 9;

class Binat : public ::testing::Test {
 protected:
  Binat() : dp(true) {
    install_nat_target(dp, "10.99.0.0/16", prefix_target("10.20.40.0/24", "172.31.7.0/24", kReqid));
    install_nat_target(dp, "10.97.0.0/16", prefix_target("10.20.50.0/24", "172.31.8.0/26", kReqid));
    set_dev(IPSNAT_DEV_POLICY, IPSNAT_DEV_BINAT);
  }
  void set_dev(ipsnat_dev_mode mode, uint32_t flags) { dp.set_dev_mode(Datapath::test_ifindex(), mode, 0, flags); }
  // As decrypted by an SA of sa_reqid (0: cleartext).
  RunResult rev(const Bytes& p, uint32_t sa_reqid = kReqid) {
    return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa_reqid);
  }
  // The inside host's answer as the LWT route of a policy-mode uplink sends it (no L2 header: the
  // test run gives back 14 zero bytes in its place).
  RunResult lwt(const Bytes& p) { return dp.run(dp.skel()->progs.lwt_snat_xmit, p); }
  static Bytes without_l2(Bytes p) {
    std::fill(p.begin(), p.begin() + 14, 0);
    return p;
  }
  // The packet passed untouched and opened no flow.
  void expect_untouched(const Bytes& p, uint32_t sa_reqid = kReqid) {
    auto r = rev(p, sa_reqid);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p);
    EXPECT_TRUE(dp.ct_all().empty()) << dp.nonzero_reasons();
  }
  Datapath dp;
  PacketBuilder eth;
};

TEST_F(Binat, AConnectionFromTheRemoteReachesTheMappedHostAndItsAnswersLeaveAsTheMappedAddress) {
  auto r = rev(eth.tcp({kFar, kMapped, kTcp, 60, 5}, 50000, 22, kSyn, {}));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kFar, kHost, kTcp, 60, 5}, 50000, 22, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 1u) << dp.nonzero_reasons();

  auto reply = expect_inbound_flow(dp, {kFar, 50000, kMapped, 22, kHost, 22, kTcp}, IPSNAT_CT_KIND_BINAT);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->reqid, kReqid);

  // The host's SYN-ACK leaves from the mapped address, its port kept, every checksum right.
  Bytes payload(23, 0x5a);
  auto a = lwt(PacketBuilder().tcp({kHost, kFar, kTcp, 64, 6}, 22, 50000, kSyn | kAck, payload));
  EXPECT_EQ(a.retval, unsigned(BPF_LWT_REROUTE));
  EXPECT_SAME_PACKET(a.out, without_l2(eth.tcp({kMapped, kFar, kTcp, 64, 6}, 22, 50000, kSyn | kAck, payload)));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);

  // The rest of the connection follows the entries.
  auto ack = rev(eth.tcp({kFar, kMapped, kTcp, 60, 7}, 50000, 22, kAck, payload));
  EXPECT_SAME_PACKET(ack.out, eth.tcp({kFar, kHost, kTcp, 60, 7}, 50000, 22, kAck, payload));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 1u);
  EXPECT_EQ(dp.ct_all().size(), 2u);
}

TEST_F(Binat, UdpAndTheSmallerLansFirstQuarterToo) {
  auto r = rev(eth.udp({"10.97.0.9", "10.20.50.33"}, 40001, 53, Bytes(12, 3)));
  EXPECT_SAME_PACKET(r.out, eth.udp({"10.97.0.9", "172.31.8.33"}, 40001, 53, Bytes(12, 3)));
  auto a = lwt(PacketBuilder().udp({"172.31.8.33", "10.97.0.9"}, 53, 40001, Bytes(30, 4)));
  EXPECT_SAME_PACKET(a.out, without_l2(eth.udp({"10.20.50.33", "10.97.0.9"}, 53, 40001, Bytes(30, 4))));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 1u) << dp.nonzero_reasons();
  expect_inbound_flow(dp, {"10.97.0.9", 40001, "10.20.50.33", 53, "172.31.8.33", 53, kUdp}, IPSNAT_CT_KIND_BINAT);
}

TEST_F(Binat, WithoutTheFlagNothingIsOpened) {
  set_dev(IPSNAT_DEV_POLICY, 0);
  expect_untouched(eth.tcp({kFar, kMapped}, 50000, 22, kSyn, {}));
  expect_untouched(eth.udp({kFar, kMapped}, 50000, 53, {}));
  set_dev(IPSNAT_DEV_ROUTE, 0);
  expect_untouched(eth.tcp({kFar, kMapped}, 50000, 22, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 0u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 3u) << dp.nonzero_reasons();
}

TEST_F(Binat, OnlyFromThePolicysRemoteSelectorAndThroughItsSa) {
  // 10.98.0.1 lies in no destination selector; 10.97.0.9 in another policy's, whose map does not
  // hold the address.
  expect_untouched(eth.tcp({"10.98.0.1", kMapped}, 50000, 22, kSyn, {}));
  expect_untouched(eth.tcp({"10.97.0.9", kMapped}, 50000, 22, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 2u) << dp.nonzero_reasons();
  // The right sender, decrypted by another policy's SA.
  expect_untouched(eth.tcp({kFar, kMapped}, 50000, 22, kSyn, {}), kReqid + 1);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 0u);
}

TEST_F(Binat, CleartextToTheMappedAddressIsNotLetIn) {
  expect_untouched(eth.tcp({kFar, kMapped}, 50000, 22, kSyn, {}), 0);
  expect_untouched(eth.udp({kFar, kMapped}, 50000, 53, {}), 0);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 2u) << dp.nonzero_reasons();
}

TEST_F(Binat, OnlyTheMapsAddressesAndOnlyWhatOpensAConnection) {
  // Beyond the smaller LAN (the block's address 70, the LAN has 64), outside every block.
  expect_untouched(eth.tcp({"10.97.0.9", "10.20.50.70"}, 50000, 22, kSyn, {}));
  expect_untouched(eth.tcp({kFar, "10.20.41.77"}, 50000, 22, kSyn, {}));
  // A stray segment, a ping (not opened from outside).
  expect_untouched(eth.tcp({kFar, kMapped}, 50000, 22, kAck, {}));
  expect_untouched(eth.icmp_echo({kFar, kMapped, kIcmp}, 8, 1, 1, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 0u) << dp.nonzero_reasons();
}

// A tunnel device (route mode): its own SAs decrypted everything that arrives on it.
TEST_F(Binat, RouteModeOpensFromTheTunnelDevice) {
  set_dev(IPSNAT_DEV_ROUTE, IPSNAT_DEV_BINAT);
  auto r = rev(eth.tcp({kFar, kMapped, kTcp, 60, 5}, 50000, 443, kSyn, {}), 0);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kFar, kHost, kTcp, 60, 5}, 50000, 443, kSyn, {}));
  auto a = dp.run(dp.skel()->progs.tc_snat_egress, eth.tcp({kHost, kFar, kTcp, 64, 6}, 443, 50000, kSyn | kAck, {}));
  EXPECT_SAME_PACKET(a.out, eth.tcp({kMapped, kFar, kTcp, 64, 6}, 443, 50000, kSyn | kAck, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_BINAT), 1u) << dp.nonzero_reasons();
}

}  // namespace
}  // namespace ipsnat::test
