// ICMPv6 errors about translated flows (bpf/lib/icmp6.h) on golden packets, NAT66 and NPTv6 on
// one route-mode device. The oracle: the error the LAN host (or the far side) would have received
// had there been no translation, built whole by the test's own packet builder, whose ICMPv6 and
// quoted TCP/UDP checksums come from the independent routine of tests/support/packet.*; the
// translated error must equal it byte for byte.
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

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp6 = 58, kDstOpts = 60, kFragment = 44;
constexpr uint8_t kUnreachable = 1, kTooBig = 2, kTimeExceeded = 3;
constexpr uint32_t kIfId = 42;
constexpr uint32_t kSa = 7;  // the reqid of a packet "decrypted" by an SA (skb->mark here)

// The LAN fd00:9:9:9::/64 leaves as the one address 2001:db8:b:7::5 (NAT66, ports) towards
// 2001:db8:f00::/40 and as the prefix 2001:db8:c:8::/64 (NPTv6, --binat) towards 2001:db8:e00::/40,
// both through the xfrm interface of if_id 42.
const std::string kHost = "fd00:9:9:9::10", kVip = "2001:db8:b:7::5";
const std::string kNatRemote = "2001:db8:f00::1", kNatRouter = "2001:db8:f00::fe";
const std::string kNptRemote = "2001:db8:e00::1", kNptRouter = "2001:db8:e00::fe";

// An ICMPv6 error (type, code; bytes 4..7 `extra`, the MTU of a Packet Too Big) quoting `quoted`,
// an IPv6 packet without link header.
Bytes icmp6_error(uint8_t type, uint8_t code, uint32_t extra, const Bytes& quoted) {
  Bytes l4(8 + quoted.size(), 0);
  l4[0] = type;
  l4[1] = code;
  for (int i = 0; i < 4; ++i) l4[4 + i] = uint8_t(extra >> (24 - 8 * i));
  std::copy(quoted.begin(), quoted.end(), l4.begin() + 8);
  return l4;
}

Bytes l3_of(const Bytes& pkt) { return Bytes(pkt.begin() + kIpv6L3, pkt.end()); }

class Icmp6Error : public ::testing::Test {
 protected:
  Icmp6Error() : Icmp6Error(IPSNAT_DEV_ROUTE, kIfId) {}
  // mode IPSNAT_DEV_POLICY: the uplink of policy-based SAs, whose policies have if_id 0 and whose
  // LAN packets leave through LWT xmit.
  Icmp6Error(ipsnat_dev_mode mode, uint32_t if_id) : dp(true), policy_mode(mode == IPSNAT_DEV_POLICY) {
    model.apply(spd::PolicyUpsert{policy6(9, kVip + "/128", "2001:db8:f00::/40", if_id)});
    model.apply(spd::PolicyUpsert{policy6(17, "2001:db8:c:8::/64", "2001:db8:e00::/40", if_id)});
    writer.write(model, inside);
    dp.set_dev_mode(Datapath::test_ifindex(), mode, if_id, IPSNAT_DEV_BINAT);
  }
  // The policy's SAs have the reqid kSa.
  static spd::Policy policy6(uint32_t index, const std::string& src, const std::string& dst, uint32_t if_id) {
    spd::Policy p = ipv6_out_policy(index, src, dst, if_id);
    p.tmpls.front().reqid = kSa;
    return p;
  }
  RunResult out(const Bytes& p) {
    return dp.run(policy_mode ? dp.skel()->progs.lwt_snat_xmit : dp.skel()->progs.tc_snat_egress, p);
  }
  RunResult back(const Bytes& p, uint32_t sa = kSa) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa); }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }

  // The LAN host's packet as it leaves the device (translated).
  Bytes leaves(const Bytes& pkt) {
    RunResult r = out(pkt);
    EXPECT_EQ(r.retval, policy_mode ? unsigned(BPF_LWT_REROUTE) : unsigned(TC_ACT_UNSPEC)) << dp.nonzero_reasons();
    EXPECT_NE(r.out, pkt) << "not translated";
    return r.out;
  }
  // A packet of the far side as it reaches the LAN (translated back).
  Bytes arrives(const Bytes& pkt) {
    RunResult r = back(pkt);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_NE(r.out, pkt) << "not translated";
    return r.out;
  }
  // The far side's error about `sent` (as the LAN host sent it), as it arrives for the translated
  // address.
  Bytes error_about(const std::string& router, uint8_t type, uint8_t code, uint32_t extra, const Bytes& sent) {
    Bytes on_wire = leaves(sent);
    std::string outside = ipv6_at(on_wire, kIpv6Src);
    Bytes err = eth.ipv6_l4(router, outside, kIcmp6, icmp6_error(type, code, extra, l3_of(on_wire)));
    EXPECT_TRUE(ipv6_l4_checksum_ok(err, kIpv6L3));
    return err;
  }
  // The far side's error about `sent` reaches the host as the error it would have got without
  // translation: outer destination, quoted source and port translated back, every checksum right.
  void error_comes_back(const std::string& router, uint8_t type, uint8_t code, uint32_t extra, const Bytes& sent) {
    Bytes err = error_about(router, type, code, extra, sent);
    uint64_t before = n(IPSNAT_R_XLATE_ICMP_ERROR);
    RunResult r = back(err);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    Bytes want = eth.ipv6_l4(router, kHost, kIcmp6, icmp6_error(type, code, extra, l3_of(sent)));
    EXPECT_EQ(ipv6_at(r.out, kIpv6Dst), kHost);
    EXPECT_EQ(ipv6_at(r.out, kIpv6L4 + 8 + 8), kHost) << "the quoted source";
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3)) << "the ICMPv6 checksum";
    EXPECT_EQ(r.out, want) << "byte for byte the untranslated error";
    EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), before + 1) << dp.nonzero_reasons();
  }
  // The LAN host's error about `received` (a reply as it reached the host) leaves as the error
  // the far side would have got from the translated address: in policy mode rerouted, so that
  // the kernel's xfrm lookup sees the policy's source.
  void error_leaves(const Bytes& reply, uint8_t type, uint8_t code, uint32_t extra = 0) {
    Bytes received = arrives(reply);
    ASSERT_EQ(ipv6_at(received, kIpv6Dst), kHost);
    std::string remote = ipv6_at(reply, kIpv6Src), outside = ipv6_at(reply, kIpv6Dst);
    Bytes err = eth.ipv6_l4(kHost, remote, kIcmp6, icmp6_error(type, code, extra, l3_of(received)));
    uint64_t before = n(IPSNAT_R_XLATE_ICMP_ERROR);
    RunResult r = out(err);
    EXPECT_EQ(r.retval, policy_mode ? unsigned(BPF_LWT_REROUTE) : unsigned(TC_ACT_UNSPEC)) << dp.nonzero_reasons();
    Bytes want = eth.ipv6_l4(outside, remote, kIcmp6, icmp6_error(type, code, extra, l3_of(reply)));
    EXPECT_EQ(ipv6_at(r.out, kIpv6Src), outside);
    EXPECT_EQ(ipv6_at(r.out, kIpv6L4 + 8 + 24), outside) << "the quoted destination";
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3)) << "the ICMPv6 checksum";
    // From the IPv6 header on: LWT's test run gives zeros back in place of the Ethernet header.
    EXPECT_EQ(l3_of(r.out), l3_of(want)) << "byte for byte the error from the translated address";
    EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), before + 1) << dp.nonzero_reasons();
  }

  // The LAN host's port unreachable, Time Exceeded and Packet Too Big about NAT66 replies (UDP,
  // echo, TCP): the NAT port differs from the host's, so the quoted port changes too.
  void nat66_errors_about_replies_leave_translated() {
    Bytes udp = leaves(eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4)));
    uint16_t port = uint16_t(udp[kIpv6L4] << 8 | udp[kIpv6L4 + 1]);
    error_leaves(eth.ipv6_l4(kNatRemote, kVip, kUdp, udp_header(53, port, 9)), kUnreachable, 4);
    Bytes ping = leaves(eth.ipv6_l4(kHost, kNatRemote, kIcmp6, icmp6_echo(128, 31)));
    error_leaves(eth.ipv6_l4(kNatRemote, kVip, kIcmp6, icmp6_echo(129, 31)), kTimeExceeded, 0);
    Bytes tcp = leaves(eth.ipv6_l4(kHost, kNatRemote, kTcp, tcp_header(80, 443, 0x02)));
    port = uint16_t(tcp[kIpv6L4] << 8 | tcp[kIpv6L4 + 1]);
    error_leaves(eth.ipv6_l4(kNatRemote, kVip, kTcp, tcp_header(443, port, 0x12)), kTooBig, 0, 1280);
  }
  // The same about NPTv6 replies: checksum-neutral, the addresses alone change.
  void nptv6_errors_about_replies_leave_translated() {
    Bytes tcp = leaves(eth.ipv6_l4(kHost, kNptRemote, kTcp, tcp_header(40000, 443, 0x02)));
    std::string outside = ipv6_at(tcp, kIpv6Src);
    error_leaves(eth.ipv6_l4(kNptRemote, outside, kTcp, tcp_header(443, 40000, 0x12)), kUnreachable, 1);
    Bytes udp = leaves(eth.ipv6_l4(kHost, kNptRemote, kUdp, udp_header(5000, 53, 3)));
    error_leaves(eth.ipv6_l4(kNptRemote, outside, kUdp, udp_header(53, 5000, 30)), kTooBig, 0, 1280);
  }

  // The LAN host's error about a reply of a NAT66 flow whose policy changed since the flow's last
  // packet follows the flow, as IPv4's (CtRevalidate.AnInsideHostsIcmpErrorFollowsItsStaleFlow):
  // it never leaves from the flow's old address, which no policy covers any more. The policy gone:
  // untranslated, as the flow's own packets. Replaced by one of another address (another virtual
  // IP): untranslated too, counted pass-ct-stale (the guard then judges it). The flow's next
  // packet binds it to the new address, and the same error then leaves from that address and port.
  void nat66_error_about_a_stale_flows_reply_passes_untranslated() {
    const std::string vip2 = "2001:db8:b:7::6";
    const uint32_t if_id = policy_mode ? 0 : kIfId;
    const unsigned untouched = policy_mode ? unsigned(BPF_OK) : unsigned(TC_ACT_UNSPEC);
    Bytes lan_udp = eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4));
    Bytes udp = leaves(lan_udp);
    uint16_t port = uint16_t(udp[kIpv6L4] << 8 | udp[kIpv6L4 + 1]);
    Bytes received = arrives(eth.ipv6_l4(kNatRemote, kVip, kUdp, udp_header(53, port, 9)));
    Bytes err = eth.ipv6_l4(kHost, kNatRemote, kIcmp6, icmp6_error(kUnreachable, 4, 0, l3_of(received)));

    spd::PolicyDelete gone;
    gone.index = 9;
    model.apply(gone);
    writer.write(model, inside);
    publish_spd(dp);
    RunResult r = out(err);
    EXPECT_EQ(r.retval, untouched) << dp.nonzero_reasons();
    EXPECT_EQ(l3_of(r.out), l3_of(err)) << "left translated without its policy; " << dp.nonzero_reasons();

    model.apply(spd::PolicyUpsert{policy6(9, vip2 + "/128", "2001:db8:f00::/40", if_id)});
    writer.write(model, inside);
    publish_spd(dp);
    r = out(err);
    EXPECT_EQ(r.retval, untouched) << dp.nonzero_reasons();
    EXPECT_EQ(l3_of(r.out), l3_of(err)) << "left from the flow's old address; " << dp.nonzero_reasons();
    EXPECT_EQ(n(IPSNAT_R_PASS_CT_STALE), 1u) << dp.nonzero_reasons();
    EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), 0u);

    Bytes udp2 = leaves(lan_udp);
    ASSERT_EQ(ipv6_at(udp2, kIpv6Src), vip2);
    uint16_t port2 = uint16_t(udp2[kIpv6L4] << 8 | udp2[kIpv6L4 + 1]);
    error_leaves(eth.ipv6_l4(kNatRemote, vip2, kUdp, udp_header(53, port2, 9)), kUnreachable, 4);
  }

  Datapath dp;
  bool policy_mode;
  spd::SpdModel model;
  std::vector<Prefix> inside{ipsnat::parse_prefix("fd00:9:9:9::/64"), ipsnat::parse_prefix("192.168.1.0/24")};
  mirror::Npt6Writer writer{bpf_map__fd(dp.skel()->maps.ipsnat_npt6)};
  PacketBuilder eth;
};

TEST_F(Icmp6Error, Nat66PacketTooBigTimeExceededAndUnreachableReachTheLanHost) {
  // A port below the NAPT range: the NAT port differs, so the quoted port must change too.
  error_comes_back(kNatRouter, kTooBig, 0, 1400, eth.ipv6_l4(kHost, kNatRemote, kTcp, tcp_header(80, 443, 0x18)));
  error_comes_back(kNatRemote, kUnreachable, 4, 0, eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 21)));
  error_comes_back(kNatRouter, kTimeExceeded, 0, 0, eth.ipv6_l4(kHost, kNatRemote, kIcmp6, icmp6_echo(128, 77)));
}

// The quoted packet carries an extension header: the walk finds its ports behind it.
TEST_F(Icmp6Error, Nat66QuoteWithAnExtensionHeader) {
  Bytes udp = udp_header(999, 4789, 12);
  Bytes dstopts{kUdp, 0, 1, 4, 0, 0, 0, 0};  // next header, length 0, PadN of 4
  Bytes rest = dstopts;
  rest.insert(rest.end(), udp.begin(), udp.end());
  Bytes sent = eth.ipv6(kHost, kNatRemote, kDstOpts, rest);
  // The UDP checksum over the pseudo-header and the datagram, by the independent routine.
  Bytes plain = eth.ipv6_l4(kHost, kNatRemote, kUdp, udp);
  sent[kIpv6L4 + 8 + 6] = plain[kIpv6L4 + 6];
  sent[kIpv6L4 + 8 + 7] = plain[kIpv6L4 + 7];
  error_comes_back(kNatRouter, kTooBig, 0, 1280, sent);
}

TEST_F(Icmp6Error, Nptv6PacketTooBigAndUnreachableReachTheLanHost) {
  error_comes_back(kNptRouter, kTooBig, 0, 1380, eth.ipv6_l4(kHost, kNptRemote, kTcp, tcp_header(40000, 443, 0x10)));
  error_comes_back(kNptRemote, kUnreachable, 1, 0, eth.ipv6_l4(kHost, kNptRemote, kUdp, udp_header(5000, 53, 3)));
}

// A reassembly timeout quotes the first fragment: the fragment header is walked.
TEST_F(Icmp6Error, Nptv6QuoteOfAFirstFragment) {
  Bytes udp = udp_header(5000, 53, 40);
  Bytes frag{kUdp, 0, 0, 1, 0, 0, 0x12, 0x34};  // offset 0, more fragments, id 0x1234
  Bytes rest = frag;
  rest.insert(rest.end(), udp.begin(), udp.end());
  error_comes_back(kNptRouter, kTimeExceeded, 1, 0, eth.ipv6(kHost, kNptRemote, kFragment, rest));
}

TEST_F(Icmp6Error, TheLanHostsErrorAboutAReplyLeavesFromTheTranslatedAddress) {
  nat66_errors_about_replies_leave_translated();
  nptv6_errors_about_replies_leave_translated();
}

TEST_F(Icmp6Error, TheLanHostsErrorAboutAStaleFlowsReplyNeverLeavesFromItsOldAddress) {
  nat66_error_about_a_stale_flows_reply_passes_untranslated();
}

// An error whose quote is no translated flow opens nothing: into an NPTv6 prefix it is dropped
// (drop-icmp-no-flow) where the plain packet would be translated back; to the NAT66 address it
// passes untouched to the gateway, whose own flows it may concern (pass-icmp-no-ct); into the LAN
// with an SA it is dropped (drop-unsolicited).
TEST_F(Icmp6Error, AnErrorAboutNoFlowOpensNothing) {
  Bytes tcp = leaves(eth.ipv6_l4(kHost, kNptRemote, kTcp, tcp_header(40000, 443, 0x02)));
  std::string outside = ipv6_at(tcp, kIpv6Src);
  // Quoting a packet to a destination the policy does not cover: NPTv6 never sent it.
  Bytes forged = eth.ipv6_l4(outside, "2001:db8:99::1", kTcp, tcp_header(40000, 443, 0x02));
  Bytes err = eth.ipv6_l4(kNptRouter, outside, kIcmp6, icmp6_error(kTooBig, 0, 1280, l3_of(forged)));
  EXPECT_EQ(back(err).retval, TC_ACT_SHOT) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_DROP_ICMP_NO_FLOW), 1u) << dp.nonzero_reasons();
  // Quoting a source outside the prefix.
  forged = eth.ipv6_l4("2001:db8:c:9::1", kNptRemote, kTcp, tcp_header(40000, 443, 0x02));
  err = eth.ipv6_l4(kNptRouter, outside, kIcmp6, icmp6_error(kTooBig, 0, 1280, l3_of(forged)));
  EXPECT_EQ(back(err).retval, TC_ACT_SHOT) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_DROP_ICMP_NO_FLOW), 2u);

  Bytes udp = leaves(eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4)));
  uint16_t port = uint16_t(udp[kIpv6L4] << 8 | udp[kIpv6L4 + 1]);
  Bytes other_port = eth.ipv6_l4(kVip, kNatRemote, kUdp, udp_header(uint16_t(port + 1), 53, 4));
  err = eth.ipv6_l4(kNatRouter, kVip, kIcmp6, icmp6_error(kTooBig, 0, 1280, l3_of(other_port)));
  RunResult r = back(err);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, err);
  EXPECT_EQ(n(IPSNAT_R_PASS_ICMP_NO_CT), 1u) << dp.nonzero_reasons();
  Bytes lan = eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4));
  err = eth.ipv6_l4(kNatRouter, kHost, kIcmp6, icmp6_error(kTooBig, 0, 1280, l3_of(lan)));
  EXPECT_EQ(back(err).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), 0u);
}

// Policy mode: the uplink's tc_rev_ingress takes the far side's error back to the LAN host only
// when the SA of the flow's policy decrypted it, as a reply.
class Icmp6ErrorPolicy : public Icmp6Error {
 protected:
  Icmp6ErrorPolicy() : Icmp6Error(IPSNAT_DEV_POLICY, 0) {}
  // Passes untouched to the translated address, for `why`.
  void stays_out(const Bytes& err, uint32_t sa, ipsnat_reason why) {
    uint64_t before = n(why);
    RunResult r = back(err, sa);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(r.out, err);
    EXPECT_EQ(n(why), before + 1) << dp.nonzero_reasons();
  }
};

TEST_F(Icmp6ErrorPolicy, Nat66ErrorsThroughTheSaReachTheLanHost) {
  error_comes_back(kNatRouter, kTooBig, 0, 1400, eth.ipv6_l4(kHost, kNatRemote, kTcp, tcp_header(80, 443, 0x18)));
  error_comes_back(kNatRemote, kUnreachable, 4, 0, eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 21)));
  error_comes_back(kNatRouter, kTimeExceeded, 0, 0, eth.ipv6_l4(kHost, kNatRemote, kIcmp6, icmp6_echo(128, 77)));
}

TEST_F(Icmp6ErrorPolicy, Nptv6ErrorsThroughTheSaReachTheLanHost) {
  error_comes_back(kNptRouter, kTooBig, 0, 1380, eth.ipv6_l4(kHost, kNptRemote, kTcp, tcp_header(40000, 443, 0x10)));
  error_comes_back(kNptRemote, kUnreachable, 1, 0, eth.ipv6_l4(kHost, kNptRemote, kUdp, udp_header(5000, 53, 3)));
}

// In cleartext (pass-no-sa) or through another tunnel's SA (pass-wrong-sa) the error is not the
// flow's: it stays addressed to the translated address (the gateway itself, or its blackhole).
TEST_F(Icmp6ErrorPolicy, AnErrorInCleartextOrThroughAnotherSaStaysOutOfTheLan) {
  Bytes nat66 = error_about(kNatRouter, kTooBig, 0, 1280, eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4)));
  stays_out(nat66, 0, IPSNAT_R_PASS_NO_SA);
  stays_out(nat66, kSa + 1, IPSNAT_R_PASS_WRONG_SA);
  Bytes npt = error_about(kNptRouter, kTooBig, 0, 1280, eth.ipv6_l4(kHost, kNptRemote, kUdp, udp_header(5000, 53, 3)));
  stays_out(npt, 0, IPSNAT_R_PASS_NO_SA);
  stays_out(npt, kSa + 1, IPSNAT_R_PASS_WRONG_SA);
  EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), 0u);
}

// The LAN host's own errors about a reply leave through LWT xmit translated (outer source, quoted
// destination and port, every checksum) and rerouted, so the kernel's xfrm lookup finds the
// policy of the flow.
TEST_F(Icmp6ErrorPolicy, Nat66LanHostsErrorAboutAReplyLeavesThroughThePolicy) {
  nat66_errors_about_replies_leave_translated();
}

TEST_F(Icmp6ErrorPolicy, Nptv6LanHostsErrorAboutAReplyLeavesThroughThePolicy) {
  nptv6_errors_about_replies_leave_translated();
}

TEST_F(Icmp6ErrorPolicy, TheLanHostsErrorAboutAStaleFlowsReplyNeverLeavesFromItsOldAddress) {
  nat66_error_about_a_stale_flows_reply_passes_untranslated();
}

// An error whose quote is no flow's reply stays as it is (the leak guard then judges it): a reply
// of no NAT66 flow (another port), an error about a flow's reply that another host sends, and
// without --binat an error about what would be an NPTv6 reply.
TEST_F(Icmp6ErrorPolicy, TheLanHostsErrorAboutNoFlowStaysUntouched) {
  Bytes udp = leaves(eth.ipv6_l4(kHost, kNatRemote, kUdp, udp_header(1053, 53, 4)));
  uint16_t port = uint16_t(udp[kIpv6L4] << 8 | udp[kIpv6L4 + 1]);
  Bytes other_port = eth.ipv6_l4(kNatRemote, kHost, kUdp, udp_header(53, uint16_t(port + 1), 9));
  Bytes reply = eth.ipv6_l4(kNatRemote, kHost, kUdp, udp_header(53, 1053, 9));
  Bytes npt_reply = eth.ipv6_l4(kNptRemote, kHost, kUdp, udp_header(53, 5000, 9));
  const std::string other_host = "fd00:9:9:9::11";
  Bytes npt_err = eth.ipv6_l4(kHost, kNptRemote, kIcmp6, icmp6_error(kTooBig, 0, 1280, l3_of(npt_reply)));
  for (const Bytes& err : {eth.ipv6_l4(kHost, kNatRemote, kIcmp6, icmp6_error(kUnreachable, 4, 0, l3_of(other_port))),
                           eth.ipv6_l4(other_host, kNatRemote, kIcmp6, icmp6_error(kUnreachable, 4, 0, l3_of(reply))),
                           npt_err}) {
    if (err == npt_err) dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY, 0, 0);  // no --binat
    RunResult r = out(err);
    EXPECT_EQ(r.retval, unsigned(BPF_OK)) << dp.nonzero_reasons();
    EXPECT_EQ(l3_of(r.out), l3_of(err));
  }
  EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), 0u) << dp.nonzero_reasons();
}

}  // namespace
}  // namespace ipsnat::test
