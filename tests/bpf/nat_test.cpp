// Golden packets through the real datapath (BPF_PROG_TEST_RUN): every translated packet is
// compared byte for byte with one built from scratch by the test's PacketBuilder, whose
// checksums come from an independent RFC 1071 routine.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

using Nat = SeedNat;

TEST_F(Nat, TcpIsTranslatedKeepingThePortAndRepliesGoBack) {
  Bytes syn = eth.tcp({kLan, kRemote, kTcp, 64, 77}, 40000, 80, kSyn, {});
  auto r = snat(syn);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kNat, kRemote, kTcp, 64, 77}, 40000, 80, kSyn, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);

  auto orig = dp.ct_get(ct_key(kLan, kRemote, 40000, 80, kTcp, IPSNAT_CT_ORIG));
  auto reply = dp.ct_get(ct_key(kRemote, kNat, 80, 40000, kTcp, IPSNAT_CT_REPLY));
  ASSERT_TRUE(orig && reply);
  EXPECT_EQ(orig->xlat_addr, parse_ipv4(kNat));
  EXPECT_EQ(ntohs(orig->xlat_port), 40000);
  EXPECT_EQ(reply->xlat_addr, parse_ipv4(kLan));
  EXPECT_EQ(orig->reqid, 7u);
  EXPECT_EQ(orig->seen, unsigned(IPSNAT_CT_SEEN_SYN));
  EXPECT_EQ(orig->packets, 1u);
  EXPECT_EQ(dp.ct_all().size(), 2u);

  Bytes synack = eth.tcp({kRemote, kNat, kTcp, 60, 9}, 80, 40000, kSyn | kAck, Bytes(33, 0x5a));
  r = rev(synack);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kRemote, kLan, kTcp, 60, 9}, 80, 40000, kSyn | kAck, Bytes(33, 0x5a)));
  reply = dp.ct_get(ct_key(kRemote, kNat, 80, 40000, kTcp, IPSNAT_CT_REPLY));
  EXPECT_EQ(reply->seen, unsigned(IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK));
  EXPECT_EQ(reply->packets, 1u);
  EXPECT_EQ(reply->bytes, synack.size() - 14);  // IP bytes, whatever the L2
}

// A new connection on a tuple whose previous one closed starts with fresh flags on both sides,
// so the GC sees a connection attempt, not a closing flow.
TEST_F(Nat, TcpTupleReuseAfterFinResetsTheFlags) {
  snat(eth.tcp({kLan, kRemote}, 40000, 80, kSyn, {}));
  rev(eth.tcp({kRemote, kNat}, 80, 40000, kSyn | kAck, {}));
  snat(eth.tcp({kLan, kRemote}, 40000, 80, 0x01 | kAck, {}));  // FIN
  rev(eth.tcp({kRemote, kNat}, 80, 40000, 0x01 | kAck, {}));
  auto ok = ct_key(kLan, kRemote, 40000, 80, kTcp, IPSNAT_CT_ORIG);
  auto rk = ct_key(kRemote, kNat, 80, 40000, kTcp, IPSNAT_CT_REPLY);
  EXPECT_TRUE(dp.ct_get(ok)->seen & IPSNAT_CT_SEEN_FIN);
  EXPECT_TRUE(dp.ct_get(rk)->seen & IPSNAT_CT_SEEN_FIN);
  auto r = snat(eth.tcp({kLan, kRemote}, 40000, 80, kSyn, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({kNat, kRemote}, 40000, 80, kSyn, {}));
  EXPECT_EQ(dp.ct_get(ok)->seen, unsigned(IPSNAT_CT_SEEN_SYN));
  EXPECT_EQ(dp.ct_get(rk)->seen, 0u);
  EXPECT_EQ(dp.ct_get(ok)->packets, 3u);
}

TEST_F(Nat, UdpIsTranslatedBothWays) {
  Bytes payload(100, 0x42);
  auto r = snat(eth.udp({kLan, kRemote}, 5353, 53, payload));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 5353, 53, payload));
  r = rev(eth.udp({kRemote, kNat}, 53, 5353, payload));
  EXPECT_SAME_PACKET(r.out, eth.udp({kRemote, kLan}, 53, 5353, payload));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 1u);
}

TEST_F(Nat, UdpZeroChecksumStaysZero) {
  Bytes payload(31, 0x07);
  auto r = snat(eth.udp({kLan, kRemote}, 5353, 53, payload, true));
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 5353, 53, payload, true));
  r = rev(eth.udp({kRemote, kNat}, 53, 5353, payload, true));
  EXPECT_SAME_PACKET(r.out, eth.udp({kRemote, kLan}, 53, 5353, payload, true));
  EXPECT_EQ(r.out[14 + 20 + 6], 0);
  EXPECT_EQ(r.out[14 + 20 + 7], 0);
}

TEST_F(Nat, IcmpEchoIsTranslatedBothWays) {
  Bytes payload(56, 0x11);
  auto r = snat(eth.icmp_echo({kLan, kRemote}, 8, 0x1234, 1, payload));
  EXPECT_SAME_PACKET(r.out, eth.icmp_echo({kNat, kRemote}, 8, 0x1234, 1, payload));
  ASSERT_TRUE(dp.ct_get(ct_key(kRemote, kNat, 0, 0x1234, kIcmp, IPSNAT_CT_REPLY)));
  r = rev(eth.icmp_echo({kRemote, kNat}, 0, 0x1234, 1, payload));
  EXPECT_SAME_PACKET(r.out, eth.icmp_echo({kRemote, kLan}, 0, 0x1234, 1, payload));
}

TEST_F(Nat, TwoHostsWithTheSameSourcePortGetDifferentNatPorts) {
  auto r1 = snat(eth.udp({kLan, kRemote}, 40000, 53, Bytes(8, 1)));
  EXPECT_SAME_PACKET(r1.out, eth.udp({kNat, kRemote}, 40000, 53, Bytes(8, 1)));
  auto r2 = snat(eth.udp({kLan2, kRemote}, 40000, 53, Bytes(8, 2)));
  EXPECT_EQ(r2.retval, TC_ACT_UNSPEC);
  auto orig2 = dp.ct_get(ct_key(kLan2, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(orig2);
  uint16_t port2 = ntohs(orig2->xlat_port);
  EXPECT_NE(port2, 40000);
  EXPECT_GE(port2, IPSNAT_DEF_PORT_MIN);
  EXPECT_NE(port2, 500);
  EXPECT_NE(port2, 4500);
  EXPECT_SAME_PACKET(r2.out, eth.udp({kNat, kRemote}, port2, 53, Bytes(8, 2)));
  auto reply2 = dp.ct_get(ct_key(kRemote, kNat, 53, port2, kUdp, IPSNAT_CT_REPLY));
  ASSERT_TRUE(reply2);
  EXPECT_EQ(reply2->xlat_addr, parse_ipv4(kLan2));
  EXPECT_EQ(ntohs(reply2->xlat_port), 40000);
  EXPECT_EQ(dp.ct_all().size(), 4u);

  // Replies reach the right host.
  auto b1 = rev(eth.udp({kRemote, kNat}, 53, 40000, Bytes(4, 9)));
  EXPECT_SAME_PACKET(b1.out, eth.udp({kRemote, kLan}, 53, 40000, Bytes(4, 9)));
  auto b2 = rev(eth.udp({kRemote, kNat}, 53, port2, Bytes(4, 9)));
  EXPECT_SAME_PACKET(b2.out, eth.udp({kRemote, kLan2}, 53, 40000, Bytes(4, 9)));

  // The same flow again keeps its binding.
  auto again = snat(eth.udp({kLan2, kRemote}, 40000, 53, Bytes(8, 2)));
  EXPECT_EQ(again.out, r2.out);
  EXPECT_EQ(dp.ct_all().size(), 4u);
}

TEST_F(Nat, TwoHostsPingingWithTheSameIdentifierGetDifferentIds) {
  snat(eth.icmp_echo({kLan, kRemote}, 8, 7, 1, {}));
  auto orig1 = dp.ct_get(ct_key(kLan, kRemote, 7, 0, kIcmp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(orig1);
  EXPECT_EQ(ntohs(orig1->xlat_port), 7) << "an echo id is kept even below the port range";
  auto r = snat(eth.icmp_echo({kLan2, kRemote}, 8, 7, 1, {}));
  auto orig2 = dp.ct_get(ct_key(kLan2, kRemote, 7, 0, kIcmp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(orig2);
  uint16_t id2 = ntohs(orig2->xlat_port);
  EXPECT_NE(id2, 7);
  EXPECT_SAME_PACKET(r.out, eth.icmp_echo({kNat, kRemote}, 8, id2, 1, {}));
  auto back = rev(eth.icmp_echo({kRemote, kNat}, 0, id2, 1, {}));
  EXPECT_SAME_PACKET(back.out, eth.icmp_echo({kRemote, kLan2}, 0, 7, 1, {}));
}

// As netfilter's NAT does (nf_nat_l4proto_unique_tuple): a privileged source port is kept when
// free and otherwise replaced by another privileged one of its class, never by one of the range:
// an NFS export's default "secure" option and rsh answer only privileged ports.
TEST_F(Nat, APrivilegedSourcePortStaysPrivileged) {
  struct Case {
    uint16_t port, min, max;
  };
  for (Case c : {Case{700, 600, 1023}, Case{550, 600, 1023}, Case{111, 1, 511}, Case{1023, 600, 1023}}) {
    SCOPED_TRACE(c.port);
    auto first = snat(eth.tcp({kLan, kRemote}, c.port, 2049, kSyn, {}));
    EXPECT_SAME_PACKET(first.out, eth.tcp({kNat, kRemote}, c.port, 2049, kSyn, {}));
    auto second = snat(eth.tcp({kLan2, kRemote}, c.port, 2049, kSyn, {}));
    auto e = dp.ct_get(ct_key(kLan2, kRemote, c.port, 2049, kTcp, IPSNAT_CT_ORIG));
    ASSERT_TRUE(e) << dp.nonzero_reasons();
    uint16_t p = ntohs(e->xlat_port);
    EXPECT_NE(p, c.port);
    EXPECT_GE(p, c.min);
    EXPECT_LE(p, c.max);
    EXPECT_NE(p, 500);
    EXPECT_SAME_PACKET(second.out, eth.tcp({kNat, kRemote}, p, 2049, kSyn, {}));
    auto back = rev(eth.tcp({kRemote, kNat}, 2049, p, kSyn | kAck, {}));
    EXPECT_SAME_PACKET(back.out, eth.tcp({kRemote, kLan2}, 2049, c.port, kSyn | kAck, {}));
    back = rev(eth.tcp({kRemote, kNat}, 2049, c.port, kSyn | kAck, {}));
    EXPECT_SAME_PACKET(back.out, eth.tcp({kRemote, kLan}, 2049, c.port, kSyn | kAck, {}));
  }
  // UDP alike; an IKE port stays reserved (the search takes another of its class).
  auto r = snat(eth.udp({kLan, kRemote}, 123, 123, {}));
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 123, 123, {}));
  snat(eth.udp({kLan, kRemote}, 500, 53, {}));
  auto ike = dp.ct_get(ct_key(kLan, kRemote, 500, 53, kUdp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(ike);
  EXPECT_NE(ntohs(ike->xlat_port), 500);
  EXPECT_GE(ntohs(ike->xlat_port), 1);
  EXPECT_LE(ntohs(ike->xlat_port), 511);
  // Policy mode's program binds alike.
  auto l = dp.run(dp.skel()->progs.lwt_snat_xmit, eth.udp({kLan, kRemote}, 1000, 2049, {}));
  EXPECT_EQ(l.retval, unsigned(BPF_LWT_REROUTE));
  Bytes want = eth.udp({kNat, kRemote}, 1000, 2049, {});
  std::fill(want.begin(), want.begin() + 14, 0);  // LWT programs see no L2 header
  EXPECT_SAME_PACKET(l.out, want);
  // A port within a configured range that starts below 1024 follows the range.
  dp.set_port_range(800, 801);
  snat(eth.udp({kLan, kRemote}, 800, 54, {}));
  snat(eth.udp({kLan2, kRemote}, 800, 54, {}));
  auto in_range = dp.ct_get(ct_key(kLan2, kRemote, 800, 54, kUdp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(in_range);
  EXPECT_EQ(ntohs(in_range->xlat_port), 801);
}

TEST_F(Nat, PortRangeExhaustionIsACountedDrop) {
  dp.set_port_range(40000, 40001);
  EXPECT_EQ(snat(eth.udp({"192.168.1.1", kRemote}, 40000, 53, {})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(snat(eth.udp({"192.168.1.2", kRemote}, 40000, 53, {})).retval, TC_ACT_UNSPEC);
  auto r = snat(eth.udp({"192.168.1.3", kRemote}, 40000, 53, {}));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 1u);
  EXPECT_EQ(dp.ct_all().size(), 4u);
  // Bindings are per remote endpoint: another destination port still has both NAT ports.
  EXPECT_EQ(snat(eth.udp({"192.168.1.3", kRemote}, 40000, 54, {})).retval, TC_ACT_UNSPEC);
}

TEST_F(Nat, IkePortsAreNeverUsedOnTheNatAddress) {
  dp.set_port_range(4499, 4501);
  auto r = snat(eth.udp({kLan, kRemote}, 4500, 4500, {}));
  auto e = dp.ct_get(ct_key(kLan, kRemote, 4500, 4500, kUdp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(e) << dp.nonzero_reasons();
  uint16_t p = ntohs(e->xlat_port);
  EXPECT_TRUE(p == 4499 || p == 4501) << p;
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, p, 4500, {}));

  dp.set_port_range(500, 501);
  auto t = snat(eth.tcp({kLan, kRemote}, 500, 22, kSyn, {}));
  auto te = dp.ct_get(ct_key(kLan, kRemote, 500, 22, kTcp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(te);
  EXPECT_EQ(ntohs(te->xlat_port), 501);
  // Only 500 is left in the range for the next host: reserved, so the flow is dropped.
  auto t2 = snat(eth.tcp({kLan2, kRemote}, 500, 22, kSyn, {}));
  EXPECT_EQ(t2.retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 1u);
}

TEST_F(Nat, PrefixTargetMapsOneToOneAndKeepsPorts) {
  install_nat_target(dp, "10.99.0.0/16", prefix_target("10.20.40.0/24", "192.168.1.0/24"));
  auto r = snat(eth.tcp({"192.168.1.77", "10.99.1.1"}, 33333, 443, kSyn, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({"10.20.40.77", "10.99.1.1"}, 33333, 443, kSyn, {}));
  auto b = rev(eth.tcp({"10.99.1.1", "10.20.40.77"}, 443, 33333, kSyn | kAck, {}));
  EXPECT_SAME_PACKET(b.out, eth.tcp({"10.99.1.1", "192.168.1.77"}, 443, 33333, kSyn | kAck, {}));
}

TEST_F(Nat, SourcesThatNeedNoTranslationArePassedUntouched) {
  // The SPD answers spd_nat_target only for sources its NAT rule applies to; the datapath checks
  // again (pass-already-ok, pass-not-inside) in case a target comes back anyway.
  auto passed = [&] {
    return dp.reason_packets(IPSNAT_R_PASS_ALREADY_OK) + dp.reason_packets(IPSNAT_R_PASS_NOT_INSIDE) +
           dp.reason_packets(IPSNAT_R_PASS_NOT_COVERED);
  };
  Bytes own = eth.udp({kNat, kRemote}, 1000, 53, {});
  EXPECT_EQ(snat(own).out, own);
  EXPECT_EQ(passed(), 1u);
  Bytes other = eth.udp({"172.16.0.5", kRemote}, 1000, 53, {});
  EXPECT_EQ(snat(other).out, other);
  EXPECT_EQ(passed(), 2u);
  Bytes esp = eth.ipv4({kLan, kRemote, 50}, Bytes(24, 0));
  EXPECT_EQ(snat(esp).out, esp);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_PROTO), 1u);
  EXPECT_TRUE(dp.ct_all().empty());
}

// As netfilter's generic tracking translates them: GRE, IPv6 in IPv4, IP in IP and the other
// protocols without ports by their address alone, one binding per inside host, remote address
// and protocol; not ESP and AH (the gateway's own SAs are keyed alike), not SCTP (it has ports).
TEST_F(Nat, PortlessProtocolsAreTranslatedByTheirAddressAlone) {
  Bytes payload(24, 0x47);
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  for (uint8_t proto : {47, 41, 4}) {
    SCOPED_TRACE(int(proto));
    auto r = snat(eth.ipv4({kLan, kRemote, proto}, payload));
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_SAME_PACKET(r.out, eth.ipv4({kNat, kRemote, proto}, payload));
    auto back = rev(eth.ipv4({kRemote, kNat, proto}, payload));
    EXPECT_SAME_PACKET(back.out, eth.ipv4({kRemote, kLan, proto}, payload));
    // Policy mode's program uses the same binding.
    auto l = dp.run(lwt, eth.ipv4({kLan, kRemote, proto}, payload));
    EXPECT_EQ(l.retval, unsigned(BPF_LWT_REROUTE));
    Bytes want = eth.ipv4({kNat, kRemote, proto}, payload);
    std::fill(want.begin(), want.begin() + 14, 0);  // LWT programs see no L2 header
    EXPECT_SAME_PACKET(l.out, want);
    auto e = dp.ct_get(ct_key(kLan, kRemote, 0, 0, proto, IPSNAT_CT_ORIG));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->packets, 2u);
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 6u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 3u);

  // A second inside host to the same remote address with the same protocol finds it taken;
  // to another remote address it has a binding of its own.
  EXPECT_EQ(snat(eth.ipv4({kLan2, kRemote, 47}, payload)).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 1u);
  auto other = snat(eth.ipv4({kLan2, "10.9.9.9", 47}, payload));
  EXPECT_SAME_PACKET(other.out, eth.ipv4({kNat, "10.9.9.9", 47}, payload));

  // A router's error about a translated GRE packet goes back to the inside host.
  Bytes quoted = l3_of(eth.ipv4({kNat, kRemote, 47}, payload), 14);
  auto err = rev(eth.icmp_error({"10.0.0.254", kNat, kIcmp}, 3, 1, quoted));
  EXPECT_SAME_PACKET(err.out, eth.icmp_error({"10.0.0.254", kLan, kIcmp}, 3, 1,
                                             l3_of(eth.ipv4({kLan, kRemote, 47}, payload), 14)));

  // ESP, AH and SCTP pass untranslated (in policy mode the leak guard then judges them).
  for (uint8_t proto : {50, 51, 132}) {
    Bytes p = eth.ipv4({kLan, kRemote, proto}, payload);
    EXPECT_EQ(snat(p).out, p) << int(proto);
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_PROTO), 3u);
}

TEST_F(Nat, IpOptionsAreKept) {
  Ipv4Spec in{kLan, kRemote};
  in.options = {0x94, 0x04, 0x00, 0x00};  // router alert
  Ipv4Spec out = in;
  out.src = kNat;
  auto r = snat(eth.tcp(in, 40000, 80, kSyn, Bytes(10, 3)));
  EXPECT_SAME_PACKET(r.out, eth.tcp(out, 40000, 80, kSyn, Bytes(10, 3)));
  Ipv4Spec rin{kRemote, kNat};
  rin.options = {0x01, 0x01, 0x01, 0x00};  // NOP NOP NOP EOL
  Ipv4Spec rout = rin;
  rout.dst = kLan;
  auto b = rev(eth.udp(rin, 80, 40000, Bytes(10, 3)));
  EXPECT_EQ(b.retval, TC_ACT_UNSPEC);
  // The reply is UDP: no such flow, so it passes untouched; the TCP reply is translated.
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 1u);
  auto b2 = rev(eth.tcp(rin, 80, 40000, kSyn | kAck, Bytes(10, 3)));
  EXPECT_SAME_PACKET(b2.out, eth.tcp(rout, 80, 40000, kSyn | kAck, Bytes(10, 3)));
}

// A later fragment that arrives first cannot be translated consistently: dropped.
TEST_F(Nat, FragmentsAreTranslatedConsistently) {
  Bytes payload(300, 0);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  Ipv4Spec sp{kLan, kRemote, kUdp, 64, 0x4242};
  Bytes full = l4_of(eth.udp(sp, 40000, 53, payload), 14);
  Ipv4Spec sp_out = sp;
  sp_out.src = kNat;
  Bytes full_out = l4_of(eth.udp(sp_out, 40000, 53, payload), 14);
  Bytes part1(full.begin(), full.begin() + 160), part2(full.begin() + 160, full.end());
  Bytes part1_out(full_out.begin(), full_out.begin() + 160), part2_out(full_out.begin() + 160, full_out.end());
  auto frag = [](Ipv4Spec s, uint16_t off_bytes, bool more) {
    s.frag_off = static_cast<uint16_t>((more ? 0x2000 : 0) | (off_bytes / 8));
    return s;
  };

  Bytes later = eth.ipv4(frag(sp, 160, false), part2);
  EXPECT_EQ(snat(later).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_FRAG_NO_FIRST), 1u);

  auto r1 = snat(eth.ipv4(frag(sp, 0, true), part1));
  EXPECT_EQ(r1.out, eth.ipv4(frag(sp_out, 0, true), part1_out)) << dp.nonzero_reasons();
  auto r2 = snat(later);
  EXPECT_EQ(r2.out, eth.ipv4(frag(sp_out, 160, false), part2_out)) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_FRAG), 1u);

  // Reassembled, the translated datagram's UDP checksum verifies.
  Bytes reassembled = eth.ipv4(sp_out, Bytes());
  Bytes l4 = part1_out;
  l4.insert(l4.end(), part2_out.begin(), part2_out.end());
  EXPECT_TRUE(verify_checksums(eth.ipv4({kNat, kRemote, kUdp, 64, 0x4242}, l4), 14).l4_ok);

  // Replies, fragmented too.
  Ipv4Spec rp{kRemote, kNat, kUdp, 64, 0x1111};
  Bytes rfull = l4_of(eth.udp(rp, 53, 40000, payload), 14);
  Ipv4Spec rp_out = rp;
  rp_out.dst = kLan;
  Bytes rfull_out = l4_of(eth.udp(rp_out, 53, 40000, payload), 14);
  auto b1 = rev(eth.ipv4(frag(rp, 0, true), Bytes(rfull.begin(), rfull.begin() + 160)));
  EXPECT_EQ(b1.out, eth.ipv4(frag(rp_out, 0, true), Bytes(rfull_out.begin(), rfull_out.begin() + 160)));
  auto b2 = rev(eth.ipv4(frag(rp, 160, false), Bytes(rfull.begin() + 160, rfull.end())));
  EXPECT_EQ(b2.out, eth.ipv4(frag(rp_out, 160, false), Bytes(rfull_out.begin() + 160, rfull_out.end())));
}

// A later fragment whose first fragment left no memory is judged as its first fragment is: a
// protocol NAT cannot translate passes (both fragments, pass-proto), only a datagram whose first
// fragment would have been translated is dropped.
TEST_F(Nat, ALaterFragmentOfAnUntranslatableProtocolPassesLikeItsFirst) {
  auto frag = [](uint16_t off_bytes, bool more) {
    Ipv4Spec s{kLan, "10.3.0.9", 132 /* SCTP */, 64, 0x5151};
    s.frag_off = static_cast<uint16_t>((more ? 0x2000 : 0) | (off_bytes / 8));
    return s;
  };
  Bytes first = eth.ipv4(frag(0, true), Bytes(48, 0x47)), later = eth.ipv4(frag(48, false), Bytes(40, 0x47));
  auto r1 = snat(first);
  EXPECT_EQ(r1.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r1.out, first);
  auto r2 = snat(later);
  EXPECT_EQ(r2.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r2.out, later);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_PROTO), 2u) << dp.nonzero_reasons();
}

TEST_F(Nat, NonIpv4IsPassed) {
  for (uint16_t type : {0x0806, 0x86dd, 0x8100}) {
    Bytes p = eth.non_ip(type, 80);
    EXPECT_EQ(snat(p).out, p);
    EXPECT_EQ(rev(p).out, p);
    EXPECT_EQ(guard(p).out, p);
  }
  // The guard judges IPv6 (tests/bpf/guard_test.cpp): this zero-filled one goes to ::, uncovered.
  // This device has no --binat, so no NPTv6 either (tests/bpf/npt6_test.cpp).
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_IPV4), 8u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_COVERED), 1u);
}

// Decrypted packets at TC ingress of an xfrm interface start with a stale outer Ethernet
// header whose addresses have nothing to do with the device; only the IP header counts.
TEST_F(Nat, StaleEthernetHeaderOnIngressIsSkipped) {
  snat(eth.udp({kLan, kRemote}, 40000, 53, {}));
  Bytes reply = eth.udp({kRemote, kNat}, 53, 40000, Bytes(5, 5));
  Bytes want = eth.udp({kRemote, kLan}, 53, 40000, Bytes(5, 5));
  for (int i = 0; i < 12; ++i) reply[i] = want[i] = static_cast<uint8_t>(0xa0 + i);
  EXPECT_SAME_PACKET(rev(reply).out, want);
}

TEST_F(Nat, PolicyModeWithoutAnSaDoesNotTranslateReplies) {
  snat(eth.udp({kLan, kRemote}, 40000, 53, {}));
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  Bytes spoofed = eth.udp({kRemote, kNat}, 53, 40000, Bytes(5, 5));
  auto r = rev(spoofed);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, spoofed);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_SA), 1u);
  // A device without configuration is treated the same way.
  bpf_map_delete_elem(bpf_map__fd(dp.skel()->maps.ipsnat_dev), &(const uint32_t&)Datapath::test_ifindex());
  EXPECT_EQ(rev(spoofed).out, spoofed);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_SA), 2u);
  // ICMP errors too.
  Bytes quoted = PacketBuilder(false).udp({kNat, kRemote}, 40000, 53, {});
  Bytes err = eth.icmp_error({kRemote, kNat}, 3, 3, quoted);
  EXPECT_EQ(rev(err).out, err);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_SA), 3u);
}

// A full-tunnel policy (remote selector 0.0.0.0/0, strongSwan's remote_ts=0.0.0.0/0) covers the
// IKE peer too, so the gateway's own IKE and NAT-T packets (from its uplink address, ports
// 500/4500, also ESP-in-UDP) reach lwt_snat_xmit and tc_snat_egress: they are never translated
// (their source is no inside address), and the leak guard lets them out.
TEST_F(Nat, GatewaysOwnIkeAndNatTPacketsAreNeverTranslated) {
  install_nat_target(dp, "0.0.0.0/0", napt_target(kNat, "192.168.1.0/24", 3));
  const std::string uplink = "200.2.2.2", peer = "100.1.1.1";
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  std::vector<Bytes> own = {eth.udp({uplink, peer}, 500, 500, Bytes(40, 1)),
                            eth.udp({uplink, peer}, 4500, 4500, Bytes(40, 2)),
                            eth.udp({uplink, peer}, 4500, 4500, Bytes{0, 0, 0, 1, 0, 0, 0, 7, 9, 9}),  // ESP in UDP
                            eth.tcp({uplink, peer}, 4500, 4500, kAck, Bytes(12, 3))};                 // IKE over TCP
  for (const auto& p : own) {
    auto r = snat(p);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p) << dp.nonzero_reasons();
    auto l = dp.run(lwt, p);
    EXPECT_EQ(l.retval, unsigned(BPF_OK));
    EXPECT_TRUE(std::equal(l.out.begin() + 14, l.out.end(), p.begin() + 14)) << dp.nonzero_reasons();
    EXPECT_EQ(guard(p).retval, TC_ACT_UNSPEC);
  }
  // No NAT target of the SPD takes their source (spd_nat_target matches inside prefixes first).
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_COVERED) + dp.reason_packets(IPSNAT_R_PASS_NOT_INSIDE), 2 * own.size());
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_IPSEC), own.size());
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 0u);
  EXPECT_TRUE(dp.ct_all().empty());
  // The policy is in force: a LAN host's packet to the peer is translated (to another port than
  // 4500 on the NAT address).
  auto lan = snat(eth.udp({kLan, peer}, 4500, 4500, Bytes(8, 4)));
  auto e = dp.ct_get(ct_key(kLan, peer, 4500, 4500, kUdp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(e) << dp.nonzero_reasons();
  EXPECT_NE(ntohs(e->xlat_port), 4500);
  EXPECT_SAME_PACKET(lan.out, eth.udp({kNat, peer}, ntohs(e->xlat_port), 4500, Bytes(8, 4)));
}

TEST_F(Nat, LeakGuardDropsCoveredCleartext) {
  EXPECT_EQ(guard(eth.udp({kLan, kRemote}, 40000, 53, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(guard(eth.tcp({kNat, kRemote}, 40000, 80, kSyn, {})).retval, TC_ACT_SHOT);  // SA missing
  EXPECT_EQ(guard(eth.icmp_echo({kLan, kRemote}, 8, 1, 1, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_LEAK_GUARD), 3u);
  Bytes esp = eth.ipv4({"200.2.2.2", kRemote, 50}, Bytes(64, 1));
  EXPECT_EQ(guard(esp).retval, TC_ACT_UNSPEC);
  Bytes ike = eth.udp({"200.2.2.2", kRemote}, 500, 500, Bytes(40, 1));
  EXPECT_EQ(guard(ike).retval, TC_ACT_UNSPEC);
  Bytes natt = eth.udp({"200.2.2.2", kRemote}, 4500, 4500, Bytes(40, 1));
  EXPECT_EQ(guard(natt).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_IPSEC), 3u);
  Bytes web = eth.tcp({kLan, "8.8.8.8"}, 40000, 443, kSyn, {});
  EXPECT_EQ(guard(web).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(guard(web).out, web);
}

TEST_F(Nat, LwtTranslatesAndAsksForAReroute) {
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  Bytes payload(20, 0x33);
  auto r = dp.run(lwt, eth.udp({kLan, kRemote}, 40000, 53, payload));
  EXPECT_EQ(r.retval, unsigned(BPF_LWT_REROUTE));
  // LWT programs see no L2 header: the test run gives back 14 zero bytes in its place.
  Bytes want = eth.udp({kNat, kRemote}, 40000, 53, payload);
  std::fill(want.begin(), want.begin() + 14, 0);
  EXPECT_SAME_PACKET(r.out, want);
  auto pass = dp.run(lwt, eth.udp({kLan, "8.8.8.8"}, 40000, 53, payload));
  EXPECT_EQ(pass.retval, unsigned(BPF_OK));
  EXPECT_TRUE(std::equal(pass.out.begin() + 14, pass.out.end(), eth.udp({kLan, "8.8.8.8"}, 40000, 53, payload).begin() + 14));
  dp.set_port_range(40000, 40000);
  auto drop = dp.run(lwt, eth.udp({kLan2, kRemote}, 40000, 53, payload));
  EXPECT_EQ(drop.retval, unsigned(BPF_DROP));
}

// The kernel's lookup after BPF_LWT_REROUTE carries no ports (docs/datapath.md, "Kernel path"):
// a flow the port-restricted policy ahead takes is not translated at the LWT hook, where the
// reroute would hand it to the port-less policy behind (another SA); the tunnel device's egress,
// before a lookup that keeps the ports, translates it.
TEST_F(Nat, LwtLeavesAFlowTheRerouteWouldGiveAnotherPolicyUntranslated) {
  auto ssh = tunnel_policy(spd::Dir::Out, kNat + "/32", "10.0.0.0/8", 41, 1);
  ssh.sel.proto = kTcp;
  ssh.sel.dport = 22;
  ssh.sel.dport_mask = 0xffff;
  install_policy(dp, ssh);
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  Bytes syn = eth.tcp({kLan, kRemote}, 40000, 22, kSyn, {});
  auto r = dp.run(lwt, syn);
  EXPECT_EQ(r.retval, unsigned(BPF_OK));
  EXPECT_TRUE(std::equal(r.out.begin() + 14, r.out.end(), syn.begin() + 14));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_REROUTE_PORTS), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 0u);
  // Another port meets the port-less policy with its ports and without: translated.
  EXPECT_EQ(dp.run(lwt, eth.tcp({kLan, kRemote}, 40001, 80, kSyn, {})).retval, unsigned(BPF_LWT_REROUTE));
  EXPECT_SAME_PACKET(snat(syn).out, eth.tcp({kNat, kRemote}, 40000, 22, kSyn, {}));
}

}  // namespace
}  // namespace ipsnat::test
