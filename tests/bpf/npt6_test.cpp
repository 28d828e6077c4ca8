// NPTv6 (bpf/lib/npt6.h) on golden packets: the rules come from the SPD mirror's own writer
// (loader/spd/npt6.*), the oracle for the checksums is a whole recomputation of the translated
// packet's TCP, UDP or ICMPv6 checksum (tests/support/packet.*), which the datapath never touches.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstring>

#include "maps/stats.h"
#include "spd/model.h"
#include "mirror/npt6_map.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/ipv6_packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp6 = 58;
constexpr uint32_t kIfId = 42;
constexpr size_t kL3 = 14;  // PacketBuilder's Ethernet header
constexpr size_t kSrc = kL3 + 8, kDst = kL3 + 24;

spd::Policy policy6(uint32_t index, const std::string& src, const std::string& dst) {
  return ipv6_out_policy(index, src, dst, kIfId);
}

std::string addr_at(const Bytes& pkt, size_t off) { return ipv6_at(pkt, off); }

// Two sites behind the xfrm interface of if_id 42: the LAN fd00:1:2::/48 is the policy's
// 2001:db8:a::/48 towards 2001:db8:f00::/40, the LAN fd00:9:9:9::/64 is 2001:db8:b:7::/64
// towards 2001:db8:e00::/40.
class Npt6 : public ::testing::Test {
 protected:
  Npt6() {
    for (const auto& p : {policy6(9, "2001:db8:a::/48", "2001:db8:f00::/40"),
                          policy6(17, "2001:db8:b:7::/64", "2001:db8:e00::/40")})
      model.apply(spd::PolicyUpsert{p});
    writer.write(model, inside);
    set_dev(IPSNAT_DEV_ROUTE, kIfId, IPSNAT_DEV_BINAT);
  }
  // The device's ipsnat_dev entry: NPTv6 translates on a route-mode device with --binat only.
  void set_dev(ipsnat_dev_mode mode, uint32_t if_id, uint32_t flags) {
    dp.set_dev_mode(Datapath::test_ifindex(), mode, if_id, flags);
  }
  RunResult out(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  RunResult back(const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p); }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }

  // Egress, then the reply's way back: the source becomes `want` with a valid checksum and no
  // other byte changed; the reply to it comes back to the original host, checksum valid.
  void round_trip(const std::string& host, const std::string& remote, uint8_t proto, const Bytes& l4,
                  const std::string& want, const Bytes& reply_l4) {
    SCOPED_TRACE(host + " -> " + remote + " proto " + std::to_string(proto));
    Bytes pkt = eth.ipv6_l4(host, remote, proto, l4);
    ASSERT_TRUE(ipv6_l4_checksum_ok(pkt, kL3));
    RunResult r = out(pkt);
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(addr_at(r.out, kSrc), want);
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3)) << "checksum field unchanged, address sum changed";
    Bytes rest_in(pkt.begin() + kDst, pkt.end()), rest_out(r.out.begin() + kDst, r.out.end());
    EXPECT_EQ(rest_in, rest_out) << "only the source address may change";

    Bytes reply = eth.ipv6_l4(remote, want, proto, reply_l4);
    RunResult b = back(reply);
    ASSERT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_EQ(addr_at(b.out, kDst), host);
    EXPECT_TRUE(ipv6_l4_checksum_ok(b.out, kL3));
  }

  Datapath dp;
  spd::SpdModel model;
  std::vector<Prefix> inside{ipsnat::parse_prefix("fd00:1:2::/48"), ipsnat::parse_prefix("fd00:9:9:9::/64"),
                                  ipsnat::parse_prefix("192.168.1.0/24")};
  mirror::Npt6Writer writer{bpf_map__fd(dp.skel()->maps.ipsnat_npt6)};
  PacketBuilder eth;
};

// RFC 6296 section 3: a /48 keeps its subnet word 3 adjusted so the address's sum is unchanged:
// fd00:1:2:3::10 -> 2001:db8:a:X::10 with X = 3 + sum(fd00:1:2) - sum(2001:db8:a).
TEST_F(Npt6, SlashFortyEightTcpUdpAndEchoLeaveWithThePolicysPrefixAndValidChecksums) {
  uint32_t x = 3 + (0xfd00 + 1 + 2) + (0xffff - ((0x2001 + 0xdb8 + 0xa) % 0xffff));
  while (x >> 16) x = (x & 0xffff) + (x >> 16);
  char want[64];
  std::snprintf(want, sizeof(want), "2001:db8:a:%x::10", x);
  round_trip("fd00:1:2:3::10", "2001:db8:f00::1", kTcp, tcp_header(40000, 443, 0x02), want,
             tcp_header(443, 40000, 0x12));
  round_trip("fd00:1:2:3::10", "2001:db8:f12::77", kUdp, udp_header(40001, 53, 30), want, udp_header(53, 40001, 9));
  round_trip("fd00:1:2:3::10", "2001:db8:f00::1", kIcmp6, icmp6_echo(128, 7), want, icmp6_echo(129, 7));
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 3u);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 3u);
}

// RFC 6296 Appendix B's own example, an oracle this project did not compute: with the internal
// prefix fd01:203:405::/48 and the external 2001:db8:1::/48, fd01:203:405:1::1234 becomes
// 2001:db8:1:d550::1234.
TEST_F(Npt6, TheRfcsExampleTranslatesAsTheRfcSays) {
  spd::PolicyDelete d;
  d.index = 9;
  model.apply(d);
  model.apply(spd::PolicyUpsert{policy6(25, "2001:db8:1::/48", "2001:db8:c00::/40")});
  inside = {ipsnat::parse_prefix("fd01:203:405::/48")};
  writer.write(model, inside);
  round_trip("fd01:203:405:1::1234", "2001:db8:c00::9", kUdp, udp_header(1234, 53, 20), "2001:db8:1:d550::1234",
             udp_header(53, 1234, 3));
}

// A /64 adjusts the first interface-identifier word that is not 0xffff (RFC 6296 section 3.7):
// word 4 here, word 5 when word 4 is all ones; the way back finds the same word.
TEST_F(Npt6, SlashSixtyFourAdjustsTheFirstInterfaceIdWordThatIsNotAllOnes) {
  for (const std::string host : {"fd00:9:9:9:1:2:3:4", "fd00:9:9:9:ffff:2:3:4", "fd00:9:9:9::"}) {
    Bytes pkt = eth.ipv6_l4(host, "2001:db8:e00::5", kUdp, udp_header(5000, 6000, 12));
    RunResult r = out(pkt);
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << host << " " << dp.nonzero_reasons();
    std::string got = addr_at(r.out, kSrc);
    EXPECT_EQ(got.rfind("2001:db8:b:7:", 0), 0u) << got;
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3)) << host;
    round_trip(host, "2001:db8:e00::5", kUdp, udp_header(5000, 6000, 12), got, udp_header(6000, 5000, 4));
  }
  Bytes ones = eth.ipv6_l4("fd00:9:9:9:ffff:ffff:ffff:ffff", "2001:db8:e00::5", kUdp, udp_header(1, 2));
  EXPECT_EQ(out(ones).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_NPT6_UNMAPPABLE), 1u);
}

// Longer than /64 (RFC 6296 section 3.7): the adjustment goes into the first word wholly in the
// interface identifier that is not 0xffff (/80: word 5, or 6 when 5 is all ones; /72: word 5, the
// host byte of word 4 kept); the other host bits pass unchanged and the way back finds the word.
TEST_F(Npt6, LongerThanSlashSixtyFourAdjustsAWordOutsideThePrefix) {
  model.apply(spd::PolicyUpsert{policy6(31, "2001:db8:c:8:9::/80", "2001:db8:d00::/40")});
  model.apply(spd::PolicyUpsert{policy6(33, "2001:db8:c:8:aa00::/72", "2001:db8:d01::/48")});
  inside.push_back(ipsnat::parse_prefix("fd00:5:5:5:7::/80"));
  inside.push_back(ipsnat::parse_prefix("fd00:5:5:6:bb00::/72"));
  writer.write(model, inside);
  struct Case {
    std::string host, remote, prefix, same;  // same: the host bits that must pass unchanged
  };
  for (const Case& c : {Case{"fd00:5:5:5:7:1:2:3", "2001:db8:d00::5", "2001:db8:c:8:9:", ":2:3"},
                        Case{"fd00:5:5:5:7:ffff:2:3", "2001:db8:d00::5", "2001:db8:c:8:9:ffff:", ":3"},
                        Case{"fd00:5:5:6:bb12:1:2:3", "2001:db8:d01::5", "2001:db8:c:8:aa12:", ":2:3"}}) {
    Bytes pkt = eth.ipv6_l4(c.host, c.remote, kUdp, udp_header(5000, 6000, 12));
    RunResult r = out(pkt);
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << c.host << " " << dp.nonzero_reasons();
    std::string got = addr_at(r.out, kSrc);
    EXPECT_EQ(got.rfind(c.prefix, 0), 0u) << c.host << " -> " << got;
    EXPECT_EQ(got.substr(got.size() - c.same.size()), c.same) << c.host << " -> " << got;
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kL3)) << c.host << " -> " << got;
    round_trip(c.host, c.remote, kUdp, udp_header(5000, 6000, 12), got, udp_header(6000, 5000, 4));
  }
  Bytes ones = eth.ipv6_l4("fd00:5:5:5:7:ffff:ffff:ffff", "2001:db8:d00::5", kUdp, udp_header(1, 2));
  EXPECT_EQ(out(ones).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_NPT6_UNMAPPABLE), 1u);
}

// A /48 host in subnet 0xffff has no checksum-neutral mapping (RFC 6296 section 3.5): dropped,
// never sent with a wrong checksum or untranslated.
TEST_F(Npt6, SubnetAllOnesIsDropped) {
  EXPECT_EQ(out(eth.ipv6_l4("fd00:1:2:ffff::1", "2001:db8:f00::1", kUdp, udp_header(1, 2))).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_NPT6_UNMAPPABLE), 1u);
}

// What no rule concerns leaves untouched: another destination, a source outside the inside
// prefix, a device of another if_id, a policy-mode device, and on the way back a destination
// outside the policy's prefix.
TEST_F(Npt6, WhatNoRuleConcernsIsUntouched) {
  auto unchanged = [&](RunResult r, const Bytes& in) {
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, in);
  };
  Bytes other_dst = eth.ipv6_l4("fd00:1:2:3::10", "2001:db8:99::1", kUdp, udp_header(1, 2));
  Bytes other_src = eth.ipv6_l4("fd00:7::10", "2001:db8:f00::1", kUdp, udp_header(1, 2));
  Bytes lan = eth.ipv6_l4("fd00:1:2:3::10", "2001:db8:f00::1", kUdp, udp_header(1, 2));
  unchanged(out(other_dst), other_dst);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 1u);
  unchanged(out(other_src), other_src);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 1u);
  Bytes reply_elsewhere = eth.ipv6_l4("2001:db8:f00::1", "2001:db8:c::1", kUdp, udp_header(2, 1));
  unchanged(back(reply_elsewhere), reply_elsewhere);
  set_dev(IPSNAT_DEV_ROUTE, 7, IPSNAT_DEV_BINAT);
  unchanged(out(lan), lan);
  set_dev(IPSNAT_DEV_POLICY, 0, IPSNAT_DEV_BINAT);
  unchanged(out(lan), lan);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 0u);
}

// The way back only for a sender in the policy's destination selector: on a device given --mode
// route nothing else (no dir fwd/in companion) stops a sender elsewhere, here one outside every
// remote selector and one in the other policy's, from reaching a LAN host at its translated
// address; the policy's own remote still does.
TEST_F(Npt6, TheWayBackOnlyFromThePolicysRemote) {
  for (const std::string sender : {"2001:db8:99::1", "2001:db8:f00::1"}) {
    Bytes opening = eth.ipv6_l4(sender, "2001:db8:b:7:1::10", kTcp, tcp_header(40000, 22, 0x02));
    RunResult b = back(opening);
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << sender;
    EXPECT_EQ(b.out, opening) << sender << " reached the LAN host";
  }
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 0u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 2u) << dp.nonzero_reasons();
  Bytes remote = eth.ipv6_l4("2001:db8:e00::5", "2001:db8:b:7:1::10", kTcp, tcp_header(40000, 22, 0x02));
  EXPECT_EQ(addr_at(back(remote).out, kDst).rfind("fd00:9:9:9:", 0), 0u);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 1u) << dp.nonzero_reasons();
}

// Without --binat (IPSNAT_DEV_BINAT) a route-mode device translates no IPv6 either way: the
// LAN's packet leaves with its own source (the kernel's xfrm lookup then finds no policy for it,
// as before attach), and a packet from the far side to a translated address, which a stateless
// reverse rule would hand to the LAN host, stays addressed as it came.
TEST_F(Npt6, WithoutBinatNothingIsTranslatedEitherWay) {
  set_dev(IPSNAT_DEV_ROUTE, kIfId, 0);
  Bytes lan = eth.ipv6_l4("fd00:9:9:9::10", "2001:db8:e00::5", kTcp, tcp_header(40000, 443, 0x02));
  RunResult o = out(lan);
  EXPECT_EQ(o.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(o.out, lan);
  Bytes opening = eth.ipv6_l4("2001:db8:e00::5", "2001:db8:b:7:1::10", kTcp, tcp_header(40000, 22, 0x02));
  RunResult b = back(opening);
  EXPECT_EQ(b.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(b.out, opening);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 0u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 0u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_IPV4), 2u) << dp.nonzero_reasons();
  // The same device with the flag translates both (the packets above were in the rules' reach).
  set_dev(IPSNAT_DEV_ROUTE, kIfId, IPSNAT_DEV_BINAT);
  EXPECT_NE(out(lan).out, lan);
  EXPECT_NE(back(opening).out, opening);
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_NPT6_REVERSE), 1u) << dp.nonzero_reasons();
}

// The writer follows the SPD: a removed policy's rules go, so its LAN leaves untranslated.
TEST_F(Npt6, ARemovedPolicyTakesItsRulesAlong) {
  Bytes lan = eth.ipv6_l4("fd00:1:2:3::10", "2001:db8:f00::1", kUdp, udp_header(1, 2));
  ASSERT_NE(out(lan).out, lan);
  spd::PolicyDelete d;
  d.index = 9;
  model.apply(d);
  writer.write(model, inside);
  EXPECT_EQ(out(lan).out, lan);
}

}  // namespace
}  // namespace ipsnat::test
