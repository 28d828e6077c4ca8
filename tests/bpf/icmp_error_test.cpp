// ICMP errors about translated flows: outer address, quoted IP and L4 headers and every
// checksum translated, in both directions. Expected packets are built from scratch.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>
#include <linux/pkt_cls.h>

#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;
const std::string kLan = "192.168.1.10", kLan2 = "192.168.1.11", kNat = "10.20.30.2", kRemote = "10.0.0.1",
                  kRouter = "10.1.1.1";

class IcmpError : public ::testing::Test {
 protected:
  IcmpError() {
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24"));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  RunResult snat(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  RunResult rev(const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p); }
  RunResult lo(const Bytes& p) { return dp.run(dp.skel()->progs.tc_lo_egress, p); }
  // The NAT port the second host got for a flow whose first host kept `port`.
  uint16_t nat_port(const std::string& host, uint16_t sport, uint16_t dport, uint8_t proto) {
    auto e = dp.ct_get(ct_key(host, kRemote, sport, dport, proto, IPSNAT_CT_ORIG));
    if (!e) throw std::runtime_error("no CT entry: " + dp.nonzero_reasons());
    return ntohs(e->xlat_port);
  }
  void expect_translated(const Bytes& got, const Bytes& want) {
    EXPECT_EQ(got, want) << "reasons: " << dp.nonzero_reasons();
    auto outer = verify_checksums(got, 14);
    EXPECT_TRUE(outer.ip_ok && outer.l4_ok) << outer.detail;
    auto quote = verify_quote_checksums(got, 14);
    EXPECT_TRUE(quote.ip_ok && quote.l4_ok) << quote.detail;
  }
  static Bytes truncated(Bytes b, size_t n) {
    b.resize(n);
    return b;
  }

  Datapath dp;
  PacketBuilder eth, bare{false};
};

TEST_F(IcmpError, PortUnreachableFromTheRemoteReachesTheInsideHost) {
  snat(eth.udp({kLan, kRemote}, 5353, 53, {}));
  snat(eth.udp({kLan2, kRemote}, 5353, 53, {}));
  uint16_t p2 = nat_port(kLan2, 5353, 53, kUdp);
  ASSERT_NE(p2, 5353);
  Bytes payload(40, 0x61);
  Bytes sent = bare.udp({kNat, kRemote, kUdp, 63, 99}, p2, 53, payload);
  Bytes orig = bare.udp({kLan2, kRemote, kUdp, 63, 99}, 5353, 53, payload);
  auto r = rev(eth.icmp_error({kRemote, kNat}, 3, 3, sent));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  expect_translated(r.out, eth.icmp_error({kRemote, kLan2}, 3, 3, orig));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_ERROR), 1u);
}

TEST_F(IcmpError, UdpQuoteWithoutChecksumKeepsZero) {
  snat(eth.udp({kLan, kRemote}, 5353, 53, {}));
  snat(eth.udp({kLan2, kRemote}, 5353, 53, {}));
  uint16_t p2 = nat_port(kLan2, 5353, 53, kUdp);
  Bytes sent = bare.udp({kNat, kRemote}, p2, 53, Bytes(9, 1), true);
  Bytes orig = bare.udp({kLan2, kRemote}, 5353, 53, Bytes(9, 1), true);
  expect_translated(rev(eth.icmp_error({kRemote, kNat}, 3, 3, sent)).out, eth.icmp_error({kRemote, kLan2}, 3, 3, orig));
}

TEST_F(IcmpError, FragNeededFromARouterWithFullAndMinimalQuotes) {
  snat(eth.tcp({kLan, kRemote}, 40000, 443, 0x02, {}));
  snat(eth.tcp({kLan2, kRemote}, 40000, 443, 0x02, {}));
  uint16_t p2 = nat_port(kLan2, 40000, 443, kTcp);
  Bytes data(1400, 0x77);
  Bytes sent = bare.tcp({kNat, kRemote, kTcp, 64, 5}, p2, 443, 0x10, data);
  Bytes orig = bare.tcp({kLan2, kRemote, kTcp, 64, 5}, 40000, 443, 0x10, data);
  // Linux quotes up to 576 bytes: TCP header and checksum included.
  auto r = rev(eth.icmp_error({kRouter, kNat}, 3, 4, truncated(sent, 548), 1400));
  expect_translated(r.out, eth.icmp_error({kRouter, kLan2}, 3, 4, truncated(orig, 548), 1400));
  // RFC 792 minimum: IP header and 8 bytes, the TCP checksum is not there to update.
  Bytes min_sent = truncated(sent, 28), min_orig = truncated(sent, 28);
  std::memcpy(min_orig.data() + 12, orig.data() + 12, 4);  // quoted source back to the inside host
  std::memcpy(min_orig.data() + 20, orig.data() + 20, 2);  // and its port
  min_orig[10] = min_orig[11] = 0;
  uint16_t hc = inet_checksum(min_orig.data(), 20);
  min_orig[10] = hc >> 8;
  min_orig[11] = hc & 0xff;
  auto m = rev(eth.icmp_error({kRouter, kNat}, 3, 4, min_sent, 1400));
  expect_translated(m.out, eth.icmp_error({kRouter, kLan2}, 3, 4, min_orig, 1400));
}

TEST_F(IcmpError, TimeExceededQuotingAnEchoRequest) {
  snat(eth.icmp_echo({kLan, kRemote}, 8, 7, 1, {}));
  snat(eth.icmp_echo({kLan2, kRemote}, 8, 7, 1, {}));
  uint16_t id2 = nat_port(kLan2, 7, 0, kIcmp);
  ASSERT_NE(id2, 7);
  Bytes sent = bare.icmp_echo({kNat, kRemote, kIcmp, 1, 3}, 8, id2, 1, Bytes(56, 2));
  Bytes orig = bare.icmp_echo({kLan2, kRemote, kIcmp, 1, 3}, 8, 7, 1, Bytes(56, 2));
  auto r = rev(eth.icmp_error({kRouter, kNat}, 11, 0, sent));
  expect_translated(r.out, eth.icmp_error({kRouter, kLan2}, 11, 0, orig));
}

TEST_F(IcmpError, ErrorFromTheInsideHostIsTranslatedOutward) {
  snat(eth.udp({kLan, kRemote}, 5353, 53, {}));
  snat(eth.udp({kLan2, kRemote}, 5353, 53, {}));
  uint16_t p2 = nat_port(kLan2, 5353, 53, kUdp);
  // The inside host got the reply (translated back) and rejects it.
  Bytes got = bare.udp({kRemote, kLan2, kUdp, 60, 8}, 53, 5353, Bytes(12, 4));
  Bytes as_sent = bare.udp({kRemote, kNat, kUdp, 60, 8}, 53, p2, Bytes(12, 4));
  auto r = snat(eth.icmp_error({kLan2, kRemote}, 3, 3, got));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  expect_translated(r.out, eth.icmp_error({kNat, kRemote}, 3, 3, as_sent));
}

// The tunnel device's own "fragmentation needed" is raised after the NAT: addressed to the NAT
// address and quoting the translated packet, it reaches the tunnel device's egress. It must be
// turned back into an error for the inside host (and redirected there, not sent into the tunnel).
TEST_F(IcmpError, LocalFragNeededAboutATranslatedPacketGoesBackInside) {
  snat(eth.tcp({kLan, kRemote}, 40000, 5001, 0x02, {}));
  snat(eth.tcp({kLan2, kRemote}, 40000, 5001, 0x02, {}));
  uint16_t p2 = nat_port(kLan2, 40000, 5001, kTcp);
  ASSERT_NE(p2, 40000);
  const std::string kGw = "192.168.1.1";
  Bytes sent = bare.tcp({kNat, kRemote, kTcp, 63, 5}, p2, 5001, 0x10, Bytes(40, 0x62));
  Bytes orig = bare.tcp({kLan2, kRemote, kTcp, 63, 5}, 40000, 5001, 0x10, Bytes(40, 0x62));
  auto r = snat(eth.icmp_error({kGw, kNat}, 3, 4, sent, 1438));
  EXPECT_NE(r.retval, TC_ACT_UNSPEC) << "must not continue into the tunnel";
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_LOCAL), 1u) << dp.nonzero_reasons();
  expect_translated(r.out, eth.icmp_error({kGw, kLan2}, 3, 4, orig, 1438));
}

// The NAT address is a local address (strongSwan's virtual IP): the tunnel device's
// "fragmentation needed" about a translated packet is delivered to the host over lo. At lo's
// egress it goes back to the inside host like on the tunnel device.
TEST_F(IcmpError, FragNeededToALocalNatAddressGoesBackInsideFromLo) {
  snat(eth.tcp({kLan, kRemote}, 40000, 5001, 0x02, {}));
  snat(eth.tcp({kLan2, kRemote}, 40000, 5001, 0x02, {}));
  uint16_t p2 = nat_port(kLan2, 40000, 5001, kTcp);
  ASSERT_NE(p2, 40000);
  Bytes sent = bare.tcp({kNat, kRemote, kTcp, 63, 5}, p2, 5001, 0x10, Bytes(1400, 0x62));
  Bytes orig = bare.tcp({kLan2, kRemote, kTcp, 63, 5}, 40000, 5001, 0x10, Bytes(1400, 0x62));
  auto r = lo(eth.icmp_error({kNat, kNat}, 3, 4, truncated(sent, 548), 1446));
  EXPECT_NE(r.retval, TC_ACT_UNSPEC) << "must not be delivered to the host";
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_LOCAL), 1u) << dp.nonzero_reasons();
  expect_translated(r.out, eth.icmp_error({kNat, kLan2}, 3, 4, truncated(orig, 548), 1446));
}

// Everything else the host sends itself passes lo untouched: traffic, errors about flows that
// were not translated, and an error about a translated flow that is not addressed to the NAT
// address (the kernel's own is).
TEST_F(IcmpError, LoPassesTheHostsOwnTrafficUntouched) {
  snat(eth.udp({kLan, kRemote}, 5353, 53, {}));
  const std::string kSelf = "127.0.0.1", kGw = "192.168.1.1";
  Bytes translated = bare.udp({kNat, kRemote}, 5353, 53, {});
  std::vector<Bytes> pkts = {
      eth.tcp({kSelf, kSelf}, 40000, 5432, 0x02, {}),
      eth.udp({kNat, kNat}, 5353, 53, Bytes(8, 1)),
      eth.icmp_echo({kSelf, kSelf}, 8, 7, 1, {}),
      eth.icmp_error({kSelf, kSelf}, 3, 3, bare.udp({kSelf, kSelf}, 5353, 53, {})),
      eth.icmp_error({kGw, kGw}, 3, 4, translated, 1446),
  };
  for (const auto& p : pkts) {
    auto r = lo(p);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p);
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_LOOPBACK), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_ICMP_NO_CT), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_LOCAL), 0u);
}

TEST_F(IcmpError, ErrorsWithoutAFlowAreNotTranslated) {
  Bytes quote = bare.udp({kNat, kRemote}, 1111, 53, {});
  Bytes err = eth.icmp_error({kRemote, kNat}, 3, 3, quote);
  auto r = rev(err);
  EXPECT_EQ(r.out, err);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_ICMP_NO_CT), 1u);
}

}  // namespace
}  // namespace ipsnat::test
