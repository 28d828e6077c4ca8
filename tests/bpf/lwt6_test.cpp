// IPv6 in policy mode on golden packets: lwt_snat_xmit translates a LAN host's IPv6 packet on the
// LWT route of a policy-mode uplink (NAT66 with ports for a policy whose source is one address,
// NPTv6 under --binat for a prefix) and asks for the reroute; tc_rev_ingress of the uplink takes
// back only what an SA decrypted. The rules come from the SPD mirror's own writer
// (loader/spd/npt6.*) for policies bound to no interface (if_id 0); every checksum is recomputed
// whole by tests/support (ipv6_l4_checksum_ok).
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>

#include "maps/stats.h"
#include "mirror/npt6_map.h"
#include "spd/model.h"
#include "support/datapath.h"
#include "support/ipv6_packet.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp6 = 58;
// The reqids of the two policies' SAs: a "decrypted" packet carries its SA's (skb->mark in the bpf
// tier).
constexpr uint32_t kSa = 5, kSaB = 6;

uint16_t u16_at(const Bytes& pkt, size_t off) { return uint16_t(pkt[off] << 8 | pkt[off + 1]); }

// A policy-mode IPv6 out-policy (if_id 0) whose SAs have this reqid.
spd::Policy policy6(uint32_t index, const std::string& src, const std::string& dst, uint32_t reqid) {
  spd::Policy p = ipv6_out_policy(index, src, dst, 0);
  p.tmpls.front().reqid = reqid;
  return p;
}

// The uplink in policy mode; strongSwan's virtual IPv6 2001:db8:c:5::9 is the source of the
// policy towards 2001:db8:a00::/40, the prefix 2001:db8:d:1::/64 that of the policy towards
// 2001:db8:b00::/40 (the SAs of reqid kSa and kSaB); the LAN is fd00:42:7:1::/64.
class Lwt6 : public ::testing::Test {
 protected:
  Lwt6() : dp(true) {
    model.apply(spd::PolicyUpsert{policy6(21, kVip + "/128", "2001:db8:a00::/40", kSa)});
    model.apply(spd::PolicyUpsert{policy6(22, "2001:db8:d:1::/64", "2001:db8:b00::/40", kSaB)});
    writer.write(model, inside);
    set_dev(0);
  }
  void set_dev(uint32_t flags) { dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY, 0, flags); }
  // The LWT program sees the packet from its IPv6 header on; the run gives back 14 zero bytes in
  // place of the Ethernet header, so the IPv6 header stays at kIpv6L3 in both.
  RunResult lwt(const Bytes& p) { return dp.run(dp.skel()->progs.lwt_snat_xmit, p); }
  RunResult back(const Bytes& p, uint32_t sa) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa); }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }

  // Leaves as `nat`, rerouted, with a valid checksum: the NAT port (echo id).
  uint16_t leaves(const std::string& host, const std::string& remote, uint8_t proto, const Bytes& l4,
                  const std::string& nat) {
    Bytes pkt = eth.ipv6_l4(host, remote, proto, l4);
    RunResult r = lwt(pkt);
    EXPECT_EQ(r.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
    EXPECT_EQ(ipv6_at(r.out, kIpv6Src), nat) << host;
    EXPECT_EQ(ipv6_at(r.out, kIpv6Dst), remote);
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3)) << "proto " << int(proto);
    return proto == kIcmp6 ? u16_at(r.out, kIpv6L4 + 4) : u16_at(r.out, kIpv6L4);
  }
  // The decrypted reply reaches `host`, checksum valid.
  void returns(const Bytes& reply, const std::string& host, uint32_t sa = kSa) {
    RunResult b = back(reply, sa);
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(ipv6_at(b.out, kIpv6Dst), host);
    EXPECT_TRUE(ipv6_l4_checksum_ok(b.out, kIpv6L3));
  }
  void passes_untouched(const Bytes& p, uint32_t sa) {
    RunResult b = back(p, sa);
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(b.out, p);
  }

  static inline const std::string kVip = "2001:db8:c:5::9", kHost = "fd00:42:7:1::10",
                                  kRemote = "2001:db8:a00::1";
  Datapath dp;
  spd::SpdModel model;
  std::vector<Prefix> inside{ipsnat::parse_prefix("fd00:42:7:1::/64"), ipsnat::parse_prefix("172.16.9.0/24")};
  mirror::Npt6Writer writer{bpf_map__fd(dp.skel()->maps.ipsnat_npt6)};
  PacketBuilder eth;
};

TEST_F(Lwt6, Nat66TranslatesTcpUdpAndEchoRerouteAndOnlyDecryptedRepliesComeBack) {
  uint16_t tcp = leaves(kHost, kRemote, kTcp, tcp_header(41000, 443, 0x02), kVip);
  uint16_t udp = leaves(kHost, "2001:db8:a00:7::3", kUdp, udp_header(41001, 53, 12), kVip);
  uint16_t id = leaves(kHost, kRemote, kIcmp6, icmp6_echo(128, 77), kVip);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 3u) << dp.nonzero_reasons();

  // Cleartext from the WAN that looks like a reply is never let into the LAN.
  Bytes syn_ack = eth.ipv6_l4(kRemote, kVip, kTcp, tcp_header(443, tcp, 0x12));
  passes_untouched(syn_ack, 0);
  EXPECT_EQ(n(IPSNAT_R_PASS_NO_SA), 1u) << dp.nonzero_reasons();

  returns(syn_ack, kHost);
  returns(eth.ipv6_l4("2001:db8:a00:7::3", kVip, kUdp, udp_header(53, udp, 5)), kHost);
  returns(eth.ipv6_l4(kRemote, kVip, kIcmp6, icmp6_echo(129, id)), kHost);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 3u) << dp.nonzero_reasons();
}

// A LAN packet that a netfilter masquerade (`table inet ... oifname eth0 masquerade`) or SNAT rule
// rewrote in POSTROUTING reaches the LWT hook with the gateway's uplink address as source: NAT66
// takes it (the inside set's NPT6_KIND_LOCAL entry, forwarded from a device ipsnat is not on), and
// the decrypted reply goes back to that address and port, for netfilter to de-masquerade; a
// decrypted packet to that address that is no reply is dropped. The gateway's own packets from
// that address, a packet forwarded from the attached uplink, and a link-local source are not LAN
// packets.
TEST_F(Lwt6, Nat66TakesALanPacketNetfilterMasqueradedBeforeTheHook) {
  const std::string uplink = "2001:db8:ff77::1", link_local = "fe80::1";
  writer.write(model, inside, {ipsnat::parse_address(uplink), ipsnat::parse_address(link_local),
                               ipsnat::parse_address("fd00:42:7:1::1")});
  constexpr uint32_t kLanDev = 9;  // no ipsnat device
  Bytes masqueraded = eth.ipv6_l4(uplink, kRemote, kUdp, udp_header(41077, 53, 12));
  RunResult r = dp.run_forwarded(dp.skel()->progs.lwt_snat_xmit, masqueraded, kLanDev);
  EXPECT_EQ(r.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_EQ(ipv6_at(r.out, kIpv6Src), kVip);
  EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3));
  uint16_t port = u16_at(r.out, kIpv6L4);
  // netfilter's second POSTROUTING pass after the reroute gives the packet its masqueraded source
  // back, and the LWT hook sees it again: the same binding.
  r = dp.run_forwarded(dp.skel()->progs.lwt_snat_xmit, masqueraded, kLanDev);
  EXPECT_EQ(ipv6_at(r.out, kIpv6Src), kVip);
  EXPECT_EQ(u16_at(r.out, kIpv6L4), port);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 2u) << dp.nonzero_reasons();

  RunResult b = back(eth.ipv6_l4(kRemote, kVip, kUdp, udp_header(53, port, 5)), kSa);
  EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
  EXPECT_EQ(ipv6_at(b.out, kIpv6Dst), uplink);
  EXPECT_EQ(u16_at(b.out, kIpv6L4 + 2), 41077);
  EXPECT_TRUE(ipv6_l4_checksum_ok(b.out, kIpv6L3));

  // The far side opens nothing at that address either (attach's fwd companion for it would carry a
  // netfilter DNAT port-forward's traffic into the LAN): decrypted and no reply, it is dropped;
  // in cleartext the kernel decides as before attach.
  Bytes opening = eth.ipv6_l4(kRemote, uplink, kTcp, tcp_header(5555, 8080, 0x02));
  EXPECT_EQ(back(opening, kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
  passes_untouched(opening, 0);

  Bytes own = eth.ipv6_l4(uplink, kRemote, kUdp, udp_header(41078, 53, 12));
  EXPECT_EQ(lwt(own).retval, unsigned(BPF_OK));
  EXPECT_EQ(dp.run_forwarded(dp.skel()->progs.lwt_snat_xmit, own, Datapath::test_ifindex()).retval, unsigned(BPF_OK));
  Bytes from_link_local = eth.ipv6_l4(link_local, kRemote, kUdp, udp_header(41079, 53, 12));
  EXPECT_EQ(dp.run_forwarded(dp.skel()->progs.lwt_snat_xmit, from_link_local, kLanDev).retval, unsigned(BPF_OK));
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66), 2u);
}

// Nothing from the far side opens a flow into the LAN: decrypted, it is dropped (the companion
// fwd policy would admit it); in cleartext the kernel decides as before attach.
TEST_F(Lwt6, TheFarSideOpensNothing) {
  Bytes into_lan = eth.ipv6_l4(kRemote, kHost, kTcp, tcp_header(5555, 22, 0x02));
  EXPECT_EQ(back(into_lan, kSa).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
  passes_untouched(into_lan, 0);
  passes_untouched(eth.ipv6_l4(kRemote, kVip, kTcp, tcp_header(443, 41000, 0x02)), kSa);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 0u);
}

// NPTv6 needs --binat (IPSNAT_DEV_BINAT on the route's device): without it the packet stays as it
// is (the leak guard drops it on the uplink); with it the prefix changes and the checksum stays
// valid untouched. Its decrypted answers come back; cleartext ones do not.
TEST_F(Lwt6, Nptv6OnlyWithBinatAndChecksumNeutral) {
  Bytes pkt = eth.ipv6_l4(kHost, "2001:db8:b00::7", kUdp, udp_header(40000, 4500, 20));
  RunResult r = lwt(pkt);
  EXPECT_EQ(r.retval, unsigned(BPF_OK));
  EXPECT_TRUE(std::equal(r.out.begin() + kIpv6L3, r.out.end(), pkt.begin() + kIpv6L3));
  set_dev(IPSNAT_DEV_BINAT);
  r = lwt(pkt);
  EXPECT_EQ(r.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  std::string mapped = ipv6_at(r.out, kIpv6Src);
  EXPECT_EQ(mapped.rfind("2001:db8:d:1:", 0), 0u) << mapped;
  EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3));
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();

  Bytes answer = eth.ipv6_l4("2001:db8:b00::7", mapped, kUdp, udp_header(4500, 40000, 3));
  passes_untouched(answer, 0);
  returns(answer, kHost, kSaB);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 1u) << dp.nonzero_reasons();
}

// A reply is the flow's only through the SA of the policy that protects the flow: one decrypted by
// another tunnel's SA (kSaB) does not reach the LAN (pass-wrong-sa), as for IPv4. IKE re-keys the
// policy under a new reqid: the reply through the new SA comes back before any packet went out, the
// old SA's no longer.
TEST_F(Lwt6, Nat66ReplyOnlyThroughTheSaOfTheFlowsPolicy) {
  uint16_t port = leaves(kHost, kRemote, kUdp, udp_header(41000, 53, 12), kVip);
  Bytes reply = eth.ipv6_l4(kRemote, kVip, kUdp, udp_header(53, port, 5));
  passes_untouched(reply, kSaB);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 1u) << dp.nonzero_reasons();
  returns(reply, kHost, kSa);

  constexpr uint32_t kRekeyed = 77;
  model.apply(spd::PolicyUpsert{policy6(21, kVip + "/128", "2001:db8:a00::/40", kRekeyed)});
  writer.write(model, inside);
  publish_spd(dp);
  returns(reply, kHost, kRekeyed);
  passes_untouched(reply, kSa);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 2u) << dp.nonzero_reasons();
  // The flow's next packet out takes the policy's reqid too; the old SA stays refused.
  EXPECT_EQ(leaves(kHost, kRemote, kUdp, udp_header(41000, 53, 12), kVip), port);
  passes_untouched(reply, kSa);
  returns(reply, kHost, kRekeyed);
}

// The same with the reply through the old SA first, before any packet of the flow went out since the
// re-key: the SPD version changed, so the REPLY entry's reqid is checked against the rule's and the
// old SA is refused (as IPv4's, tests/bpf/ct_reqid_test.cpp).
TEST_F(Lwt6, Nat66ReplyThroughTheOldSaAfterARekeyIsRefused) {
  uint16_t port = leaves(kHost, kRemote, kUdp, udp_header(41001, 53, 12), kVip);
  Bytes reply = eth.ipv6_l4(kRemote, kVip, kUdp, udp_header(53, port, 5));
  returns(reply, kHost, kSa);
  constexpr uint32_t kRekeyed = 78;
  model.apply(spd::PolicyUpsert{policy6(21, kVip + "/128", "2001:db8:a00::/40", kRekeyed)});
  writer.write(model, inside);
  publish_spd(dp);
  passes_untouched(reply, kSa);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 1u) << dp.nonzero_reasons();
  returns(reply, kHost, kRekeyed);
  passes_untouched(reply, kSa);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66_REVERSE), 2u) << dp.nonzero_reasons();
}

// A fragmented UDP datagram in policy mode: both fragments leave as the policy's address and are
// rerouted; coming back, each fragment reaches the LAN host only through the SA of the flow's
// policy (the later one as its first: untouched without an SA or through another policy's). The
// reassembled datagrams' UDP checksums verify.
TEST_F(Lwt6, FragmentsLeaveAsTheAddressAndComeBackOnlyThroughTheFlowsSa) {
  auto l3 = [](const Bytes& p) { return Bytes(p.begin() + long(kIpv6L3), p.end()); };
  const uint32_t id = 0xfeed0042;
  Ipv6Fragments lan = ipv6_fragments(eth, kHost, kRemote, kUdp, ipv6_udp_l4(eth, kHost, kRemote, 41003, 53, 1300),
                                     1240, id);
  Ipv6Fragments want = ipv6_fragments(eth, kVip, kRemote, kUdp, ipv6_udp_l4(eth, kVip, kRemote, 41003, 53, 1300),
                                      1240, id);
  RunResult r1 = lwt(lan.first), r2 = lwt(lan.later);
  EXPECT_EQ(r1.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_EQ(r2.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_EQ(l3(r1.out), l3(want.first));
  EXPECT_EQ(l3(r2.out), l3(want.later));
  EXPECT_TRUE(ipv6_l4_checksum_ok(eth.ipv6(kVip, kRemote, kUdp, ipv6_reassembled_l4(r1.out, r2.out)), kIpv6L3));

  const uint32_t rid = 0x0badcafe;
  Ipv6Fragments wan = ipv6_fragments(eth, kRemote, kVip, kUdp, ipv6_udp_l4(eth, kRemote, kVip, 53, 41003, 600), 296, rid);
  Ipv6Fragments back_want =
      ipv6_fragments(eth, kRemote, kHost, kUdp, ipv6_udp_l4(eth, kRemote, kHost, 53, 41003, 600), 296, rid);
  RunResult b1 = back(wan.first, kSa);
  EXPECT_EQ(b1.out, back_want.first) << dp.nonzero_reasons();
  passes_untouched(wan.later, 0);
  EXPECT_EQ(n(IPSNAT_R_PASS_NO_SA), 1u) << dp.nonzero_reasons();
  passes_untouched(wan.later, kSaB);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 1u) << dp.nonzero_reasons();
  RunResult b2 = back(wan.later, kSa);
  EXPECT_EQ(b2.out, back_want.later) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_FRAG), 2u) << dp.nonzero_reasons();
  EXPECT_TRUE(ipv6_l4_checksum_ok(eth.ipv6(kRemote, kHost, kUdp, ipv6_reassembled_l4(b1.out, b2.out)), kIpv6L3));
}

// A datagram whose fragmentable part starts with destination options: every fragment header names
// them (RFC 8200 4.5), the first fragment's walk goes on to UDP, a later fragment's stops at its
// fragment header (its payload is data, here bytes that read as a TCP header's start would).
// Both fragments leave as the policy's address, byte for byte the fragments sent from it.
TEST_F(Lwt6, ALaterFragmentsPayloadIsNotReadAsHeaders) {
  constexpr uint8_t kDstOpts = 60;
  constexpr size_t at = 64;  // the later fragment starts 64 bytes into the fragmentable part
  auto fragmentable = [&](const std::string& src) {
    Bytes udp = udp_header(41005, 53, 200);
    udp[at - 8] = kTcp;  // the later fragment's first payload bytes: "next header TCP, length 0"
    Bytes whole = eth.ipv6_l4(src, kRemote, kUdp, udp);
    Bytes part(whole.begin() + long(kIpv6L4) - 8, whole.end());
    const uint8_t dstopts[8] = {kUdp, 0, 1, 4, 0, 0, 0, 0};  // next header UDP, PadN of 4
    std::copy(dstopts, dstopts + 8, part.begin());
    return part;
  };
  auto l3 = [](const Bytes& p) { return Bytes(p.begin() + long(kIpv6L3), p.end()); };
  Ipv6Fragments lan = ipv6_fragments(eth, kHost, kRemote, kDstOpts, fragmentable(kHost), at, 0xfeed0077);
  Ipv6Fragments want = ipv6_fragments(eth, kVip, kRemote, kDstOpts, fragmentable(kVip), at, 0xfeed0077);
  RunResult r1 = lwt(lan.first), r2 = lwt(lan.later);
  EXPECT_EQ(r1.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_EQ(r2.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_EQ(l3(r1.out), l3(want.first));
  EXPECT_EQ(l3(r2.out), l3(want.later));
  EXPECT_EQ(n(IPSNAT_R_XLATE_FRAG), 1u) << dp.nonzero_reasons();
}

// NPTv6 is stateless: the way back is the policy's of the answer's sender, and only through that
// policy's SA.
TEST_F(Lwt6, Nptv6AnswerOnlyThroughTheSaOfThePolicy) {
  set_dev(IPSNAT_DEV_BINAT);
  RunResult r = lwt(eth.ipv6_l4(kHost, "2001:db8:b00::7", kUdp, udp_header(40000, 4500, 20)));
  ASSERT_EQ(r.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  Bytes answer = eth.ipv6_l4("2001:db8:b00::7", ipv6_at(r.out, kIpv6Src), kUdp, udp_header(4500, 40000, 3));
  passes_untouched(answer, kSa);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 0u);
  returns(answer, kHost, kSaB);
}

// What no policy-mode rule concerns passes with BPF_OK, unchanged: another destination, a source
// outside the LAN, the NAT address itself, a rule of an xfrm interface (if_id 7).
TEST_F(Lwt6, WhatNoRuleConcernsIsNotRerouted) {
  model.apply(spd::PolicyUpsert{ipv6_out_policy(23, "2001:db8:c:6::1/128", "2001:db8:e00::/40", 7)});
  writer.write(model, inside);
  for (const Bytes& p : {eth.ipv6_l4(kHost, "2001:db8:99::1", kUdp, udp_header(1, 2)),
                         eth.ipv6_l4("fd00:7::10", kRemote, kUdp, udp_header(1, 2)),
                         eth.ipv6_l4(kVip, kRemote, kUdp, udp_header(1, 2)),
                         eth.ipv6_l4(kHost, "2001:db8:e00::1", kUdp, udp_header(1, 2))}) {
    RunResult r = lwt(p);
    EXPECT_EQ(r.retval, unsigned(BPF_OK)) << dp.nonzero_reasons();
    EXPECT_TRUE(std::equal(r.out.begin() + kIpv6L3, r.out.end(), p.begin() + kIpv6L3));
  }
  EXPECT_EQ(n(IPSNAT_R_XLATE_NAT66) + n(IPSNAT_R_XLATE_NPT6), 0u);
}

}  // namespace
}  // namespace ipsnat::test
