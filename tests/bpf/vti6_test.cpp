// IPv6 through a VTI beside a policy-mode uplink on golden packets: one destination,
// 2001:db8:e6e::/48, is covered by the VTI's marked policy (mark 42, the VTI's okey: NAT66 to
// 2001:db8:6e::5, or NPTv6 onto 2001:db8:6e:1::/64) and by the uplink's unmarked one (NAT66 to
// 2001:db8:6f::5), both bound to no interface (if_id 0). The rules come from the SPD mirror's own
// writer (loader/spd/npt6.*); tc_snat_egress of the VTI asks with the mark of its ipsnat_dev record,
// lwt_snat_xmit of the uplink with 0 (maps/npt6.h): each device takes its own policy's translation,
// whichever the kernel holds first. Checksums are recomputed whole by tests/support.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include "maps/stats.h"
#include "mirror/npt6_map.h"
#include "spd/model.h"
#include "support/datapath.h"
#include "support/ipv6_packet.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kUdp = 17, kIcmp6 = 58;
constexpr uint32_t kOkey = 42;
const std::string kVtiVip = "2001:db8:6e::5", kUplinkVip = "2001:db8:6f::5", kHost = "fd00:6e:1::a",
                  kRemote = "2001:db8:e6e::1";

uint16_t u16_at(const Bytes& pkt, size_t off) { return uint16_t(pkt[off] << 8 | pkt[off + 1]); }

spd::Policy vti_policy(const std::string& src, uint32_t priority) {
  spd::Policy p = ipv6_out_policy(31, src, "2001:db8:e6e::/48", 0);
  p.mark_v = kOkey;
  p.mark_m = 0xffffffff;
  p.priority = priority;
  return p;
}

spd::Policy uplink_policy(uint32_t priority) {
  spd::Policy p = ipv6_out_policy(32, kUplinkVip + "/128", "2001:db8:e6e::/48", 0);
  p.priority = priority;
  return p;
}

class Vti6 : public ::testing::Test {
 protected:
  Vti6() : dp(true) {}
  // The VTI's policy (source vti_src) and the uplink's, the VTI's first by priority or not.
  void policies(const std::string& vti_src, bool vti_first) {
    model = spd::SpdModel{};
    model.apply(spd::PolicyUpsert{vti_policy(vti_src, vti_first ? 100 : 200)});
    model.apply(spd::PolicyUpsert{uplink_policy(vti_first ? 200 : 100)});
    writer.write(model, inside);
  }
  // The test device as the VTI (route mode, its okey the mark) or as the uplink (policy mode).
  void as_vti(uint32_t flags = 0) {
    ipsnat_dev_cfg d{};
    d.mode = IPSNAT_DEV_ROUTE;
    d.mark = kOkey;
    d.flags = flags;
    dp.set_dev_cfg(Datapath::test_ifindex(), d);
  }
  void as_uplink() { dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY, 0, 0); }
  // What the VTI's TC egress, resp. the uplink's LWT xmit, makes of the LAN host's UDP packet's source.
  std::string via_vti(uint16_t sport) {
    as_vti(flags);
    RunResult r = dp.run(dp.skel()->progs.tc_snat_egress, eth.ipv6_l4(kHost, kRemote, kUdp, udp_header(sport, 53, 8)));
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3));
    return ipv6_at(r.out, kIpv6Src);
  }
  std::string via_uplink(uint16_t sport) {
    as_uplink();
    RunResult r = dp.run(dp.skel()->progs.lwt_snat_xmit, eth.ipv6_l4(kHost, kRemote, kUdp, udp_header(sport, 53, 8)));
    EXPECT_EQ(r.retval, unsigned(BPF_LWT_REROUTE)) << dp.nonzero_reasons();
    EXPECT_TRUE(ipv6_l4_checksum_ok(r.out, kIpv6L3));
    return ipv6_at(r.out, kIpv6Src);
  }

  Datapath dp;
  spd::SpdModel model;
  std::vector<Prefix> inside{ipsnat::parse_prefix("fd00:6e:1::/64")};
  mirror::Npt6Writer writer{bpf_map__fd(dp.skel()->maps.ipsnat_npt6)};
  PacketBuilder eth;
  uint32_t flags = 0;
};

TEST_F(Vti6, TheVtisMarkedNat66RuleIsTheVtisAndTheUplinksUnmarkedOneTheUplinks) {
  for (bool vti_first : {true, false}) {
    policies(kVtiVip + "/128", vti_first);
    uint16_t base = vti_first ? 41000 : 42000;
    EXPECT_EQ(via_vti(base), kVtiVip) << "VTI's policy first: " << vti_first;
    EXPECT_EQ(via_uplink(base + 1), kUplinkVip) << "VTI's policy first: " << vti_first;
  }
}

// The VTI's reply comes back through the VTI's rule and conntrack: the echo reply to its address
// reaches the LAN host.
TEST_F(Vti6, TheVtisReplyReturnsToTheLanHost) {
  policies(kVtiVip + "/128", false);
  as_vti();
  RunResult r = dp.run(dp.skel()->progs.tc_snat_egress, eth.ipv6_l4(kHost, kRemote, kIcmp6, icmp6_echo(128, 9)));
  ASSERT_EQ(ipv6_at(r.out, kIpv6Src), kVtiVip) << dp.nonzero_reasons();
  uint16_t id = u16_at(r.out, kIpv6L4 + 4);
  RunResult b = dp.run(dp.skel()->progs.tc_rev_ingress, eth.ipv6_l4(kRemote, kVtiVip, kIcmp6, icmp6_echo(129, id)));
  EXPECT_EQ(b.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
  EXPECT_EQ(ipv6_at(b.out, kIpv6Dst), kHost);
  EXPECT_TRUE(ipv6_l4_checksum_ok(b.out, kIpv6L3));
}

// NPTv6 (--binat) of the VTI's prefix policy: the VTI maps the LAN onto its prefix, the uplink
// keeps its NAT66, and a VTI without the okey (mark 0) finds the uplink's rule, not the VTI's.
TEST_F(Vti6, TheVtisMarkedNptv6RuleIsOnlyTheVtis) {
  flags = IPSNAT_DEV_BINAT;
  policies("2001:db8:6e:1::/64", false);
  std::string out = via_vti(43000);
  EXPECT_EQ(out.rfind("2001:db8:6e:1:", 0), 0u) << out;
  EXPECT_EQ(via_uplink(43001), kUplinkVip);
  ipsnat_dev_cfg d{};
  d.mode = IPSNAT_DEV_ROUTE;
  d.flags = IPSNAT_DEV_BINAT;
  dp.set_dev_cfg(Datapath::test_ifindex(), d);
  RunResult r = dp.run(dp.skel()->progs.tc_snat_egress, eth.ipv6_l4(kHost, kRemote, kUdp, udp_header(43002, 53, 8)));
  EXPECT_EQ(ipv6_at(r.out, kIpv6Src), kUplinkVip) << dp.nonzero_reasons();
  EXPECT_GE(dp.reason_packets(IPSNAT_R_XLATE_NPT6), 1u) << dp.nonzero_reasons();
}

}  // namespace
}  // namespace ipsnat::test
