// The SPD mirror's NAT66 rules (ipsnat_npt6, loader/spd/npt6.h) for IPv6 out-policies bound to an
// xfrm interface's if_id, as this machine's kernel holds and reports them over netlink (added with
// `ip xfrm policy add ... if_id`, in a fresh namespace); the datapath then translates by those
// rules (tc_snat_egress on a route-mode device of that if_id, BPF_PROG_TEST_RUN). No traffic
// test: this kernel has no xfrm interface device (`ip link add xi0 type xfrm if_id 9` answers
// "Unknown device type"), and the kernel looks up policies of an if_id only for packets through
// one, so no ACQUIRE can name them here.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstring>

#include "maps/npt6.h"
#include "maps/spd.h"
#include "mirror/mirror.h"
#include "support/datapath.h"
#include "support/ipv6_packet.h"
#include "support/netns_guard.h"
#include "support/packet.h"
#include "support/spd_kernel.h"

namespace ipsnat::test {
namespace {

constexpr uint32_t kIfId = 9;
constexpr size_t kL3 = 14;  // PacketBuilder's Ethernet header
constexpr uint8_t kTcp = 6, kUdp = 17;

const char* kTmpl = "tmpl src 2001:db8:ff::2 dst 2001:db8:ff::1 proto esp mode tunnel reqid 3";

// The policy index of the NAT66 rule the datapath finds for `remote` on if_id kIfId (0: none).
uint32_t rule_for(Datapath& dp, const std::string& remote) {
  npt6_key k{};
  k.prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128;
  k.if_id = kIfId;
  k.dir = NPT6_OUT;
  EXPECT_EQ(inet_pton(AF_INET6, remote.c_str(), k.addr), 1);
  npt6_rule r{};
  return bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.ipsnat_npt6), &k, &r) == 0 ? r.policy_index : 0;
}

// A LAN flow's packet through the device of if_id kIfId: the source it leaves with.
std::string leaves_as(Datapath& dp, const std::string& remote, uint8_t proto, uint16_t dport) {
  PacketBuilder eth;
  Bytes l4 = proto == kTcp ? tcp_header(40000, dport, 0x02) : udp_header(40000, dport, 8);
  RunResult r = dp.run(dp.skel()->progs.tc_snat_egress, eth.ipv6_l4("fd00:61:1::a", remote, proto, l4));
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
  return ipv6_at(r.out, kL3 + 8);
}

// A fresh namespace whose kernel SPD the mirror writes into the datapath's maps, for the LAN
// fd00:61:1::/64.
class SpdMirrorNpt6Netns : public ::testing::Test {
 protected:
  SpdMirrorNpt6Netns() { mirror.sync_once(); }

  static spd::NatConfig lan() {
    spd::NatConfig nat;
    nat.inside = {parse_prefix("fd00:61:1::/64")};
    return nat;
  }

  // An out-policy of if_id kIfId: `sel` as ip-xfrm writes a selector.
  void add(const std::string& sel, int priority) {
    ns.sh("ip xfrm policy add " + sel + " dir out priority " + std::to_string(priority) + " if_id " +
          std::to_string(kIfId) + " " + kTmpl);
  }

  Datapath dp;
  NetnsGuard ns{"npt6"};
  mirror::SpdMirror mirror{mirror::SpdMapFds::from_object(dp.skel()->obj), lan()};
};

}  // namespace

// tcp/443 to 2001:db8:e7::/48 (priority 100) ahead of a port-less policy to the same destination
// (200), and udp/53 to 2001:db8:e9:5::/64 inside a port-less 2001:db8:e9::/48: each port-less
// policy's rule translates every flow to its destination, the restricted ports' too (the
// interface's lookup then puts them under the port-less policy); tcp/22 to 2001:db8:eb::/48,
// alone on its destination, keeps its rule. Deleting the port-less /48 gives the udp/53 policy
// its rule back.
TEST_F(SpdMirrorNpt6Netns, APortRestrictedPolicyOfAnXfrmInterfaceTakesNoPortlessPolicysDestination) {
  add("src 2001:db8:b7::5/128 dst 2001:db8:e7::/48", 200);
  add("src 2001:db8:b8::6/128 dst 2001:db8:e7::/48 proto tcp dport 443", 100);
  add("src 2001:db8:b9::7/128 dst 2001:db8:e9::/48", 200);
  add("src 2001:db8:ba::8/128 dst 2001:db8:e9:5::/64 proto udp dport 53", 300);
  add("src 2001:db8:bb::9/128 dst 2001:db8:eb::/48 proto tcp dport 22", 100);
  ASSERT_TRUE(converge(mirror));
  auto index_of = [&](const std::string& src) {
    for (const auto& p : mirror.model().ordered())
      if (p->sel.src.str() == src) return p->index;
    ADD_FAILURE() << "no policy from " << src;
    return 0u;
  };
  EXPECT_EQ(rule_for(dp, "2001:db8:e7::1"), index_of("2001:db8:b7::5/128"));
  EXPECT_EQ(rule_for(dp, "2001:db8:e9:5::1"), index_of("2001:db8:b9::7/128"));
  EXPECT_EQ(rule_for(dp, "2001:db8:eb::1"), index_of("2001:db8:bb::9/128"));

  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE, kIfId, 0);
  EXPECT_EQ(leaves_as(dp, "2001:db8:e7::1", kTcp, 443), "2001:db8:b7::5");
  EXPECT_EQ(leaves_as(dp, "2001:db8:e7::1", kUdp, 7001), "2001:db8:b7::5");
  EXPECT_EQ(leaves_as(dp, "2001:db8:e9:5::1", kUdp, 123), "2001:db8:b9::7");
  EXPECT_EQ(leaves_as(dp, "2001:db8:eb::1", kTcp, 22), "2001:db8:bb::9");

  ns.sh("ip xfrm policy delete src 2001:db8:b9::7/128 dst 2001:db8:e9::/48 dir out if_id " + std::to_string(kIfId));
  ASSERT_TRUE(converge(mirror));
  EXPECT_EQ(rule_for(dp, "2001:db8:e9:5::1"), index_of("2001:db8:ba::8/128"));
}

// A policy restricted to a protocol alone (tcp to 2001:db8:f1:2::/64) inside an unrestricted
// policy's destination takes no rule: the unrestricted one's translates its udp flows too.
// Restricted policies that need different addresses on overlapping destinations (tcp/443 and
// udp/53 to 2001:db8:f4::/48; udp to 2001:db8:f6::/48 holding tcp/22 to 2001:db8:f6:7::/64) take
// none there: their flows leave untranslated, as without ipsnat, not with an address no policy
// covers for them. Two that need the same address (2001:db8:c8::8) share the rule. Deleting udp/53
// to 2001:db8:f4::/48 gives tcp/443 its rule back.
TEST_F(SpdMirrorNpt6Netns, RestrictedPoliciesThatNeedDifferentAddressesTakeNoRuleOnTheirDestination) {
  add("src 2001:db8:c1::1/128 dst 2001:db8:f1::/48", 200);
  add("src 2001:db8:c2::2/128 dst 2001:db8:f1:2::/64 proto tcp", 100);
  add("src 2001:db8:c4::4/128 dst 2001:db8:f4::/48 proto tcp dport 443", 100);
  add("src 2001:db8:c5::5/128 dst 2001:db8:f4::/48 proto udp dport 53", 200);
  add("src 2001:db8:c6::6/128 dst 2001:db8:f6::/48 proto udp", 100);
  add("src 2001:db8:c7::7/128 dst 2001:db8:f6:7::/64 proto tcp dport 22", 100);
  add("src 2001:db8:c8::8/128 dst 2001:db8:f8::/48 proto tcp dport 443", 100);
  add("src 2001:db8:c8::8/128 dst 2001:db8:f8::/48 proto udp dport 53", 200);
  ASSERT_TRUE(converge(mirror));

  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE, kIfId, 0);
  EXPECT_EQ(leaves_as(dp, "2001:db8:f1:2::1", kUdp, 53), "2001:db8:c1::1");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f1:2::1", kTcp, 443), "2001:db8:c1::1");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f4::1", kUdp, 53), "fd00:61:1::a");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f4::1", kTcp, 443), "fd00:61:1::a");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f6:7::1", kUdp, 53), "fd00:61:1::a");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f6:7::1", kTcp, 22), "fd00:61:1::a");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f6:8::1", kUdp, 53), "fd00:61:1::a");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f8::1", kTcp, 443), "2001:db8:c8::8");
  EXPECT_EQ(leaves_as(dp, "2001:db8:f8::1", kUdp, 53), "2001:db8:c8::8");

  ns.sh("ip xfrm policy delete src 2001:db8:c5::5/128 dst 2001:db8:f4::/48 proto udp dport 53 dir out if_id " +
        std::to_string(kIfId));
  ASSERT_TRUE(converge(mirror));
  EXPECT_EQ(leaves_as(dp, "2001:db8:f4::1", kTcp, 443), "2001:db8:c4::4");
}

// The gateway's addresses change (the daemon's SpdMirror::set_local on an address event): an
// address outside every pool changes neither the SPD version nor a flow's address; one that
// becomes the gateway's own inside the pool (the address an established flow was translated to)
// narrows the pool and is published as a new SPD version, so that flow's next packet leaves from
// another address of the pool (bpf/lib/nat66.h checks an established flow's address against its
// rule again under a new version).
TEST_F(SpdMirrorNpt6Netns, AnAddressThatBecomesTheGatewaysOwnMovesAnEstablishedFlowOffIt) {
  add("src 2001:db8:d5::100/120 dst 2001:db8:e5::/48", 100);
  ASSERT_TRUE(converge(mirror));
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE, kIfId, 0);
  auto version = [&] {
    uint32_t zero = 0;
    spd_active a{};
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &a), 0);
    return a.version;
  };
  auto in_pool = [](const std::string& a) {
    Address x = parse_address(a);
    return parse_prefix("2001:db8:d5::100/120").contains(x) && x != parse_address("2001:db8:d5::100");
  };
  std::string first = leaves_as(dp, "2001:db8:e5::1", kUdp, 53);
  ASSERT_TRUE(in_pool(first)) << first;
  uint64_t before = version();

  mirror.set_local({parse_address("2001:db8:99::1"), parse_address("198.51.100.1")});
  EXPECT_EQ(version(), before);
  EXPECT_EQ(leaves_as(dp, "2001:db8:e5::1", kUdp, 53), first);

  mirror.set_local({parse_address("2001:db8:99::1"), parse_address(first)});
  EXPECT_GT(version(), before);
  std::string moved = leaves_as(dp, "2001:db8:e5::1", kUdp, 53);
  EXPECT_NE(moved, first);
  EXPECT_TRUE(in_pool(moved)) << moved;
  EXPECT_EQ(leaves_as(dp, "2001:db8:e5::1", kUdp, 53), moved);
}

}  // namespace ipsnat::test
