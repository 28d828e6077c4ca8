// The inside set (maps/inside.h): NAPT translates every LAN prefix of it, nothing else; and the
// reverse path refuses decrypted packets into the inside prefixes that no flow or port-forward
// explains (drop-unsolicited). A decrypted packet is made with the object's test seam
// (Datapath(true): the SA's reqid from skb->mark): BPF_PROG_TEST_RUN cannot give a packet a sec path.
#include <arpa/inet.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "support/seed_nat.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

const std::string kLanB = "172.16.9.10", kUplinkPeer = "200.2.2.1", kUplink = "200.2.2.2", kGwLan = "192.168.1.1";

// Out-policy 10.0.0.0/8 for kNat (reqid 7) with the NAPT a one-address source implies; two LANs
// inside, the gateway's addresses local.
class Inside : public ::testing::Test {
 protected:
  explicit Inside(uint32_t sa_reqid = 0) : dp(sa_reqid != 0), sa_reqid_(sa_reqid) {
    install_nat_target(dp, "10.0.0.0/8", napt_set_target(kNat, 7));
    dp.set_inside("192.168.1.0/24", INSIDE_PREFIX);
    dp.set_inside("172.16.0.0/20", INSIDE_PREFIX);
    dp.set_inside(kGwLan + "/32", INSIDE_PREFIX | INSIDE_LOCAL);
    dp.set_inside(kUplink + "/32", INSIDE_LOCAL);
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  RunResult snat(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  // As decrypted by an SA of sa_reqid_ (0: cleartext).
  RunResult rev(const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa_reqid_); }
  Datapath dp;
  uint32_t sa_reqid_;
  PacketBuilder eth;
};

TEST_F(Inside, EveryLanPrefixIsTranslatedAndNothingElse) {
  auto r = snat(eth.udp({kLan, kRemote}, 40000, 53, {}));
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 40000, 53, {}));
  r = snat(eth.udp({kLanB, kRemote}, 40001, 53, {}));
  EXPECT_SAME_PACKET(r.out, eth.udp({kNat, kRemote}, 40001, 53, {}));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u);
  // The uplink's neighbour and the gateway's uplink address itself are no LAN.
  for (const auto& src : {kUplinkPeer, kUplink}) {
    Bytes p = eth.udp({src, kRemote}, 40002, 53, {});
    EXPECT_EQ(snat(p).out, p) << src;
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NOT_INSIDE), 2u) << dp.nonzero_reasons();
}

// At the LWT hook a LAN packet netfilter masqueraded to the gateway's address is NAPT'ed with
// the inside set; a later fragment whose first fragment left no memory is judged the same way:
// dropped (it cannot be translated consistently), not passed with the gateway's source.
TEST_F(Inside, ALaterFragmentOfAMasqueradedDatagramIsJudgedLikeItsFirst) {
  constexpr uint32_t kLanDev = 9;  // no ipsnat device: the packet was forwarded from the LAN
  auto frag = [&](uint16_t id, uint16_t off_bytes, bool more) {
    Ipv4Spec s{kUplink, kRemote, kUdp, 64, id};
    s.frag_off = static_cast<uint16_t>((more ? 0x2000 : 0) | (off_bytes / 8));
    return s;
  };
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  Bytes head = l4_of(eth.udp({kUplink, kRemote}, 40000, 53, Bytes(40, 1)), 14);
  auto first = dp.run_forwarded(lwt, eth.ipv4(frag(0x61, 0, true), head), kLanDev);
  EXPECT_EQ(first.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  auto later = dp.run_forwarded(lwt, eth.ipv4(frag(0x62, 48, false), Bytes(40, 2)), kLanDev);
  EXPECT_EQ(later.retval, unsigned(BPF_DROP));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_FRAG_NO_FIRST), 1u) << dp.nonzero_reasons();
}

// Policy mode beside a netfilter masquerade rule: each fragment lwt_snat_xmit translates and
// reroutes meets POSTROUTING again in xfrm4_output, where netfilter applies the masquerade binding
// once more (source back to the uplink's address) and, not looking at the fragment offset, writes
// a later fragment's first bytes as a UDP header's port and checksum; the fragment then passes the
// LWT hook a second time (lib/frag.h frag_head_guard). The second pass must put those bytes back.
// Both passes run on one CPU, nested: the test thread is pinned so that its two test runs do too.
TEST_F(Inside, NetfiltersSecondPassOverALaterFragmentIsUndone) {
  cpu_set_t old_set, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(old_set), &old_set), 0);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  struct RestoreAffinity {
    cpu_set_t set;
    ~RestoreAffinity() { sched_setaffinity(0, sizeof(set), &set); }
  } restore{old_set};

  constexpr uint32_t kLanDev = 9;  // no ipsnat device: forwarded from the LAN
  auto frag = [&](const std::string& src, uint16_t id, uint16_t off_bytes, bool more) {
    Ipv4Spec s{src, kRemote, kUdp, 64, id};
    s.frag_off = static_cast<uint16_t>((more ? 0x2000 : 0) | (off_bytes / 8));
    return s;
  };
  Bytes data(64);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>('A' + i % 26);
  // What netfilter writes into a later fragment: bytes 0-1 (the "source port") and 6-7 (the
  // "checksum"), the rest of the payload unchanged.
  auto mangled = [](Bytes payload) {
    payload[0] = 0xaa, payload[1] = 0x86, payload[6] ^= 0x5a, payload[7] ^= 0xc3;
    return payload;
  };
  // LWT xmit sees no link-layer header: the IP packets are compared, and their header checksum.
  auto same_ip = [](const Bytes& got, const Bytes& want) {
    EXPECT_TRUE(verify_checksums(got, 14).ip_ok);
    return Bytes(got.begin() + 14, got.end()) == Bytes(want.begin() + 14, want.end());
  };
  auto* lwt = dp.skel()->progs.lwt_snat_xmit;
  Bytes head = l4_of(eth.udp({kUplink, kRemote}, 40000, 53, Bytes(40, 1)), 14);
  ASSERT_EQ(dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 0, true), head), kLanDev).retval,
            unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();

  auto first_pass = dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 48, false), data), kLanDev);
  ASSERT_EQ(first_pass.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  EXPECT_TRUE(same_ip(first_pass.out, eth.ipv4(frag(kNat, 0x71, 48, false), data)));
  auto second_pass = dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 48, false), mangled(data)), kLanDev);
  EXPECT_EQ(second_pass.retval, unsigned(BPF_LWT_REROUTE));
  EXPECT_TRUE(same_ip(second_pass.out, first_pass.out));
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_FRAG), 2u) << dp.nonzero_reasons();

  // The second pass used the kept bytes up: the same fragment once more is a first pass, and a
  // fragment of another offset or datagram never takes them.
  auto again = dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 48, false), mangled(data)), kLanDev);
  EXPECT_TRUE(same_ip(again.out, eth.ipv4(frag(kNat, 0x71, 48, false), mangled(data))));
  dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 48, true), data), kLanDev);
  auto other_offset = dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x71, 112, false), mangled(data)), kLanDev);
  EXPECT_TRUE(same_ip(other_offset.out, eth.ipv4(frag(kNat, 0x71, 112, false), mangled(data))));

  // A last fragment shorter than the 8 bytes netfilter writes (which would make it drop the
  // fragment) leaves the first pass padded to 8 bytes behind its IP total length; the second pass
  // puts the bytes back and cuts the padding off.
  dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x73, 0, true), head), kLanDev);
  Bytes tail = {'x', 'y', 'z', '!'};
  auto short_first = dp.run_forwarded(lwt, eth.ipv4(frag(kUplink, 0x73, 48, false), tail), kLanDev);
  ASSERT_EQ(short_first.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
  Bytes padded = eth.ipv4(frag(kUplink, 0x73, 48, false), tail);
  padded.resize(padded.size() + 4);
  EXPECT_EQ(short_first.out.size(), padded.size());
  Bytes netfilters = Bytes(padded.begin() + 14 + 20, padded.end());
  netfilters = mangled(netfilters);
  std::copy(netfilters.begin(), netfilters.end(), padded.begin() + 14 + 20);
  auto short_second = dp.run_forwarded(lwt, padded, kLanDev);
  EXPECT_EQ(short_second.retval, unsigned(BPF_LWT_REROUTE));
  EXPECT_TRUE(same_ip(short_second.out, eth.ipv4(frag(kNat, 0x73, 48, false), tail)));

  // A LAN source (no netfilter NAT before the hook, so no second pass) is translated as it is.
  dp.run_forwarded(lwt, eth.ipv4(frag(kLan, 0x72, 0, true), l4_of(eth.udp({kLan, kRemote}, 40001, 53, Bytes(40, 1)), 14)),
                   kLanDev);
  dp.run_forwarded(lwt, eth.ipv4(frag(kLan, 0x72, 48, false), data), kLanDev);
  auto lan = dp.run_forwarded(lwt, eth.ipv4(frag(kLan, 0x72, 48, false), mangled(data)), kLanDev);
  EXPECT_TRUE(same_ip(lan.out, eth.ipv4(frag(kNat, 0x72, 48, false), mangled(data))));
}

// Decrypted on the uplink of policy-based SAs (reqid 7).
class Unsolicited : public Inside {
 protected:
  Unsolicited() : Inside(7) {}
};

TEST_F(Unsolicited, DecryptedPacketsIntoTheLanAreDroppedUnlessReplies) {
  // A flow out (made on the route-mode path), then the device becomes a policy-mode uplink.
  snat(eth.tcp({kLan, kRemote}, 40000, 80, kSyn, {}));
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  Bytes synack = eth.tcp({kRemote, kNat, kTcp, 60, 1}, 80, 40000, kSyn | kAck, {});
  auto r = rev(synack);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_SAME_PACKET(r.out, eth.tcp({kRemote, kLan, kTcp, 60, 1}, 80, 40000, kSyn | kAck, {}));

  // The peer's own probes into both LANs and to the gateway's LAN address: SYN, UDP, ping,
  // a stray ACK, an ICMP error about nothing ipsnat knows.
  std::vector<Bytes> probes = {
      eth.tcp({kRemote, kLan}, 50000, 22, kSyn, {}),
      eth.tcp({kRemote, kLanB}, 50000, 22, kAck, {}),
      eth.udp({kRemote, kLanB}, 50000, 53, {}),
      eth.icmp_echo({kRemote, kGwLan, kIcmp}, 8, 1, 1, {}),
      eth.icmp_error({kRemote, kLan, kIcmp}, 3, 3, PacketBuilder(false).udp({kLan, kRemote}, 1234, 53, {})),
  };
  for (const auto& p : probes) EXPECT_EQ(rev(p).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_UNSOLICITED), probes.size()) << dp.nonzero_reasons();

  // Not into an inside prefix nor to the gateway: another address of the far side's selector.
  Bytes p = eth.udp({kRemote, "10.20.30.9"}, 50000, 53, {});
  r = rev(p);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, p);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 1u) << dp.nonzero_reasons();
}

// The gateway's own addresses outside the LANs on a policy-mode uplink: its virtual IP, which
// the IKE daemon's policy protects towards the sender, is the kernel's business; its public
// address only ipsnat's fwd companion (for replies to masqueraded LAN flows, which have an
// entry) would admit, so a decrypted packet to it that explains nothing (a netfilter DNAT
// port-forward would carry it into the LAN) is dropped.
TEST_F(Unsolicited, DecryptedPacketsToTheUplinksOwnAddressAreDroppedUnlessAPolicyProtectsIt) {
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  dp.set_inside(kNat + "/32", INSIDE_LOCAL);
  std::vector<Bytes> to_uplink = {
      eth.tcp({kRemote, kUplink}, 50000, 8080, kSyn, {}),
      eth.udp({kRemote, kUplink}, 50000, 8080, {}),
      eth.icmp_echo({kRemote, kUplink, kIcmp}, 8, 1, 1, {}),
  };
  for (const auto& p : to_uplink) EXPECT_EQ(rev(p).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_UNSOLICITED), to_uplink.size()) << dp.nonzero_reasons();

  std::vector<Bytes> to_vip = {
      eth.tcp({kRemote, kNat}, 50000, 22, kSyn, {}),
      eth.icmp_echo({kRemote, kNat, kIcmp}, 8, 1, 1, {}),
  };
  for (const auto& p : to_vip) {
    auto r = rev(p);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_EQ(r.out, p);
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_UNSOLICITED), to_uplink.size()) << dp.nonzero_reasons();

  // An xfrm interface's own in-policies decide there (with its if_id): not this check.
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  EXPECT_EQ(rev(to_uplink[1]).retval, TC_ACT_UNSPEC);
}

// A LAN the IKE daemon's own policy tunnels as it is (site-to-site without NAT): the far side's
// connections to its hosts are the kernel's business, as before attach (its in/fwd policies
// decide); the other LAN, reachable only through ipsnat's companions, stays closed.
TEST_F(Unsolicited, ALanTunneledAsItIsStaysTheKernelsBusiness) {
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  install_policy(dp, tunnel_policy(spd::Dir::Out, "172.16.0.0/20", "10.0.0.0/8", 41, 100));
  Bytes p = eth.tcp({kRemote, kLanB}, 50000, 22, kSyn, {});
  auto r = rev(p);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, p);
  EXPECT_EQ(rev(eth.tcp({kRemote, kLan}, 50000, 22, kSyn, {})).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
}

// An xfrm interface keeps the sec path for its own fwd check, which the companions with its
// if_id would pass: the same door, closed the same way.
TEST_F(Unsolicited, AnXfrmInterfacesDecryptedPacketsIntoTheLanAreDroppedToo) {
  Bytes p = eth.tcp({kRemote, kLan}, 50000, 22, kSyn, {});
  EXPECT_EQ(rev(p).retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_UNSOLICITED), 1u) << dp.nonzero_reasons();
}

TEST_F(Inside, CleartextIntoTheLanIsNotDecidedHere) {
  // Not decrypted: the kernel's own policies decide (a companion requires an SA).
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  Bytes p = eth.tcp({kRemote, kLan}, 50000, 22, kSyn, {});
  EXPECT_EQ(rev(p).out, p);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_CT), 1u) << dp.nonzero_reasons();
}

}  // namespace
}  // namespace ipsnat::test
