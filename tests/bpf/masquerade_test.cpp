// Masquerade on the uplink (`attach --masquerade`, bpf/lib/masq.h) on golden packets through the
// real guard and reverse programs: a LAN flow no out-policy covers leaves as the uplink's address
// with ports from the masquerade range, its replies and ICMP errors come back through the same
// conntrack; covered flows, the gateway's own traffic and IKE, ESP and unsolicited packets are not
// touched. Expected packets are built from scratch; checksums by the independent routine.
#include <arpa/inet.h>
#include <cstring>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "mirror/mirror.h"
#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/tunnel_policy.h"
#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

using spd::Policy;

const std::string kUplink = "198.18.0.2", kInternet = "198.51.100.7", kRouter = "198.18.0.1",
                  kHostToHost = "203.0.113.9";
constexpr uint16_t kMasqMin = 61000, kMasqMax = 65535;
constexpr uint32_t kLanIfindex = 7;  // a forwarded packet's input device

// An ESP tunnel out-policy src -> dst whose reqid is its index.
Policy out_policy(uint32_t index, const std::string& src, const std::string& dst) {
  Policy p = spd::tunnel_policy(spd::Dir::Out, ipsnat::parse_prefix(src), ipsnat::parse_prefix(dst), index);
  p.index = index;
  p.priority = 100;
  return p;
}

// The uplink (the test device) masquerades to kUplink; the company 10.0.0.0/8 is covered for
// every source, 203.0.113.0/24 only from the uplink's own address (a host-to-host policy).
class Masquerade : public ::testing::Test {
 protected:
  Masquerade() : dp(true) {
    model.apply(spd::PolicyUpsert{out_policy(9, "0.0.0.0/0", "10.0.0.0/8")});
    add_policy(out_policy(17, kUplink + "/32", "203.0.113.0/24"));
    dp.set_inside("192.168.1.0/24", INSIDE_PREFIX);
    set_masquerade(kUplink);
  }
  // Adds p to the SPD and writes it as the mirror does (a new generation and version).
  void add_policy(const Policy& p) {
    model.apply(spd::PolicyUpsert{p});
    auto compiled = spd::compile_spd(model.ordered(), spd::NatConfig{});
    EXPECT_FALSE(compiled.refused);
    mirror::SpdMapWriter(mirror::SpdMapFds::from_object(dp.skel()->obj)).write(compiled);
  }
  void set_masquerade(const std::string& addr) {
    ipsnat_dev_cfg d{};
    d.mode = IPSNAT_DEV_POLICY;
    d.masq_addr = addr.empty() ? 0 : parse_ipv4(addr);
    d.masq_port_min = kMasqMin;
    d.masq_port_max = kMasqMax;
    dp.set_dev_cfg(Datapath::test_ifindex(), d);
  }
  RunResult out(const Bytes& p) { return dp.run_forwarded(dp.skel()->progs.tc_guard_egress, p, kLanIfindex); }
  RunResult own(const Bytes& p) { return dp.run(dp.skel()->progs.tc_guard_egress, p); }
  // mark: the SA reqid that decrypted it (0: cleartext), see Datapath.
  RunResult in(const Bytes& p, uint32_t mark = 0) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, mark); }
  std::optional<ipsnat_ct_entry> orig(const std::string& host, const std::string& remote, uint16_t sport, uint16_t dport,
                                      uint8_t proto) {
    return dp.ct_get(ct_key(host, remote, sport, dport, proto, IPSNAT_CT_ORIG));
  }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }
  ipsnat_dev_gen dev_gen() {
    uint32_t zero = 0;
    ipsnat_dev_gen g{};
    if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.ipsnat_dev_gen), &zero, &g) != 0) ADD_FAILURE() << "ipsnat_dev_gen";
    return g;
  }
  spd_active active() {
    uint32_t zero = 0;
    spd_active a{};
    if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &a) != 0) ADD_FAILURE() << "spd_active";
    return a;
  }

  Datapath dp;
  spd::SpdModel model;
  PacketBuilder eth, bare{false};
};

TEST_F(Masquerade, UdpLeavesAsTheUplinkAddressFromTheMasqueradeRangeAndTheReplyReturns) {
  Bytes payload(33, 0x5a);
  auto r = out(eth.udp({kLan, kInternet, kUdp, 63, 11}, 40000, 53, payload));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  auto e = orig(kLan, kInternet, 40000, 53, kUdp);
  ASSERT_TRUE(e) << dp.nonzero_reasons();
  EXPECT_EQ(e->kind, IPSNAT_CT_KIND_MASQ);
  EXPECT_EQ(e->xlat_addr, parse_ipv4(kUplink));
  uint16_t port = ntohs(e->xlat_port);
  // 40000 lies in the host's ephemeral range: moved into the masquerade range.
  EXPECT_GE(port, kMasqMin);
  EXPECT_LE(port, kMasqMax);
  EXPECT_SAME_PACKET(r.out, eth.udp({kUplink, kInternet, kUdp, 63, 11}, port, 53, payload));
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 1u);

  auto back = in(eth.udp({kInternet, kUplink, kUdp, 50, 12}, 53, port, payload));
  EXPECT_EQ(back.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(back.out, eth.udp({kInternet, kLan, kUdp, 50, 12}, 53, 40000, payload));
  EXPECT_EQ(n(IPSNAT_R_XLATE_REVERSE), 1u);
  EXPECT_EQ(dp.ct_all().size(), 2u);
}

TEST_F(Masquerade, TcpKeepsAPortInTheRangeAndEchoKeepsItsId) {
  Bytes data(100, 7);
  auto t = out(eth.tcp({kLan, kInternet}, 62000, 443, kSyn, {}));
  EXPECT_SAME_PACKET(t.out, eth.tcp({kUplink, kInternet}, 62000, 443, kSyn, {}));
  auto ta = in(eth.tcp({kInternet, kUplink}, 443, 62000, kSyn | kAck, data));
  EXPECT_SAME_PACKET(ta.out, eth.tcp({kInternet, kLan}, 443, 62000, kSyn | kAck, data));

  auto p = out(eth.icmp_echo({kLan, kInternet, kIcmp}, 8, 777, 1, data));
  EXPECT_SAME_PACKET(p.out, eth.icmp_echo({kUplink, kInternet, kIcmp}, 8, 777, 1, data));
  auto pr = in(eth.icmp_echo({kInternet, kUplink, kIcmp}, 0, 777, 1, data));
  EXPECT_SAME_PACKET(pr.out, eth.icmp_echo({kInternet, kLan, kIcmp}, 0, 777, 1, data));
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 2u);
  EXPECT_EQ(n(IPSNAT_R_XLATE_REVERSE), 2u);
}

// Unlike the NAPT before IPsec (Nat.APrivilegedSourcePortStaysPrivileged), the masquerade keeps
// to its range for privileged ports too: below it lie the gateway's own sockets (an NTP daemon
// on 123, an NFS client's 665-1023), which its conntrack does not see.
TEST_F(Masquerade, APrivilegedPortLeavesFromTheMasqueradeRange) {
  auto r = out(eth.udp({kLan, kInternet}, 123, 123, {}));
  auto e = orig(kLan, kInternet, 123, 123, kUdp);
  ASSERT_TRUE(e) << dp.nonzero_reasons();
  uint16_t port = ntohs(e->xlat_port);
  EXPECT_GE(port, kMasqMin);
  EXPECT_LE(port, kMasqMax);
  EXPECT_SAME_PACKET(r.out, eth.udp({kUplink, kInternet}, port, 123, {}));
}

// A LAN host's GRE or IPv6-in-IPv4 tunnel to the internet leaves as the uplink's address, as
// netfilter's masquerade takes it (Nat.PortlessProtocolsAreTranslatedByTheirAddressAlone).
TEST_F(Masquerade, PortlessProtocolsLeaveAsTheUplinkAddress) {
  Bytes payload(24, 0x41);
  for (uint8_t proto : {47, 41}) {
    SCOPED_TRACE(int(proto));
    auto r = out(eth.ipv4({kLan, kInternet, proto}, payload));
    EXPECT_SAME_PACKET(r.out, eth.ipv4({kUplink, kInternet, proto}, payload));
    auto back = in(eth.ipv4({kInternet, kUplink, proto}, payload));
    EXPECT_SAME_PACKET(back.out, eth.ipv4({kInternet, kLan, proto}, payload));
  }
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 2u);
  EXPECT_EQ(n(IPSNAT_R_XLATE_REVERSE), 2u);
  // The gateway's own ESP with a peer is never taken for a LAN host's.
  Bytes esp = eth.ipv4({kLan, kInternet, 50}, payload);
  EXPECT_EQ(out(esp).out, esp);
  Bytes esp_in = eth.ipv4({kInternet, kUplink, 50}, payload);
  EXPECT_EQ(in(esp_in).out, esp_in);
}

TEST_F(Masquerade, IcmpErrorsAreTranslatedBothWays) {
  Bytes payload(40, 0x61);
  out(eth.udp({kLan, kInternet, kUdp, 63, 99}, 40000, 53, payload));
  uint16_t port = ntohs(orig(kLan, kInternet, 40000, 53, kUdp)->xlat_port);

  // A router on the way: fragmentation needed, quoting what left.
  Bytes sent = bare.udp({kUplink, kInternet, kUdp, 62, 99}, port, 53, payload);
  Bytes was = bare.udp({kLan, kInternet, kUdp, 62, 99}, 40000, 53, payload);
  auto r = in(eth.icmp_error({kRouter, kUplink}, 3, 4, sent, 1400));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, eth.icmp_error({kRouter, kLan}, 3, 4, was, 1400)) << dp.nonzero_reasons();
  EXPECT_TRUE(verify_quote_checksums(r.out, 14).l4_ok);

  // The LAN host: port unreachable about the reply.
  Bytes reply = bare.udp({kInternet, kLan, kUdp, 50, 5}, 53, 40000, payload);
  Bytes reply_wire = bare.udp({kInternet, kUplink, kUdp, 50, 5}, 53, port, payload);
  auto u = out(eth.icmp_error({kLan, kInternet}, 3, 3, reply));
  EXPECT_EQ(u.out, eth.icmp_error({kUplink, kInternet}, 3, 3, reply_wire)) << dp.nonzero_reasons();
  EXPECT_TRUE(verify_checksums(u.out, 14).l4_ok);
  EXPECT_TRUE(verify_quote_checksums(u.out, 14).l4_ok);
  EXPECT_EQ(n(IPSNAT_R_XLATE_ICMP_ERROR), 2u);
}

TEST_F(Masquerade, CoveredFlowsAreTheGuardsNotTheMasquerades) {
  // To the company: cleartext that should have been encrypted (the LWT route translates it).
  EXPECT_EQ(out(eth.udp({kLan, "10.0.0.1"}, 40000, 53, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 1u);
  // A destination a policy covers only from the uplink's own address (host to host): covered for
  // the guard whatever the source, so never masqueraded into a packet the kernel would encrypt.
  EXPECT_EQ(out(eth.udp({kLan, kHostToHost}, 40000, 53, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 2u);
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 0u);
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(Masquerade, TheGatewaysOwnTrafficIkeAndEspAreUntouched) {
  for (const Bytes& p : {eth.udp({kUplink, kInternet}, 41000, 53, {}), eth.udp({kUplink, "100.1.1.1"}, 500, 500, {}),
                         eth.udp({kUplink, "100.1.1.1"}, 4500, 4500, Bytes(20, 1)),
                         eth.ipv4({kUplink, "100.1.1.1", 50}, Bytes(64, 1))}) {
    auto r = own(p);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p);
  }
  // A transit source (not inside) is not masqueraded either.
  Bytes transit = eth.udp({"172.31.0.5", kInternet}, 41000, 53, {});
  EXPECT_EQ(out(transit).out, transit);
  EXPECT_EQ(n(IPSNAT_R_PASS_IPSEC), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_INSIDE), 2u) << dp.nonzero_reasons();
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(Masquerade, NoDoorNoSaNoOtherDevice) {
  // Unsolicited to the uplink's address: the gateway's, untouched.
  Bytes syn = eth.tcp({kInternet, kUplink}, 50000, 22, kSyn, {});
  EXPECT_EQ(in(syn).out, syn);
  EXPECT_EQ(n(IPSNAT_R_PASS_NO_CT), 1u);
  out(eth.tcp({kLan, kInternet}, 62000, 443, kSyn, {}));
  // A packet for that flow that came decrypted through an SA is not its reply.
  Bytes decrypted = eth.tcp({kInternet, kUplink}, 443, 62000, kSyn | kAck, {});
  EXPECT_EQ(in(decrypted, 5).out, decrypted);
  EXPECT_EQ(n(IPSNAT_R_PASS_WRONG_SA), 1u);
  // Masquerade switched off on the device: its replies are no longer let in, and new flows pass.
  set_masquerade("");
  EXPECT_EQ(in(decrypted).out, decrypted);
  Bytes udp = eth.udp({kLan, kInternet}, 40000, 53, {});
  EXPECT_EQ(out(udp).out, udp);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 1u) << dp.nonzero_reasons();
}

TEST_F(Masquerade, AFlowFollowsTheUplinksNewAddress) {
  out(eth.tcp({kLan, kInternet}, 62000, 443, kSyn, {}));
  set_masquerade("198.18.7.7");
  auto r = out(eth.tcp({kLan, kInternet}, 62000, 443, kAck, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({"198.18.7.7", kInternet}, 62000, 443, kAck, {}));
  EXPECT_EQ(dp.ct_all().size(), 2u);  // the old binding is gone
}

// The guard judges every packet of an established masqueraded flow, not the flow once: a packet
// whose mark a policy covers, the maps turning stale (fail-closed, no new SPD version) and a
// policy that comes to cover the destination each drop the next packet, and then only those.
TEST_F(Masquerade, AnEstablishedFlowIsJudgedAgainForAMarkTheMapsHealthAndANewPolicy) {
  Bytes udp = eth.udp({kLan, kInternet}, 40000, 53, {});
  auto flow_packets = [&] { return orig(kLan, kInternet, 40000, 53, kUdp)->packets; };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 3u);

  // A policy for the mark 0x10 only: packets without a mark stay masqueraded, a marked one is
  // cleartext the kernel would have encrypted.
  Policy marked = out_policy(21, "0.0.0.0/0", kInternet + "/32");
  marked.mark_v = 0x10;
  marked.mark_m = 0xff;
  add_policy(marked);
  EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.run(dp.skel()->progs.tc_guard_egress, udp, 0x10).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(flow_packets(), 5u);

  // The maps turn stale (no new version): every destination is covered.
  spd_health h{};
  h.flags = SPD_HEALTH_FAIL_CLOSED;
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_health), &zero, &h, BPF_ANY), 0);
  EXPECT_EQ(out(udp).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_SPD_INCOMPLETE), 1u) << dp.nonzero_reasons();
  h.flags = 0;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_health), &zero, &h, BPF_ANY), 0);
  EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);

  // A policy for every mark: dropped as a leak from now on, never masqueraded.
  add_policy(out_policy(25, "0.0.0.0/0", kInternet + "/32"));
  EXPECT_EQ(out(udp).retval, TC_ACT_SHOT);
  EXPECT_EQ(out(udp).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 6u);
  EXPECT_EQ(flow_packets(), 6u);
}

// The guard asks the SPD once per flow and SPD version, not per packet: its check stamps the
// flow's ORIG entry with the version and IPSNAT_CT_SPD_CLEAR (maps/ct.h), and the flow's next
// unmarked packets skip the lookup while that version is current. Shown by a covering policy
// slipped into the active SPD without a new version (the mirror never does that): the stamped
// flow still leaves masqueraded, a new flow to the same destination and a marked packet of the
// stamped flow (a marked packet never makes nor uses the stamp) are dropped as leaks; once the
// version moves on, the stamped flow is judged again and dropped too.
TEST_F(Masquerade, AnEstablishedFlowSkipsTheGuardsLookupOnlyUnderTheVersionItWasCheckedOn) {
  Bytes udp = eth.udp({kLan, kInternet}, 40000, 53, {});
  Bytes marked = eth.udp({kLan, kInternet}, 40001, 53, {});
  EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(dp.run(dp.skel()->progs.tc_guard_egress, marked, 0x10).retval, TC_ACT_UNSPEC);
  spd_active checked = active();
  EXPECT_EQ(orig(kLan, kInternet, 40000, 53, kUdp)->spd_version, checked.version | IPSNAT_CT_SPD_CLEAR);
  EXPECT_EQ(orig(kLan, kInternet, 40001, 53, kUdp)->spd_version, checked.version);

  add_policy(out_policy(25, "0.0.0.0/0", kInternet + "/32"));
  spd_active slipped = active();
  ASSERT_NE(slipped.version, checked.version);
  slipped.version = checked.version;
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &slipped, BPF_ANY), 0);
  EXPECT_EQ(out(udp).retval, TC_ACT_UNSPEC);
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(out(eth.udp({kLan, kInternet}, 40002, 53, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.run(dp.skel()->progs.tc_guard_egress, udp, 0x10).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 2u) << dp.nonzero_reasons();

  slipped.version = checked.version + 1;
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &slipped, BPF_ANY), 0);
  EXPECT_EQ(out(udp).retval, TC_ACT_SHOT);
  EXPECT_EQ(n(IPSNAT_R_DROP_LEAK_GUARD), 3u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 3u);
}

// Nor does an established flow's packet read ipsnat_dev: the guard's stamp also holds the
// ipsnat_dev generation (maps/config.h ipsnat_dev_gen) under which it found the entry's address to
// be the device's, and the flow's next packets take that address while the generation is current
// and the device is the only masquerading one. Shown by an address change slipped into ipsnat_dev
// without a new generation (the loader never does that): the stamped flow keeps the old address, a
// new flow takes the new one; once the generation moves on, the stamped flow follows the new address;
// with a second masquerading device no stamp is trusted; masquerade switched off on the device
// leaves the flow untranslated.
TEST_F(Masquerade, AnEstablishedFlowSkipsTheDeviceLookupOnlyUnderTheGenerationItWasStampedOn) {
  Bytes udp = eth.udp({kLan, kInternet}, 40000, 53, {});
  // The source address the packet leaves with (network order).
  auto leaves_as = [&](const Bytes& p) {
    Bytes o = out(p).out;
    uint32_t a = 0;
    if (o.size() >= 34) std::memcpy(&a, o.data() + 14 + 12, 4);
    return a;
  };
  EXPECT_EQ(leaves_as(udp), parse_ipv4(kUplink));
  ipsnat_dev_gen g = dev_gen();
  EXPECT_EQ(g.masq_ifindex, Datapath::test_ifindex());
  EXPECT_EQ(orig(kLan, kInternet, 40000, 53, kUdp)->reqid, g.gen);

  ipsnat_dev_cfg moved{};
  moved.mode = IPSNAT_DEV_POLICY;
  moved.masq_addr = parse_ipv4("198.18.7.7");
  moved.masq_port_min = kMasqMin;
  moved.masq_port_max = kMasqMax;
  uint32_t lo = Datapath::test_ifindex();
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.ipsnat_dev), &lo, &moved, BPF_ANY), 0);
  EXPECT_EQ(leaves_as(udp), parse_ipv4(kUplink));
  EXPECT_EQ(leaves_as(eth.udp({kLan, kInternet}, 40001, 53, {})), parse_ipv4("198.18.7.7"));

  dp.set_dev_cfg(lo, moved);
  EXPECT_EQ(dev_gen().gen, g.gen + 2);
  EXPECT_EQ(leaves_as(udp), parse_ipv4("198.18.7.7"));
  EXPECT_EQ(orig(kLan, kInternet, 40000, 53, kUdp)->reqid, g.gen + 2);

  // A second masquerading device: the stamps of this one are no longer trusted alone.
  dp.set_dev_cfg(lo + 1000, moved);
  EXPECT_EQ(dev_gen().masq_ifindex, 0u);
  moved.masq_addr = parse_ipv4("198.18.8.8");
  ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.ipsnat_dev), &lo, &moved, BPF_ANY), 0);
  EXPECT_EQ(leaves_as(udp), parse_ipv4("198.18.8.8"));

  set_masquerade("");
  EXPECT_EQ(out(udp).out, udp);
  EXPECT_EQ(n(IPSNAT_R_PASS_NOT_COVERED), 1u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_XLATE_MASQ), 5u);
}

}  // namespace
}  // namespace ipsnat::test
