// NAT66 with ports (bpf/lib/nat66.h) on golden packets: the rule comes from the SPD mirror's own
// writer (loader/spd/npt6.*) for a policy whose source is one address; the oracle for the
// checksums is a whole recomputation of the translated packet's TCP, UDP or ICMPv6 checksum
// (tests/support/packet.*), and the ct6 entries are read back from the map by the keys the schema
// (maps/ct6.h) defines.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "maps/ct6.h"
#include "maps/npt6.h"
#include "maps/stats.h"
#include "spd/model.h"
#include "mirror/npt6_map.h"
#include "spd/npt6.h"
#include "pins/ct_gc.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/ipv6_packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp6 = 58;
constexpr uint32_t kIfId = 42;
constexpr size_t kL3 = 14;  // PacketBuilder's Ethernet header
constexpr size_t kSrc = kL3 + 8, kDst = kL3 + 24, kL4 = kL3 + 40;
constexpr uint32_t kSa = 7;  // the reqid a packet "decrypted" by an SA carries (skb->mark here)

spd::Policy policy6(uint32_t index, const std::string& src, const std::string& dst) {
  return ipv6_out_policy(index, src, dst, kIfId);
}

std::string addr_at(const Bytes& pkt, size_t off) { return ipv6_at(pkt, off); }

uint16_t u16_at(const Bytes& pkt, size_t off) { return uint16_t(pkt[off] << 8 | pkt[off + 1]); }

void put_addr(uint8_t* to, const std::string& a) { ASSERT_EQ(inet_pton(AF_INET6, a.c_str(), to), 1) << a; }

// strongSwan's virtual IPv6 2001:db8:b:7::5 is the source of the policy towards 2001:db8:f00::/40
// on the xfrm interface of if_id 42; the LAN is fd00:9:9:9::/64 (and an IPv4 LAN beside it).
class Nat66 : public ::testing::Test {
 protected:
  Nat66() : dp(true) {
    model.apply(spd::PolicyUpsert{policy6(9, "2001:db8:b:7::5/128", "2001:db8:f00::/40")});
    writer.write(model, inside);
    set_dev(IPSNAT_DEV_ROUTE, kIfId, 0);  // no --binat: NAT66 needs none
  }
  void set_dev(ipsnat_dev_mode mode, uint32_t if_id, uint32_t flags) {
    dp.set_dev_mode(Datapath::test_ifindex(), mode, if_id, flags);
  }
  RunResult out(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  RunResult back(const Bytes& p, uint32_t sa = 0) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa); }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }
  int ct6_fd() { return bpf_map__fd(dp.skel()->maps.ipsnat_ct6); }

  // Egress: the source becomes `nat` with a valid checksum; returns the NAT port (echo id).
  uint16_t leaves(const std::string& host, const std::string& remote, uint8_t proto, const Bytes& l4,
                  const std::string& nat) {
    Bytes pkt = eth.ipv6_l4(host, remote, proto, l4);
    EXPECT_TRUE(ipv6_l4_checksum_ok(pkt, kL3));
    RunResult r = out(pkt);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(addr_at(r.out, kSrc), nat) << host;
    EXPECT_EQ(addr_at(r.out, kDst), remote);
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3)) << "proto " << int(proto) << " " << host;
    return proto == kIcmp6 ? u16_at(r.out, kL4 + 4) : u16_at(r.out, kL4);
  }
  // The reply to the NAT address and port comes back to `host` at `port`, checksum valid.
  void returns(const std::string& remote, const std::string& nat, uint8_t proto, const Bytes& reply_l4,
               const std::string& host, uint16_t port) {
    RunResult b = back(eth.ipv6_l4(remote, nat, proto, reply_l4));
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(addr_at(b.out, kDst), host);
    EXPECT_EQ(addr_at(b.out, kSrc), remote);
    EXPECT_EQ(proto == kIcmp6 ? u16_at(b.out, kL4 + 4) : u16_at(b.out, kL4 + 2), port);
    EXPECT_TRUE(ipv6_l4_checksum_ok(b.out, kL3)) << "reply proto " << int(proto);
  }
  std::optional<ipsnat_ct6_entry> ct6(const std::string& s, const std::string& d, uint16_t sp, uint16_t dp_,
                                      uint8_t proto, uint8_t dir) {
    ipsnat_ct6_key k{};
    put_addr(k.saddr, s);
    put_addr(k.daddr, d);
    k.sport = htons(sp);
    k.dport = htons(dp_);
    k.proto = proto;
    k.dir = dir;
    ipsnat_ct6_entry e{};
    if (bpf_map_lookup_elem(ct6_fd(), &k, &e) != 0) return std::nullopt;
    return e;
  }

  Datapath dp;
  spd::SpdModel model;
  std::vector<Prefix> inside{ipsnat::parse_prefix("fd00:9:9:9::/64"), ipsnat::parse_prefix("192.168.1.0/24")};
  mirror::Npt6Writer writer{bpf_map__fd(dp.skel()->maps.ipsnat_npt6)};
  PacketBuilder eth;
};

const std::string kVip = "2001:db8:b:7::5", kHost = "fd00:9:9:9::10", kRemote = "2001:db8:f00::1";

TEST_F(Nat66, TcpUdpAndEchoLeaveAsTheOneAddressAndTheirRepliesComeBack) {
  uint16_t tcp = leaves(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x02), kVip);
  EXPECT_EQ(tcp, 40000) << "a free port in the range is kept";
  returns(kRemote, kVip, kTcp, tcp_header(443, tcp, 0x12), kHost, 40000);
  uint16_t udp = leaves(kHost, "2001:db8:f12::77", kUdp, udp_header(40001, 53, 30), kVip);
  returns("2001:db8:f12::77", kVip, kUdp, udp_header(53, udp, 9), kHost, 40001);
  uint16_t id = leaves(kHost, kRemote, kIcmp6, icmp6_echo(128, 7), kVip);
  EXPECT_EQ(id, 7);
  returns(kRemote, kVip, kIcmp6, icmp6_echo(129, id), kHost, 7);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 3u) << dp.nonzero_reasons();
}

// Two LAN hosts with the same source port towards one remote endpoint get two NAT ports; each
// reply reaches its own host. A port below the NAPT range is moved into it.
TEST_F(Nat66, TwoHostsOnePortTwoNatPortsEachReplyToItsHost) {
  const std::string other = "fd00:9:9:9:abcd::99";
  uint16_t a = leaves(kHost, kRemote, kUdp, udp_header(5353, 53, 8), kVip);
  uint16_t b = leaves(other, kRemote, kUdp, udp_header(5353, 53, 8), kVip);
  EXPECT_EQ(a, 5353);
  EXPECT_NE(a, b);
  EXPECT_GE(b, IPSNAT_DEF_PORT_MIN);
  returns(kRemote, kVip, kUdp, udp_header(53, b, 4), other, 5353);
  returns(kRemote, kVip, kUdp, udp_header(53, a, 4), kHost, 5353);
  // A privileged port stays privileged (lib/nat.h nat_privileged_class): kept when free, else
  // another of its class.
  EXPECT_EQ(leaves(kHost, kRemote, kTcp, tcp_header(80, 443, 0x02), kVip), 80);
  returns(kRemote, kVip, kTcp, tcp_header(443, 80, 0x12), kHost, 80);
  uint16_t low = leaves(other, kRemote, kTcp, tcp_header(80, 443, 0x02), kVip);
  EXPECT_NE(low, 80);
  EXPECT_GE(low, 1);
  EXPECT_LE(low, 511);
  returns(kRemote, kVip, kTcp, tcp_header(443, low, 0x12), other, 80);
  // A second packet of a flow keeps its binding.
  EXPECT_EQ(leaves(other, kRemote, kUdp, udp_header(5353, 53, 8), kVip), b);
}

TEST_F(Nat66, BothDirectionsAreInConntrackAndPointAtEachOther) {
  uint16_t port = leaves(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x02), kVip);
  auto o = ct6(kHost, kRemote, 40000, 443, kTcp, IPSNAT_CT_ORIG);
  auto r = ct6(kRemote, kVip, 443, port, kTcp, IPSNAT_CT_REPLY);
  ASSERT_TRUE(o && r);
  EXPECT_EQ(o->kind, IPSNAT_CT_KIND_NAT66);
  EXPECT_EQ(addr_at(Bytes(o->xlat_addr, o->xlat_addr + 16), 0), kVip);
  EXPECT_EQ(ntohs(o->xlat_port), port);
  EXPECT_EQ(addr_at(Bytes(r->xlat_addr, r->xlat_addr + 16), 0), kHost);
  EXPECT_EQ(ntohs(r->xlat_port), 40000);
  EXPECT_EQ(o->packets, 1u);
  EXPECT_EQ(o->seen, uint32_t(IPSNAT_CT_SEEN_SYN));
  EXPECT_EQ(r->packets, 0u);
  returns(kRemote, kVip, kTcp, tcp_header(443, port, 0x12), kHost, 40000);
  r = ct6(kRemote, kVip, 443, port, kTcp, IPSNAT_CT_REPLY);
  EXPECT_EQ(r->packets, 1u);
  EXPECT_EQ(r->seen, uint32_t(IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK));
  // The echo: a request is keyed (id, 0), its reply (0, id).
  leaves(kHost, kRemote, kIcmp6, icmp6_echo(128, 9), kVip);
  EXPECT_TRUE(ct6(kHost, kRemote, 9, 0, kIcmp6, IPSNAT_CT_ORIG));
  EXPECT_TRUE(ct6(kRemote, kVip, 0, 9, kIcmp6, IPSNAT_CT_REPLY));
}

// The datapath creates a NAT66 flow REPLY first, then ORIG (nat66.h, as ct_create): a removal
// that finds the REPLY alone and deletes it must not leave the ORIG that lands meanwhile (as
// CtGcTest.RemoveIfTakesTheOrigEntryThatLandsAfterItReadAHalfFlow for IPv4).
TEST_F(Nat66, RemoveIfTakesTheOrigEntryThatLandsAfterItReadAHalfFlow) {
  leaves(kHost, kRemote, kUdp, udp_header(40000, 53, 8), kVip);
  ipsnat_ct6_key orig_key{};
  put_addr(orig_key.saddr, kHost);
  put_addr(orig_key.daddr, kRemote);
  orig_key.sport = htons(40000);
  orig_key.dport = htons(53);
  orig_key.proto = kUdp;
  orig_key.dir = IPSNAT_CT_ORIG;
  auto orig = ct6(kHost, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(orig);
  pins::Ct6Map map(ct6_fd());
  ASSERT_TRUE(map.erase(orig_key));  // mid-creation: the REPLY is in, the ORIG not yet
  int judged = 0;
  auto r = pins::Ct6Gc(map).remove_if([&](const ct::Flow6& f) {
    // The second judgement is on the fresh read: the datapath's second insert lands right after.
    if (++judged == 2) {
      EXPECT_EQ(bpf_map_update_elem(ct6_fd(), &orig_key, &*orig, BPF_NOEXIST), 0);
    }
    return !f.orig;
  });
  EXPECT_EQ(judged, 2);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.entries_deleted, 2u);
  EXPECT_TRUE(map.entries().empty());
}

// Nothing from the far side opens a flow: to the NAT address it passes untouched (to the host
// itself, as before attach); into the LAN with an SA it is dropped; a reply with a wrong port or
// from another remote endpoint is not translated.
TEST_F(Nat66, TheFarSideOpensNothing) {
  auto untouched = [&](const Bytes& p, uint32_t sa) {
    RunResult b = back(p, sa);
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(b.out, p);
  };
  uint16_t port = leaves(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x02), kVip);
  untouched(eth.ipv6_l4(kRemote, kVip, kTcp, tcp_header(443, port + 1, 0x02)), kSa);
  untouched(eth.ipv6_l4("2001:db8:f00::2", kVip, kTcp, tcp_header(443, port, 0x12)), kSa);
  untouched(eth.ipv6_l4(kRemote, kVip, kTcp, tcp_header(5555, 22, 0x02)), kSa);
  untouched(eth.ipv6_l4(kRemote, kVip, kIcmp6, icmp6_echo(128, 7)), kSa);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 0u);
  Bytes into_lan = eth.ipv6_l4(kRemote, kHost, kTcp, tcp_header(5555, 22, 0x02));
  EXPECT_EQ(back(into_lan, kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
  // Without an SA (cleartext the tunnel device did not decrypt) the kernel decides, as before.
  untouched(into_lan, 0);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u);
}

// What the rule does not concern: another destination, a source outside the LAN, the NAT address
// itself, a device of another if_id or in policy mode, a protocol NAT66 does not translate.
TEST_F(Nat66, WhatTheRuleDoesNotConcernLeavesUntouched) {
  auto unchanged = [&](const Bytes& p, ipsnat_reason why) {
    uint64_t before = n(why);
    RunResult r = out(p);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p);
    EXPECT_EQ(n(why), before + 1) << dp.nonzero_reasons();
  };
  unchanged(eth.ipv6_l4(kHost, "2001:db8:99::1", kUdp, udp_header(1, 2)), IPSNAT_R_PASS_NOT_IPV4);
  unchanged(eth.ipv6_l4("fd00:7::10", kRemote, kUdp, udp_header(1, 2)), IPSNAT_R_PASS_NOT_INSIDE);
  unchanged(eth.ipv6_l4(kVip, kRemote, kUdp, udp_header(1, 2)), IPSNAT_R_PASS_ALREADY_OK);
  unchanged(eth.ipv6(kHost, kRemote, 132 /* SCTP */, Bytes(12, 0)), IPSNAT_R_PASS_PROTO);
  Bytes lan = eth.ipv6_l4(kHost, kRemote, kUdp, udp_header(1, 2));
  set_dev(IPSNAT_DEV_ROUTE, 7, 0);
  unchanged(lan, IPSNAT_R_PASS_NOT_IPV4);
  set_dev(IPSNAT_DEV_POLICY, kIfId, 0);
  unchanged(lan, IPSNAT_R_PASS_NOT_IPV4);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 0u);
}

// A fragmented UDP datagram (a large DNS answer, say) both ways: the first fragment is translated
// by its flow, the later one by the address the first left (maps/frag6.h); each equals the fragment
// of the datagram built with the translated address, and the reassembled datagram's UDP checksum
// verifies. A later fragment whose first is unknown does not leave with the LAN source
// (drop-frag-no-first) and comes back untouched (pass-frag-unknown).
TEST_F(Nat66, AFragmentedUdpDatagramIsTranslatedBothWays) {
  auto datagram = [&](const std::string& s, const std::string& d, uint16_t sp, uint16_t dp_) {
    return ipv6_udp_l4(eth, s, d, sp, dp_, 300);
  };
  const uint32_t id = 0x1234abcd;
  Ipv6Fragments lan = ipv6_fragments(eth, kHost, kRemote, kUdp, datagram(kHost, kRemote, 40002, 53), 160, id);
  Ipv6Fragments want = ipv6_fragments(eth, kVip, kRemote, kUdp, datagram(kVip, kRemote, 40002, 53), 160, id);

  EXPECT_EQ(out(lan.later).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_FRAG_NO_FIRST), 1u) << dp.nonzero_reasons();
  RunResult r1 = out(lan.first);
  EXPECT_EQ(r1.out, want.first) << dp.nonzero_reasons();
  RunResult r2 = out(lan.later);
  EXPECT_EQ(r2.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r2.out, want.later) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_FRAG), 1u);
  EXPECT_TRUE(ipv6_l4_checksum_ok(eth.ipv6(kVip, kRemote, kUdp, ipv6_reassembled_l4(r1.out, r2.out)), kL3));

  const uint32_t rid = 0x55aa0001;
  Ipv6Fragments wan = ipv6_fragments(eth, kRemote, kVip, kUdp, datagram(kRemote, kVip, 53, 40002), 160, rid);
  Ipv6Fragments back_want = ipv6_fragments(eth, kRemote, kHost, kUdp, datagram(kRemote, kHost, 53, 40002), 160, rid);
  EXPECT_EQ(back(wan.later).out, wan.later);
  EXPECT_EQ(n(IPSNAT_R_PASS_FRAG_UNKNOWN), 1u) << dp.nonzero_reasons();
  RunResult b1 = back(wan.first);
  EXPECT_EQ(b1.out, back_want.first) << dp.nonzero_reasons();
  RunResult b2 = back(wan.later);
  EXPECT_EQ(b2.out, back_want.later) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_FRAG), 2u);
  EXPECT_TRUE(ipv6_l4_checksum_ok(eth.ipv6(kRemote, kHost, kUdp, ipv6_reassembled_l4(b1.out, b2.out)), kL3));
}

// Other prefixes: a /48 LAN to another address, towards another remote prefix, with --binat set
// (which NAT66 neither needs nor changes).
TEST_F(Nat66, AnotherLanAndAddressAlsoWithBinat) {
  model.apply(spd::PolicyUpsert{policy6(13, "2001:db8:77::1/128", "2001:db8:e00::/40")});
  inside = {ipsnat::parse_prefix("fd12:3456:789a::/48")};
  writer.write(model, inside);
  set_dev(IPSNAT_DEV_ROUTE, kIfId, IPSNAT_DEV_BINAT);
  uint16_t p = leaves("fd12:3456:789a:1::42", "2001:db8:e00::9", kUdp, udp_header(61000, 4789, 17), "2001:db8:77::1");
  returns("2001:db8:e00::9", "2001:db8:77::1", kUdp, udp_header(4789, p, 3), "fd12:3456:789a:1::42", 61000);
}

// Every IPv6 inside prefix is translated to the policy's one address, as IPv4 NAPT does for
// several LANs: a host of a second LAN (a /48 beside the /64) leaves as the address with TCP and
// an echo, its replies come back to it with valid checksums; a source in no inside prefix leaves
// untouched (pass-not-inside), and the far side opens nothing into the second LAN either.
TEST_F(Nat66, EveryIpv6InsidePrefixIsTranslatedAndASourceInNoneIsNot) {
  inside = {ipsnat::parse_prefix("fd00:9:9:9::/64"), ipsnat::parse_prefix("fd42:6:7::/48"),
            ipsnat::parse_prefix("10.99.0.0/16")};
  writer.write(model, inside);
  const std::string second = "fd42:6:7:8::21";
  uint16_t tcp = leaves(second, kRemote, kTcp, tcp_header(40100, 443, 0x02), kVip);
  returns(kRemote, kVip, kTcp, tcp_header(443, tcp, 0x12), second, 40100);
  uint16_t id = leaves(second, kRemote, kIcmp6, icmp6_echo(128, 11), kVip);
  returns(kRemote, kVip, kIcmp6, icmp6_echo(129, id), second, 11);
  uint16_t first = leaves(kHost, kRemote, kUdp, udp_header(40101, 53, 8), kVip);
  returns(kRemote, kVip, kUdp, udp_header(53, first, 4), kHost, 40101);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 3u) << dp.nonzero_reasons();

  Bytes none = eth.ipv6_l4("fd42:6:8::21", kRemote, kUdp, udp_header(40102, 53, 8));
  RunResult r = out(none);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, none);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 3u);

  EXPECT_EQ(back(eth.ipv6_l4(kRemote, second, kTcp, tcp_header(5555, 22, 0x02)), kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();

  // The inside set is asked for flows conntrack does not know (as IPv4's): the second prefix
  // leaves it, its host's known flow keeps its translation, a new one is not translated.
  inside = {ipsnat::parse_prefix("fd00:9:9:9::/64")};
  writer.write(model, inside);
  EXPECT_EQ(leaves(second, kRemote, kTcp, tcp_header(40100, 443, 0x10), kVip), tcp);
  Bytes fresh = eth.ipv6_l4(second, kRemote, kTcp, tcp_header(40103, 443, 0x02));
  EXPECT_EQ(out(fresh).out, fresh);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 2u) << dp.nonzero_reasons();
}

// A [[nat]] rule for one IPv6 LAN (its NAT66 rule carries that prefix as from/len, maps/npt6.h):
// that LAN's hosts leave as the rule's address and their replies come back, while a host of
// another IPv6 inside prefix, which the automatic NAT66 takes, leaves untouched (pass-not-inside)
// and the far side still opens nothing into the rule's LAN.
TEST_F(Nat66, ANatRuleTakesItsInsidePrefixAlone) {
  inside = {ipsnat::parse_prefix("fd00:9:9:9::/64"), ipsnat::parse_prefix("fd42:6:7::/48")};
  spd::NatOverride rule;
  rule.inside = ipsnat::parse_prefix("fd42:6:7::/48");
  rule.nat = ipsnat::parse_prefix(kVip + "/128");
  rule.policy_src = rule.nat;
  rule.kind = SPD_NAT_NAPT;
  rule.origin = "t.toml:3";
  writer.write(model, inside, {}, {rule});
  const std::string ruled = "fd42:6:7:8::21";
  uint16_t tcp = leaves(ruled, kRemote, kTcp, tcp_header(40100, 443, 0x02), kVip);
  returns(kRemote, kVip, kTcp, tcp_header(443, tcp, 0x12), ruled, 40100);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 1u) << dp.nonzero_reasons();

  Bytes other = eth.ipv6_l4(kHost, kRemote, kUdp, udp_header(40102, 53, 8));
  RunResult r = out(other);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, other);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 1u) << dp.nonzero_reasons();

  EXPECT_EQ(back(eth.ipv6_l4(kRemote, ruled, kTcp, tcp_header(5555, 22, 0x02)), kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();

  // Without the rule the SPD's NAT66 takes every IPv6 inside prefix again.
  writer.write(model, inside);
  leaves(kHost, kRemote, kUdp, udp_header(40103, 53, 8), kVip);
}

// A /56 policy with a /64 LAN that fits 1:1 and a /48 LAN larger than it (loader/spd/npt6.h,
// "rest"): with --binat the /64's host leaves NPTv6-mapped into the selector's first /64 (the
// UDP checksum untouched and still valid), the /48's hosts with ports as an address of the next
// /64's pool after its Subnet-Router anycast one (2001:db8:c:801::1-2001:db8:c:801::1:0, the one
// the loader's reference names for each host), and their replies come back; the far side opens
// nothing into the /48. Without --binat the /64's host leaves untouched and the /48's still with
// ports.
TEST_F(Nat66, BesideAOneToOneMapTheOtherLansAreNat66OverTheNextBlocksPool) {
  model.apply(spd::PolicyUpsert{policy6(14, "2001:db8:c:800::/56", "2001:db8:e00::/40")});
  inside = {ipsnat::parse_prefix("fd00:6:6:6::/64"), ipsnat::parse_prefix("fd00:5:5::/48")};
  writer.write(model, inside);
  set_dev(IPSNAT_DEV_ROUTE, kIfId, IPSNAT_DEV_BINAT);
  const std::string mapped = "fd00:6:6:6::10", larger = "fd00:5:5:1::20", remote = "2001:db8:e00::9";
  auto pool = spd::npt6_of(policy6(14, "2001:db8:c:800::/56", "2001:db8:e00::/40"), inside).rest_nat66();
  ASSERT_EQ(pool.str(), "nat66 fd00:5:5::/48 -> 2001:db8:c:801::1-2001:db8:c:801::1:0 (ports)");
  const std::string rest = pool.nat66_address(parse_address(larger)).str();
  const std::string rest2 = pool.nat66_address(parse_address("fd00:5:5:ffff::7")).str();
  ASSERT_TRUE(pool.pool_holds(parse_address(rest)) && pool.pool_holds(parse_address(rest2))) << rest << " " << rest2;
  RunResult r = out(eth.ipv6_l4(mapped, remote, kUdp, udp_header(40200, 53, 8)));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(addr_at(r.out, kSrc).rfind("2001:db8:c:800:", 0), 0u) << addr_at(r.out, kSrc);
  EXPECT_EQ(u16_at(r.out, kL4), 40200) << "NPTv6 keeps the port";
  EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3));
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();
  uint16_t tcp = leaves(larger, remote, kTcp, tcp_header(40201, 443, 0x02), rest);
  returns(remote, rest, kTcp, tcp_header(443, tcp, 0x12), larger, 40201);
  uint16_t id = leaves("fd00:5:5:ffff::7", remote, kIcmp6, icmp6_echo(128, 12), rest2);
  returns(remote, rest2, kIcmp6, icmp6_echo(129, id), "fd00:5:5:ffff::7", 12);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(back(eth.ipv6_l4(remote, larger, kTcp, tcp_header(5555, 22, 0x02)), kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();

  set_dev(IPSNAT_DEV_ROUTE, kIfId, 0);
  Bytes plain = eth.ipv6_l4(mapped, remote, kUdp, udp_header(40202, 53, 8));
  EXPECT_EQ(out(plain).out, plain);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();
  leaves(larger, remote, kUdp, udp_header(40203, 53, 8), rest);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 3u) << dp.nonzero_reasons();
}

// ct6 entries take their times from the conntrack clock IPv4 uses (bpf/lib/ct.h ct_now: the
// boottime read at most once per jiffy, kept in the object's global data), on a new flow and on
// every later packet: each entry time is the value that clock holds right after the packet.
TEST_F(Nat66, EntryTimesComeFromTheConntrackClock) {
  auto clock = [&] { return dp.skel()->bss->ct_clock_boot_ns; };
  leaves(kHost, kRemote, kUdp, udp_header(40002, 53, 8), kVip);
  auto o = ct6(kHost, kRemote, 40002, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(o);
  EXPECT_NE(clock(), 0u);
  EXPECT_EQ(o->created_ns, clock());
  EXPECT_EQ(o->last_ns, clock());
  uint64_t first = clock();
  usleep(30000);  // several jiffies at any HZ: the clock is read again
  leaves(kHost, kRemote, kUdp, udp_header(40002, 53, 8), kVip);
  o = ct6(kHost, kRemote, 40002, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(o);
  EXPECT_GT(clock(), first);
  EXPECT_EQ(o->last_ns, clock());
  EXPECT_EQ(o->created_ns, first);
}

// Established NAT66 flows and SPD changes (docs/datapath.md "Established flows and SPD changes"):
// the rules are rewritten the way the mirror does (ipsnat_npt6, then a new SPD version).
class Nat66Revalidate : public Nat66 {
 protected:
  void publish() {
    writer.write(model, inside);
    publish_spd(dp);
  }
  uint64_t spd_version() {
    uint32_t zero = 0;
    spd_active a{};
    if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &a) != 0) ADD_FAILURE() << "spd_active";
    return a.version;
  }
  void replies_pass_untouched(const Bytes& p) {
    RunResult b = back(p);
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(b.out, p) << "a reply to the flow's old binding was translated";
  }
};

// IKE replaces the policy with one of another source address (another virtual IP): the flow's
// next packet must not leave as the old address, which no policy covers any more; it is bound
// anew to the new one, and the old binding no longer answers.
TEST_F(Nat66Revalidate, APolicyOfAnotherAddressRebindsTheFlow) {
  const std::string vip2 = "2001:db8:b:7::6";
  uint16_t port = leaves(kHost, kRemote, kUdp, udp_header(40000, 53, 8), kVip);
  model.apply(spd::PolicyUpsert{policy6(9, vip2 + "/128", "2001:db8:f00::/40")});
  publish();
  uint16_t port2 = leaves(kHost, kRemote, kUdp, udp_header(40000, 53, 8), vip2);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 2u) << dp.nonzero_reasons();
  auto o = ct6(kHost, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(o);
  EXPECT_EQ(addr_at(Bytes(o->xlat_addr, o->xlat_addr + 16), 0), vip2);
  EXPECT_EQ(o->spd_version, spd_version());
  EXPECT_EQ(o->packets, 1u) << "a new binding";
  EXPECT_FALSE(ct6(kRemote, kVip, 53, port, kUdp, IPSNAT_CT_REPLY)) << "the old binding is removed";
  replies_pass_untouched(eth.ipv6_l4(kRemote, kVip, kUdp, udp_header(53, port, 4)));
  returns(kRemote, vip2, kUdp, udp_header(53, port2, 4), kHost, 40000);
}

// IKE removes the policy: the flow's packets pass untranslated (the kernel finds no policy for
// them, as before attach) and the binding stays; the policy comes back with the same address:
// the same entry carries on, checked under the new version.
TEST_F(Nat66Revalidate, RemovedPolicyStopsTheTranslationReAddedOneResumesIt) {
  Bytes pkt = eth.ipv6_l4(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x10));
  uint16_t port = leaves(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x10), kVip);
  spd::PolicyDelete gone;
  gone.index = 9;
  model.apply(gone);
  publish();
  for (int i = 0; i < 2; ++i) {
    RunResult r = out(pkt);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, pkt) << "left translated without its policy; " << dp.nonzero_reasons();
  }
  EXPECT_TRUE(ct6(kHost, kRemote, 40000, 443, kTcp, IPSNAT_CT_ORIG)) << "the binding is kept for the policy's return";
  model.apply(spd::PolicyUpsert{policy6(9, kVip + "/128", "2001:db8:f00::/40")});
  publish();
  EXPECT_EQ(leaves(kHost, kRemote, kTcp, tcp_header(40000, 443, 0x10), kVip), port);
  auto o = ct6(kHost, kRemote, 40000, 443, kTcp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->packets, 2u) << "the same entry carries on";
  EXPECT_EQ(o->spd_version, spd_version());
  EXPECT_EQ(ct6(kRemote, kVip, 443, port, kTcp, IPSNAT_CT_REPLY)->spd_version, spd_version());
}

// A change that leaves the flow's rule as it was (another destination's policy) keeps the flow on
// its binding; both entries take the new version.
TEST_F(Nat66Revalidate, UnrelatedSpdChangeKeepsTheFlow) {
  uint16_t port = leaves(kHost, kRemote, kUdp, udp_header(40000, 53, 8), kVip);
  uint64_t before = spd_version();
  model.apply(spd::PolicyUpsert{policy6(14, "2001:db8:77::1/128", "2001:db8:e00::/40")});
  publish();
  ASSERT_NE(spd_version(), before);
  EXPECT_EQ(leaves(kHost, kRemote, kUdp, udp_header(40000, 53, 8), kVip), port);
  auto o = ct6(kHost, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->packets, 2u);
  EXPECT_EQ(o->spd_version, spd_version());
  returns(kRemote, kVip, kUdp, udp_header(53, port, 4), kHost, 40000);
}

// NAT66 over a pool (maps/npt6.h `span`; docs/datapath.md "NAT66 pools"): the LAN fd00:9:9:9::/64
// is larger than the policy's source selector 2001:db8:b:7::100/120, so its hosts leave with ports
// over the selector's 255 addresses after its Subnet-Router anycast one (::101..::1ff). The
// address each host gets is the one the loader's reference names (spd/npt6.h nat66_address, the
// same pick as IPv4's pools); checksums are recomputed whole (tests/support/packet.*).
class Nat66Pool : public Nat66Revalidate {
 protected:
  Nat66Pool() {
    spd::PolicyDelete gone;
    gone.index = 9;
    model.apply(gone);
    model.apply(spd::PolicyUpsert{policy6(9, "2001:db8:b:7::100/120", "2001:db8:f00::/40")});
    publish();
    mapping = spd::npt6_of(policy6(9, "2001:db8:b:7::100/120", "2001:db8:f00::/40"), inside);
  }
  // The pool address the reference gives a LAN host.
  std::string address_of(const std::string& host) { return mapping.nat66_address(parse_address(host)).str(); }
  static bool in_pool(const std::string& a) {
    Address x = parse_address(a);
    return parse_prefix("2001:db8:b:7::100/120").contains(x) && x != parse_address("2001:db8:b:7::100");
  }

  spd::Npt6Mapping mapping;
};

// Each host keeps one address of the pool for all its flows (TCP, UDP, echo; several remote
// endpoints), never the anycast one; hosts spread over the pool; every reply reaches its host.
TEST_F(Nat66Pool, EachHostKeepsOneAddressOfThePoolAndRepliesComeBack) {
  ASSERT_TRUE(mapping.ok && mapping.nat66) << mapping.why;
  ASSERT_EQ(mapping.pool, 255u);
  std::set<std::string> used;
  for (int h = 1; h <= 40; ++h) {
    const std::string host = "fd00:9:9:9::" + std::to_string(100 + h);
    const std::string nat = address_of(host);
    EXPECT_TRUE(in_pool(nat)) << host << " -> " << nat;
    uint16_t udp = leaves(host, kRemote, kUdp, udp_header(41000, 53, 8), nat);
    returns(kRemote, nat, kUdp, udp_header(53, udp, 4), host, 41000);
    uint16_t tcp = leaves(host, "2001:db8:f12::77", kTcp, tcp_header(41001, 443, 0x02), nat);
    returns("2001:db8:f12::77", nat, kTcp, tcp_header(443, tcp, 0x12), host, 41001);
    uint16_t id = leaves(host, kRemote, kIcmp6, icmp6_echo(128, uint16_t(h)), nat);
    returns(kRemote, nat, kIcmp6, icmp6_echo(129, id), host, uint16_t(h));
    used.insert(nat);
  }
  EXPECT_GE(used.size(), 30u) << "40 hosts over 255 addresses, not all on one";
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 120u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 120u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_NAT_POOL_ADDR_FULL), 0u);
}

// Two ports per address: one host's flows to one remote endpoint fill its own address, then the
// next ones of the pool (each passed over counted as nat-pool-address-full, as IPv4's), up to
// NAT_POOL_TRIES (4) addresses; the ninth flow finds none and is dropped (drop-no-port). Another
// remote endpoint has the host's own address again. Every binding answers its reply.
TEST_F(Nat66Pool, AFullAddressMovesTheSearchOnAndIsCounted) {
  dp.set_port_range(40000, 40001);
  const std::string host = "fd00:9:9:9::9";
  const Address own = parse_address(address_of(host));
  std::vector<std::string> addr;
  for (uint16_t i = 0; i < 8; ++i) {
    Bytes pkt = eth.ipv6_l4(host, kRemote, kUdp, udp_header(5000 + i, 53, 8));
    RunResult r = out(pkt);
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << "flow " << i << ": " << dp.nonzero_reasons();
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3));
    std::string nat = addr_at(r.out, kSrc);
    EXPECT_TRUE(in_pool(nat)) << nat;
    addr.push_back(nat);
    returns(kRemote, nat, kUdp, udp_header(53, u16_at(r.out, kL4), 4), host, uint16_t(5000 + i));
  }
  EXPECT_EQ(addr[0], own.str());
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(addr[2 * k], addr[2 * k + 1]) << k;
    // The k-th address tried: the host's own one and the next ones, wrapping round the pool.
    uint32_t place = (npt6_word32(own.bytes.data(), 12) - 0x101 + k) % 255;
    Address want = parse_address("2001:db8:b:7::101");
    want.bytes[14] = uint8_t((0x101 + place) >> 8);
    want.bytes[15] = uint8_t(0x101 + place);
    EXPECT_EQ(addr[2 * k], want.str()) << k;
  }
  EXPECT_EQ(std::set<std::string>(addr.begin(), addr.end()).size(), 4u);
  EXPECT_EQ(n(IPSNAT_R_NAT_POOL_ADDR_FULL), 2u * 1 + 2u * 2 + 2u * 3);
  EXPECT_EQ(n(IPSNAT_R_DROP_NO_PORT), 0u);
  EXPECT_EQ(out(eth.ipv6_l4(host, kRemote, kUdp, udp_header(5100, 53, 8))).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_NO_PORT), 1u);
  EXPECT_EQ(n(IPSNAT_R_NAT_POOL_ADDR_FULL), 12u + 4u);
  leaves(host, kRemote, kUdp, udp_header(5100, 54, 8), own.str());
}

// A source already in the pool (the gateway's own traffic from one of its addresses) passes
// untouched (pass-already-ok), as IPv4's pools.
TEST_F(Nat66Pool, SourcesAlreadyInThePoolPassUntouched) {
  for (const char* a : {"2001:db8:b:7::101", "2001:db8:b:7::180", "2001:db8:b:7::1ff"}) {
    Bytes pkt = eth.ipv6_l4(a, kRemote, kUdp, udp_header(5000, 53, 8));
    EXPECT_EQ(out(pkt).out, pkt) << a;
  }
  EXPECT_EQ(n(IPSNAT_R_PASS_ALREADY_OK), 3u) << dp.nonzero_reasons();
}

// An SPD change that leaves the rule as it was keeps every flow on its pool address, not only
// the pool's first one: each entry is checked against the pool (nat66_in_pool).
TEST_F(Nat66Pool, AnUnrelatedSpdChangeKeepsEachFlowOnItsPoolAddress) {
  std::vector<std::pair<std::string, uint16_t>> flows;
  for (int h = 1; h <= 8; ++h) {
    const std::string host = "fd00:9:9:9::" + std::to_string(h);
    flows.emplace_back(host, leaves(host, kRemote, kUdp, udp_header(40000, 53, 8), address_of(host)));
  }
  model.apply(spd::PolicyUpsert{policy6(14, "2001:db8:77::1/128", "2001:db8:e00::/40")});
  publish();
  for (const auto& [host, port] : flows) {
    EXPECT_EQ(leaves(host, kRemote, kUdp, udp_header(40000, 53, 8), address_of(host)), port) << host;
    auto o = ct6(host, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->packets, 2u) << host << ": the same entry carries on";
  }
}

}  // namespace
}  // namespace ipsnat::test
