// An established flow keeps its translation only while the SPD still protects it
// (docs/datapath.md "Established flows and SPD changes"): golden packets through tc_snat_egress
// with the SPD rewritten between them, the way the mirror does when IKE removes or re-adds a
// policy; and the per-packet cost of the check (DISABLED_: a measurement, run by hand with
// --gtest_also_run_disabled_tests --gtest_filter='CtRevalidate.*Cost*').
#include <arpa/inet.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

class CtRevalidate : public SeedNat {
 protected:
  uint64_t spd_version() {
    uint32_t zero = 0;
    spd_active a{};
    if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &a) != 0) ADD_FAILURE() << "spd_active";
    return a.version;
  }
  static Bytes data() { return Bytes{'r', 'e', 'v', 'a', 'l'}; }
};

// The seed flow is established; IKE removes the out-policy: the next packet must not leave
// with the NAT address (the kernel would send it in cleartext), so it passes untranslated,
// counted pass-ct-stale, and the binding stays; the policy comes back (IKE re-established):
// translated again with the same binding.
TEST_F(CtRevalidate, RemovedPolicyStopsTheTranslationReAddedOneResumesIt) {
  Bytes out = eth.udp({kLan, kRemote}, 40000, 53, data());
  auto r = snat(out);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 40000, 53, data()));
  auto orig = ct_key(kLan, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(dp.ct_get(orig));
  EXPECT_EQ(dp.ct_get(orig)->spd_version, spd_version());
  r = snat(out);
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 40000, 53, data()));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u);

  remove_nat_targets(dp, "10.0.0.0/8");
  for (int i = 0; i < 2; ++i) {  // every packet while the policy is gone, not only the first
    r = snat(out);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, out) << "left translated without its policy; reasons: " << dp.nonzero_reasons();
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 2u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u);
  EXPECT_TRUE(dp.ct_get(orig)) << "the binding is kept for the policy's return";
  EXPECT_TRUE(dp.ct_get(ct_key(kRemote, kNat, 53, 40000, kUdp, IPSNAT_CT_REPLY)));

  install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
  r = snat(out);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 40000, 53, data()));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 3u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 2u);
  EXPECT_EQ(dp.ct_get(orig)->spd_version, spd_version());
  EXPECT_EQ(dp.ct_get(orig)->packets, 3u) << "the same entry carries on";
}

// An inside host's ICMP error about a reply follows its flow: while the policy is gone it passes
// untranslated like the flow's packets (it would otherwise leave with the NAT address and no
// policy); with the policy back it is translated on the same binding.
TEST_F(CtRevalidate, AnInsideHostsIcmpErrorFollowsItsStaleFlow) {
  PacketBuilder bare{false};
  snat(eth.udp({kLan, kRemote}, 40000, 53, data()));
  auto orig = ct_key(kLan, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ASSERT_TRUE(dp.ct_get(orig));
  uint16_t nat_port = ntohs(dp.ct_get(orig)->xlat_port);
  Bytes got = bare.udp({kRemote, kLan, kUdp, 60, 8}, 53, 40000, Bytes(12, 4));  // the reply, as delivered
  Bytes as_sent = bare.udp({kRemote, kNat, kUdp, 60, 8}, 53, nat_port, Bytes(12, 4));
  Bytes err = eth.icmp_error({kLan, kRemote}, 3, 3, got);

  remove_nat_targets(dp, "10.0.0.0/8");
  auto r = snat(err);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, err) << "left translated without its policy; reasons: " << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_ERROR), 0u);

  install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
  r = snat(err);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.icmp_error({kNat, kRemote}, 3, 3, as_sent));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_ERROR), 1u);
}

// The policy comes back naming another address (a new virtual IP from the pool): the flow is
// bound anew to it; replies to the old address are no longer translated.
TEST_F(CtRevalidate, AnotherNatAddressRebindsTheFlow) {
  Bytes syn = eth.tcp({kLan, kRemote}, 40000, 80, kSyn, {});
  auto r = snat(syn);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kNat, kRemote}, 40000, 80, kSyn, {}));
  remove_nat_targets(dp, "10.0.0.0/8");
  install_nat_target(dp, "10.0.0.0/8", napt_target("10.20.30.3", "192.168.1.0/24", 8));
  Bytes ack = eth.tcp({kLan, kRemote}, 40000, 80, kAck, data());
  r = snat(ack);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({"10.20.30.3", kRemote}, 40000, 80, kAck, data()));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 0u);
  EXPECT_FALSE(dp.ct_get(ct_key(kRemote, kNat, 80, 40000, kTcp, IPSNAT_CT_REPLY))) << "old binding removed";
  auto reply = dp.ct_get(ct_key(kRemote, "10.20.30.3", 80, 40000, kTcp, IPSNAT_CT_REPLY));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->xlat_addr, parse_ipv4(kLan));
  auto orig = dp.ct_get(ct_key(kLan, kRemote, 40000, 80, kTcp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->xlat_addr, parse_ipv4("10.20.30.3"));
  EXPECT_EQ(orig->reqid, 8u);
  // A reply to the old address: no flow any more.
  r = rev(eth.tcp({kRemote, kNat}, 80, 40000, kSyn | kAck, {}));
  EXPECT_EQ(r.out, eth.tcp({kRemote, kNat}, 80, 40000, kSyn | kAck, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 1u);
  // To the new one: translated back.
  r = rev(eth.tcp({kRemote, "10.20.30.3"}, 80, 40000, kSyn | kAck, {}));
  EXPECT_SAME_PACKET(r.out, eth.tcp({kRemote, kLan}, 80, 40000, kSyn | kAck, {}));
}

// A pool address an established flow was translated to becomes the gateway's own (a virtual IP
// in the policy's /29: INSIDE_LOCAL in ipsnat_inside), and the loader leaves it out of the pool
// (spd/nat.h implied_nats) under a new SPD version: although a policy still protects the address,
// the flow's next packet is bound anew to an address of the pool that is left, the old binding
// removed. A flow on a one-address target that is the gateway's own (its virtual IP) keeps it.
TEST_F(CtRevalidate, APoolAddressThatBecomesTheGatewaysOwnRebindsTheFlow) {
  remove_nat_targets(dp, "10.0.0.0/8");
  install_nat_target_from(dp, "10.20.30.0/29", "10.0.0.0/8", napt_pool_target("10.20.30.0", 8, "192.168.1.0/24", 7));
  auto orig = ct_key(kLan, kRemote, 40000, 80, kTcp, IPSNAT_CT_ORIG);
  snat(eth.tcp({kLan, kRemote}, 40000, 80, kSyn, {}));
  ASSERT_TRUE(dp.ct_get(orig));
  uint32_t was = dp.ct_get(orig)->xlat_addr;
  uint16_t port = dp.ct_get(orig)->xlat_port;
  std::string local = Address::v4(was).str();
  // The half of the /29 without it, as the loader's longest run would be at either end.
  bool low = (ntohl(was) & 7) < 4;
  std::string first = low ? "10.20.30.4" : "10.20.30.0";
  dp.set_inside(local + "/32", INSIDE_LOCAL);
  remove_nat_targets(dp, "10.0.0.0/8");
  install_nat_target_from(dp, "10.20.30.0/29", "10.0.0.0/8", napt_pool_target(first, 4, "192.168.1.0/24", 7));

  auto r = snat(eth.tcp({kLan, kRemote}, 40000, 80, kAck, data()));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  ASSERT_TRUE(dp.ct_get(orig));
  uint32_t now = dp.ct_get(orig)->xlat_addr;
  EXPECT_NE(now, was) << "still on the gateway's own " << local;
  EXPECT_LT(ntohl(now) - ntohl(parse_ipv4(first)), 4u) << Address::v4(now).str();
  EXPECT_SAME_PACKET(r.out, eth.tcp({Address::v4(now).str(), kRemote}, 40000, 80, kAck, data()));
  EXPECT_FALSE(dp.ct_get(ct_key(kRemote, local, 80, ntohs(port), kTcp, IPSNAT_CT_REPLY))) << "old binding removed";
  EXPECT_EQ(dp.ct_get(orig)->spd_version, spd_version());
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 0u);

  // One address, the gateway's own (a /32 policy's virtual IP): kept across a new SPD version.
  remove_nat_targets(dp, "10.0.0.0/8");
  install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
  dp.set_inside(kNat + "/32", INSIDE_LOCAL);
  auto vip = ct_key(kLan2, kRemote, 40001, 80, kTcp, IPSNAT_CT_ORIG);
  snat(eth.tcp({kLan2, kRemote}, 40001, 80, kSyn, {}));
  ASSERT_TRUE(dp.ct_get(vip));
  publish_spd(dp);
  r = snat(eth.tcp({kLan2, kRemote}, 40001, 80, kAck, data()));
  EXPECT_EQ(dp.ct_get(vip)->xlat_addr, parse_ipv4(kNat));
  EXPECT_EQ(dp.ct_get(vip)->spd_version, spd_version());
  EXPECT_EQ(dp.ct_get(vip)->packets, 2u) << "the same entry carries on";
}

// An SPD change that leaves the flow protected (another destination's policy) costs it one
// check and nothing else.
TEST_F(CtRevalidate, UnrelatedSpdChangeKeepsTheFlow) {
  Bytes ping = eth.icmp_echo({kLan, kRemote, kIcmp}, 8, 0x4242, 1, data());
  auto r = snat(ping);
  EXPECT_SAME_PACKET(r.out, eth.icmp_echo({kNat, kRemote, kIcmp}, 8, 0x4242, 1, data()));
  uint64_t before = spd_version();
  install_nat_target(dp, "172.16.0.0/12", napt_target("10.20.30.9", "192.168.1.0/24", 9));
  ASSERT_NE(spd_version(), before);
  r = snat(ping);
  EXPECT_SAME_PACKET(r.out, eth.icmp_echo({kNat, kRemote, kIcmp}, 8, 0x4242, 1, data()));
  auto orig = dp.ct_get(ct_key(kLan, kRemote, 0x4242, 0, kIcmp, IPSNAT_CT_ORIG));
  ASSERT_TRUE(orig);
  EXPECT_EQ(orig->spd_version, spd_version()) << "checked and stamped";
  EXPECT_EQ(orig->packets, 2u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_CT_STALE), 0u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u);
}


struct Timing {
  double p10, median, mean, p90;
};

Timing summarize(std::vector<uint32_t> d) {
  std::sort(d.begin(), d.end());
  double mean = std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(d.size());
  return {static_cast<double>(d[d.size() / 10]), static_cast<double>(d[d.size() / 2]), mean,
          static_cast<double>(d[d.size() * 9 / 10])};
}

// ns per packet of tc_snat_egress for established UDP flows (a fresh packet per run, repeat = 1,
// so no run sees an already translated packet), and for the first packet of each flow after an
// SPD change (the one that re-checks the flow against the SPD).
TEST_F(CtRevalidate, DISABLED_EstablishedPacketCost) {
  constexpr int kFlows = 1000, kRounds = 20;
  std::vector<Bytes> pkts;
  for (int i = 0; i < kFlows; ++i) pkts.push_back(eth.udp({kLan, kRemote}, static_cast<uint16_t>(1024 + i), 53, Bytes(18, 1)));
  for (const auto& p : pkts) ASSERT_EQ(snat(p).retval, TC_ACT_UNSPEC);
  std::vector<uint32_t> est, first;
  for (int round = 0; round < kRounds; ++round) {
    for (int rep = 0; rep < 5; ++rep)
      for (const auto& p : pkts) est.push_back(snat(p).duration_ns);
    // Same policy again: a new SPD version, every flow re-checked once.
    remove_nat_targets(dp, "10.0.0.0/8");
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
    for (const auto& p : pkts) first.push_back(snat(p).duration_ns);
  }
  auto e = summarize(est), f = summarize(first);
  std::printf("tc_snat_egress established: p10 %.0f median %.0f mean %.1f p90 %.0f ns (%zu packets)\n", e.p10,
              e.median, e.mean, e.p90, est.size());
  std::printf("tc_snat_egress first packet after an SPD change: p10 %.0f median %.0f mean %.1f p90 %.0f ns (%zu packets)\n",
              f.p10, f.median, f.mean, f.p90, first.size());
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), static_cast<uint64_t>(kFlows) * (1 + kRounds * 6));
}

}  // namespace
}  // namespace ipsnat::test
