// Port-forwards into the LAN (maps/fwd.h) through the real datapath (BPF_PROG_TEST_RUN): a
// connection from the tunnel to NAT address:port is translated to the inside host, the flow's
// two conntrack entries are created, the inside host's answers leave as NAT address:port, and
// NAPT never hands the forwarded port to an outgoing flow. Packets are compared with ones built
// from scratch; checksums by the independent routine in tests/support.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "maps/fwd.h"
#include "pins/fwd_map.h"
#include "support/inbound_flow.h"
#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

class Forward : public SeedNat {
 protected:
  Forward() {
    add_forward(kTcp, kNat, 8080, kLan, 80);
    add_forward(kUdp, kNat, 5353, kLan2, 53);
  }
  void add_forward(uint8_t proto, const std::string& nat, uint16_t port, const std::string& in, uint16_t in_port) {
    ipsnat_fwd_key k{};
    k.nat_addr = parse_ipv4(nat);
    k.port = htons(port);
    k.proto = proto;
    ipsnat_fwd_target t{};
    t.inside_addr = parse_ipv4(in);
    t.inside_port = htons(in_port);
    fwd.put(k, t);
  }
  // As the loader writes them (with the entry count the datapath reads first).
  pins::ForwardMap fwd{bpf_map__fd(dp.skel()->maps.ipsnat_fwd), bpf_map__fd(dp.skel()->maps.ipsnat_fwd_cnt)};
};

TEST_F(Forward, TcpSynToAForwardedPortReachesTheInsideHostAndAnswersLeaveAsTheNatPort) {
  auto r = rev(eth.tcp({kRemote, kNat, kTcp, 60, 5}, 50000, 8080, kSyn, {}));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kRemote, kLan, kTcp, 60, 5}, 50000, 80, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_FORWARD), 1u);

  auto reply = expect_inbound_flow(dp, {kRemote, 50000, kNat, 8080, kLan, 80, kTcp}, IPSNAT_CT_KIND_FORWARD);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->seen, unsigned(IPSNAT_CT_SEEN_SYN));
  EXPECT_EQ(reply->packets, 1u);

  // The inside host's SYN-ACK leaves from the NAT address and the outside port.
  Bytes payload(17, 0x42);
  auto a = snat(eth.tcp({kLan, kRemote, kTcp, 64, 6}, 80, 50000, kSyn | kAck, payload));
  EXPECT_EQ(a.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(a.out, eth.tcp({kNat, kRemote, kTcp, 64, 6}, 8080, 50000, kSyn | kAck, payload));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);

  // The rest of the connection follows the entries; nothing new is created.
  auto ack = rev(eth.tcp({kRemote, kNat, kTcp, 60, 7}, 50000, 8080, kAck, payload));
  EXPECT_SAME_PACKET(ack.out, eth.tcp({kRemote, kLan, kTcp, 60, 7}, 50000, 80, kAck, payload));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 1u);
  EXPECT_EQ(dp.ct_all().size(), 2u);
}

TEST_F(Forward, UdpIsForwardedAndAnswered) {
  auto r = rev(eth.udp({kRemote, kNat}, 40001, 5353, Bytes(12, 3)));
  EXPECT_SAME_PACKET(r.out, eth.udp({kRemote, kLan2}, 40001, 53, Bytes(12, 3)));
  auto a = snat(eth.udp({kLan2, kRemote}, 53, 40001, Bytes(30, 4)));
  EXPECT_SAME_PACKET(a.out, eth.udp({kNat, kRemote}, 5353, 40001, Bytes(30, 4)));
  expect_inbound_flow(dp, {kRemote, 40001, kNat, 5353, kLan2, 53, kUdp}, IPSNAT_CT_KIND_FORWARD);
}

TEST_F(Forward, OnlyATcpSynOpensAForwardedFlow) {
  Bytes stray = eth.tcp({kRemote, kNat, kTcp, 60, 5}, 50000, 8080, kAck, {});
  auto r = rev(stray);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, stray);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 1u);
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(Forward, PortsWithoutARuleAndOtherProtocolsAreNotForwarded) {
  Bytes other_port = eth.tcp({kRemote, kNat, kTcp, 60, 5}, 50000, 8081, kSyn, {});
  EXPECT_EQ(rev(other_port).out, other_port);
  Bytes udp_on_tcp_port = eth.udp({kRemote, kNat}, 50000, 8080, {});
  EXPECT_EQ(rev(udp_on_tcp_port).out, udp_on_tcp_port);
  Bytes other_addr = eth.tcp({kRemote, "10.20.30.3", kTcp, 60, 5}, 50000, 8080, kSyn, {});
  EXPECT_EQ(rev(other_addr).out, other_addr);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 3u);
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(Forward, PolicyModeForwardsOnlyWhatArrivedThroughAnSa) {
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  Bytes spoofed = eth.tcp({kRemote, kNat, kTcp, 60, 5}, 50000, 8080, kSyn, {});
  auto r = rev(spoofed);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, spoofed);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_SA), 1u);
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(Forward, NaptNeverHandsOutAForwardedPort) {
  // The inside host's own port equals the forwarded one: it is moved, like a taken port.
  dp.set_port_range(8080, 8081);
  auto r = snat(eth.tcp({kLan2, kRemote, kTcp, 64, 1}, 8080, 443, kSyn, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({kNat, kRemote, kTcp, 64, 1}, 8081, 443, kSyn, {}));
  // With only the forwarded port left in the range there is no port: a counted drop.
  dp.set_port_range(8080, 8080);
  auto d = snat(eth.tcp({kLan2, kRemote, kTcp, 64, 1}, 8080, 444, kSyn, {}));
  EXPECT_EQ(d.retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 1u);
  // UDP 8080 is not forwarded: kept.
  auto u = snat(eth.udp({kLan2, kRemote}, 8080, 443, {}));
  EXPECT_SAME_PACKET(u.out, eth.udp({kNat, kRemote}, 8080, 443, {}));
}

TEST_F(Forward, TheCountIsAnUpperBoundOfTheEntries) {
  ipsnat_fwd_key k{};
  k.nat_addr = parse_ipv4(kNat);
  k.port = htons(9000);
  k.proto = kTcp;
  ipsnat_fwd_target t{};
  EXPECT_EQ(fwd.count(), 2u);
  fwd.put(k, t);
  fwd.put(k, t);  // replaced, not counted twice
  EXPECT_EQ(fwd.count(), 3u);
  EXPECT_TRUE(fwd.erase(k));
  EXPECT_FALSE(fwd.erase(k));  // gone: not subtracted twice
  EXPECT_EQ(fwd.count(), 2u);
  for (const auto& key : fwd.keys()) fwd.erase(key);
  EXPECT_EQ(fwd.count(), 0u);
}

// The datapath reads the count before ipsnat_fwd: while it is 0 the map is not consulted, so an
// entry written past the count (as no loader does) reserves nothing, and the NAPT keeps the port.
TEST_F(Forward, WithNoForwardCountedTheMapIsNotConsulted) {
  for (const auto& key : fwd.keys()) fwd.erase(key);
  ipsnat_fwd_key k{};
  k.nat_addr = parse_ipv4(kNat);
  k.port = htons(8080);
  k.proto = kTcp;
  ipsnat_fwd_target t{};
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.ipsnat_fwd), &k, &t, BPF_ANY), 0);
  dp.set_port_range(8080, 8081);
  auto r = snat(eth.tcp({kLan2, kRemote, kTcp, 64, 1}, 8080, 443, kSyn, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({kNat, kRemote, kTcp, 64, 1}, 8080, 443, kSyn, {}));
  // Nor does a SYN from the tunnel to that port open a forwarded flow.
  rev(eth.tcp({kRemote, kNat, kTcp, 60, 5}, 50000, 8080, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_FORWARD), 0u);
}

}  // namespace
}  // namespace ipsnat::test
