// The leak guard (tc_guard_egress, bpf/lib/xlate.h xlate_guard) on golden packets: IPv6 fails
// closed for IPv6-covered destinations, only the gateway's own IKE is exempt, and packets whose
// ports are unknown (later fragments, headers the parser refuses) fail closed where some ports
// would be covered.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include "maps/stats.h"
#include "spd/compiler.h"
#include "mirror/cover6.h"
#include "mirror/mirror.h"
#include "spd/model.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

using spd::Policy;

constexpr uint8_t kTcp = IPPROTO_TCP, kUdp = IPPROTO_UDP, kSyn = 0x02;
constexpr uint32_t kLanIfindex = 7;  // any nonzero ifindex: the packet was received, not sent by the host

Policy out_policy(uint32_t index, const std::string& dst, uint32_t priority, bool ipsec = true) {
  Policy p = tunnel_policy(spd::Dir::Out, dst.find(':') == std::string::npos ? "0.0.0.0/0" : "::/0", dst, index,
                           priority, ipsec);
  for (auto& t : p.tmpls) t.reqid = index;
  return p;
}

spd::PolicyDelete delete_by_index(uint32_t index) {
  spd::PolicyDelete d;
  d.index = index;
  return d;
}

Policy ports(Policy p, uint8_t proto, uint16_t dport) {
  p.sel.proto = proto;
  p.sel.dport = dport;
  p.sel.dport_mask = 0xffff;
  return p;
}

// 10.0.0.0/8 covered whatever the ports; 172.20.0.0/16 only for TCP port 80; 172.21.0.0/16 TCP
// port 443 behind a bypass for every port (never covered); 172.22.0.0/16 TCP port 443 before that
// bypass (covered for some ports); 2001:db8:10::/48 and 2001:db8:20::/48 for IPv6.
class Guard : public ::testing::Test {
 protected:
  Guard() {
    for (const Policy& p : {out_policy(9, "10.0.0.0/8", 100), ports(out_policy(17, "172.20.0.0/16", 100), kTcp, 80),
                            out_policy(25, "172.21.0.0/16", 10, false),
                            ports(out_policy(33, "172.21.0.0/16", 20), kTcp, 443),
                            ports(out_policy(41, "172.22.0.0/16", 10), kTcp, 443),
                            out_policy(49, "172.22.0.0/16", 20, false), out_policy(57, "2001:db8:10::/48", 100),
                            ports(out_policy(65, "2001:db8:20::/48", 100), kUdp, 53)})
      model.apply(spd::PolicyUpsert{p});
    write();
  }
  void write() {
    auto fds = mirror::SpdMapFds::from_object(dp.skel()->obj);
    auto compiled = spd::compile_spd(model.ordered(), spd::NatConfig{});
    ASSERT_FALSE(compiled.refused) << *compiled.refused;
    mirror::SpdMapWriter(fds).write(compiled);
    cover6.write(model);
  }
  RunResult own(const Bytes& p) { return dp.run(dp.skel()->progs.tc_guard_egress, p); }
  RunResult fwd(const Bytes& p) { return dp.run_forwarded(dp.skel()->progs.tc_guard_egress, p, kLanIfindex); }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }

  Datapath dp;
  spd::SpdModel model;
  mirror::Cover6Writer cover6{bpf_map__fd(dp.skel()->maps.spd_cover6)};
  PacketBuilder eth;
};

// A routed host's packet with an IKE source port is cleartext like any other; the gateway's own
// IKE passes from or to port 500/4500, TCP included (RFC 8229: ephemeral source port, to 4500).
TEST_F(Guard, OnlyTheGatewaysOwnIkePasses) {
  EXPECT_EQ(fwd(eth.udp({"172.16.5.9", "10.0.0.1"}, 500, 500, Bytes(40, 1))).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.udp({"172.16.5.9", "10.0.0.1"}, 4500, 53, Bytes(8, 1))).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.tcp({"172.16.5.9", "10.0.0.1"}, 40001, 4500, kSyn, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(own(eth.udp({"200.2.2.2", "10.0.0.1"}, 500, 500, Bytes(40, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(own(eth.udp({"200.2.2.2", "10.0.0.1"}, 4500, 4500, Bytes(40, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(own(eth.tcp({"200.2.2.2", "10.0.0.1"}, 40001, 4500, kSyn, {})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(own(eth.udp({"200.2.2.2", "10.0.0.1"}, 41000, 500, Bytes(40, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_PASS_IPSEC), 4u) << dp.nonzero_reasons();
  // The host's other cleartext to a covered destination is still a leak.
  EXPECT_EQ(own(eth.udp({"200.2.2.2", "10.0.0.1"}, 41000, 53, Bytes(8, 1))).retval, TC_ACT_SHOT);
  // ESP passes whoever sent it.
  EXPECT_EQ(fwd(eth.ipv4({"172.16.5.9", "10.0.0.1", 50}, Bytes(64, 1))).retval, TC_ACT_UNSPEC);
}

TEST_F(Guard, PortsAreEvaluatedWhenKnown) {
  EXPECT_EQ(fwd(eth.tcp({"172.16.5.9", "172.20.1.1"}, 40000, 80, kSyn, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.tcp({"172.16.5.9", "172.20.1.1"}, 40000, 22, kSyn, {})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.tcp({"172.16.5.9", "172.21.1.1"}, 40000, 443, kSyn, {})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.tcp({"172.16.5.9", "172.22.1.1"}, 40000, 443, kSyn, {})).retval, TC_ACT_SHOT);
}

// A later fragment carries no ports: it may leave only when no ports make its flow covered.
TEST_F(Guard, LaterFragmentsFailClosedWhereSomePortsAreCovered) {
  auto later = [&](const std::string& dst, uint8_t proto) {
    return fwd(eth.ipv4({"172.16.5.9", dst, proto, 64, 9, 185}, Bytes(64, 1))).retval;  // offset 1480
  };
  EXPECT_EQ(later("172.20.1.1", kTcp), TC_ACT_SHOT);
  EXPECT_EQ(later("172.22.1.1", kTcp), TC_ACT_SHOT);
  EXPECT_EQ(later("10.0.0.1", kUdp), TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(later("172.20.1.1", kUdp), TC_ACT_UNSPEC);  // the policy is TCP only
  EXPECT_EQ(later("172.21.1.1", kTcp), TC_ACT_UNSPEC);  // a bypass for every port comes first
  EXPECT_EQ(later("8.8.8.8", kTcp), TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 3u) << dp.nonzero_reasons();
}

// Packets the parser refuses are judged by the destination and protocol their header names.
TEST_F(Guard, UnparsablePacketsFailClosedWhereTheDestinationIsCovered) {
  Bytes truncated_tcp = eth.ipv4({"172.16.5.9", "172.20.1.1", kTcp}, Bytes{0x9c, 0x40, 0, 80});
  Bytes bad_ihl = eth.udp({"172.16.5.9", "10.0.0.1"}, 40000, 53, Bytes(8, 1));
  bad_ihl[14] = 0x44;
  EXPECT_EQ(fwd(truncated_tcp).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(bad_ihl).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_GUARD_UNPARSED), 2u) << dp.nonzero_reasons();
  Bytes truncated_udp = eth.ipv4({"172.16.5.9", "172.20.1.1", kUdp}, Bytes{0x9c, 0x40, 0, 53});
  Bytes uncovered = eth.ipv4({"172.16.5.9", "8.8.8.8", kTcp}, Bytes{0x9c, 0x40, 0, 80});
  EXPECT_EQ(fwd(truncated_udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(uncovered).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_PASS_MALFORMED), 2u) << dp.nonzero_reasons();
}

Bytes ext(uint8_t next, size_t len8 = 0) {  // an options-type extension header of (len8 + 1) * 8 bytes
  Bytes h((len8 + 1) * 8, 0);
  h[0] = next;
  h[1] = static_cast<uint8_t>(len8);
  return h;
}

Bytes frag_hdr(uint8_t next, uint16_t offset8, bool more) {
  Bytes h(8, 0);
  h[0] = next;
  uint16_t v = static_cast<uint16_t>(offset8 << 3 | (more ? 1 : 0));
  h[2] = v >> 8;
  h[3] = v & 0xff;
  return h;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST_F(Guard, Ipv6ToACoveredPrefixIsDroppedWhateverItsPorts) {
  const std::string lan6 = "fd00:1::10", covered = "2001:db8:10::1";
  EXPECT_EQ(fwd(eth.ipv6(lan6, covered, kUdp, udp_header(40000, 53, 8))).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.ipv6(lan6, covered, kTcp, tcp_header(40000, 443, kSyn))).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.ipv6(lan6, covered, 58, Bytes{128, 0, 0, 0, 0, 1, 0, 1})).retval, TC_ACT_SHOT);
  // A port-restricted IPv6 policy covers its prefix for every port.
  EXPECT_EQ(fwd(eth.ipv6(lan6, "2001:db8:20::5", kTcp, tcp_header(40000, 22, kSyn))).retval, TC_ACT_SHOT);
  // Behind extension headers (hop-by-hop, routing, destination options, a first fragment).
  Bytes chain = cat({ext(43, 1), ext(60), frag_hdr(kUdp, 0, true), udp_header(40000, 53, 8)});
  EXPECT_EQ(fwd(eth.ipv6(lan6, covered, 0, chain)).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD6), 5u) << dp.nonzero_reasons();
  EXPECT_EQ(fwd(eth.ipv6(lan6, "2001:db8:99::1", kUdp, udp_header(40000, 53, 8))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.ipv6(lan6, "2001:db8:99::1", 0, chain)).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 2u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_IPV4), 0u);
}

TEST_F(Guard, Ipv6EspAhAndTheGatewaysOwnIkePass) {
  const std::string covered = "2001:db8:10::1";
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", covered, 50, Bytes(64, 1))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", covered, 0, cat({ext(60), ext(51, 2), Bytes(32, 1)}))).retval,
            TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", covered, 44, cat({frag_hdr(50, 100, false), Bytes(64, 1)}))).retval,
            TC_ACT_UNSPEC);
  EXPECT_EQ(own(eth.ipv6("2001:db8:1::2", covered, kUdp, udp_header(500, 500, 40))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(own(eth.ipv6("2001:db8:1::2", covered, kTcp, tcp_header(40002, 4500, kSyn))).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_PASS_IPSEC), 5u) << dp.nonzero_reasons();
  // A routed host's packet from port 500 is not the gateway's IKE.
  EXPECT_EQ(fwd(eth.ipv6("fd00:1::10", covered, kUdp, udp_header(500, 500, 40))).retval, TC_ACT_SHOT);
  // Link scope never leaves the link: neighbour discovery passes even under ::/0.
  model.apply(spd::PolicyUpsert{out_policy(73, "::/0", 100)});
  write();
  EXPECT_EQ(fwd(eth.ipv6("fe80::1", "ff02::1:ff00:1", 58, Bytes{135, 0, 0, 0, 0, 0, 0, 0})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.ipv6("fe80::1", "fe80::2", 58, Bytes{136, 0, 0, 0, 0, 0, 0, 0})).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(eth.ipv6("fd00:1::10", "2001:db8:99::1", kUdp, udp_header(1, 2))).retval, TC_ACT_SHOT);
  // The host's own neighbour discovery to a global address (unicast NUD probe): hop limit 255.
  Bytes ns = eth.ipv6("2001:db8:1::2", "2001:db8:1::1", 58, Bytes{135, 0, 0, 0, 0, 0, 0, 0});
  ns[14 + 7] = 255;
  EXPECT_EQ(own(ns).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(fwd(ns).retval, TC_ACT_SHOT);  // cannot be forwarded with 255; a crafted copy is not ND
  Bytes echo = eth.ipv6("2001:db8:1::2", "2001:db8:1::1", 58, Bytes{128, 0, 0, 0, 0, 0, 0, 0});
  echo[14 + 7] = 255;
  EXPECT_EQ(own(echo).retval, TC_ACT_SHOT);
}

// The walk is bounded: a chain it cannot finish is judged by the destination alone, so ESP
// behind it does not pass to a covered destination; a truncated chain likewise.
TEST_F(Guard, Ipv6ChainsTheWalkCannotFinishFailClosed) {
  Bytes nine;
  for (int i = 0; i < 9; i++) nine = cat({nine, ext(60)});
  nine[9 * 8 - 8] = 50;  // the last one names ESP
  Bytes long_chain = cat({nine, Bytes(64, 1)});
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", "2001:db8:10::1", 60, long_chain)).retval, TC_ACT_SHOT);
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", "2001:db8:99::1", 60, long_chain)).retval, TC_ACT_UNSPEC);
  Bytes truncated = ext(50, 4);
  truncated.resize(12);
  EXPECT_EQ(fwd(eth.ipv6("2001:db8:1::2", "2001:db8:10::1", 60, truncated)).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD6), 2u) << dp.nonzero_reasons();
}

// A later fragment's payload is data, not headers: when its fragment header names destination
// options (the first header of the fragmentable part), payload bytes that look like an options
// header naming ESP do not make it IPsec: cleartext to a covered destination, dropped.
TEST_F(Guard, Ipv6LaterFragmentsPayloadIsNotReadAsHeaders) {
  Bytes looks_like_esp = cat({ext(50), Bytes(56, 1)});
  Bytes later = cat({frag_hdr(60, 100, false), looks_like_esp});
  EXPECT_EQ(fwd(eth.ipv6("fd00:1::10", "2001:db8:10::1", 44, later)).retval, TC_ACT_SHOT) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD6), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_PASS_IPSEC), 0u);
  EXPECT_EQ(fwd(eth.ipv6("fd00:1::10", "2001:db8:99::1", 44, later)).retval, TC_ACT_UNSPEC);
}

// The map follows the model: a prefix stays while any policy names it, and goes with the last.
TEST_F(Guard, Ipv6CoverageFollowsPolicyChanges) {
  const Bytes to_covered = eth.ipv6("fd00:1::10", "2001:db8:10::1", kUdp, udp_header(40000, 53, 8));
  Policy twin = ports(out_policy(81, "2001:db8:10::/48", 90), kTcp, 22);
  model.apply(spd::PolicyUpsert{twin});
  write();
  model.apply(delete_by_index(57));
  write();
  EXPECT_EQ(fwd(to_covered).retval, TC_ACT_SHOT);
  model.apply(delete_by_index(81));
  write();
  EXPECT_EQ(fwd(to_covered).retval, TC_ACT_UNSPEC);
  // Policies that do not require IPsec at the uplink add nothing.
  Policy bypass = out_policy(89, "2001:db8:10::/48", 100, false);
  Policy tunnel_dev = out_policy(97, "2001:db8:10::/48", 100);
  tunnel_dev.if_id = 5;
  model.apply(spd::PolicyUpsert{bypass});
  model.apply(spd::PolicyUpsert{tunnel_dev});
  write();
  EXPECT_EQ(fwd(to_covered).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(mirror::cover6_prefixes(model).count(ipsnat::parse_prefix("2001:db8:10::/48")), 0u);
}

}  // namespace
}  // namespace ipsnat::test
