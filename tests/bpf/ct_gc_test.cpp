// The userspace GC over the datapath's real maps: flows created by packets, swept at chosen
// times, both directions always deleted together.
#include <arpa/inet.h>
#include <unistd.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "pins/ct_map.h"
#include "ct/flow_view.h"
#include "pins/ct_gc.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

constexpr uint64_t kSec = 1000000000ull;

class CtGcTest : public ::testing::Test {
 protected:
  CtGcTest() : maps(dp.ct_fd(), dp.cfg_fd()) {
    install_nat_target(dp, "10.0.0.0/8", napt_target("10.20.30.2", "192.168.1.0/24"));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  Datapath dp;
  pins::CtMaps maps;
  PacketBuilder eth;
};

TEST_F(CtGcTest, ExpiredFlowsLoseBothEntriesLiveOnesKeepThem) {
  ipsnat_config cfg{};
  cfg.udp_s = 30;
  cfg.tcp_syn_s = 120;
  dp.set_config(cfg);
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {}));
  dp.run(dp.skel()->progs.tc_snat_egress, eth.tcp({"192.168.1.11", "10.0.0.1"}, 40000, 80, 0x02, {}));
  ASSERT_EQ(dp.ct_all().size(), 4u);
  uint64_t now = pins::boottime_ns();
  pins::CtGc gc(maps);

  auto r = gc.sweep(now + 10 * kSec);
  EXPECT_EQ(r.flows, 2u);
  EXPECT_EQ(r.removed, 0u);
  EXPECT_EQ(dp.ct_all().size(), 4u);

  r = gc.sweep(now + 60 * kSec);  // UDP (30 s) expired, TCP SYN_SENT (120 s) not
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.entries_deleted, 2u);
  auto left = dp.ct_all();
  ASSERT_EQ(left.size(), 2u);
  for (auto& [k, e] : left) EXPECT_EQ(k.proto, 6);

  // The freed NAT port is usable again by another inside host.
  dp.set_port_range(5353, 5353);
  auto again = dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.12", "10.0.0.1"}, 5353, 53, {}));
  EXPECT_EQ(again.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();

  r = gc.sweep(now + 1000 * kSec);
  EXPECT_EQ(r.removed, 2u);
  EXPECT_TRUE(dp.ct_all().empty());
}

TEST_F(CtGcTest, AHalfFlowIsReclaimedAndAnotherFlowsEntryIsSpared) {
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {}));
  auto reply_key = ct_key("10.0.0.1", "10.20.30.2", 53, 5353, 17, IPSNAT_CT_REPLY);
  ASSERT_TRUE(maps.erase(reply_key));  // as if a race had left the ORIG entry alone
  // Another host now owns that NAT port towards the same remote endpoint.
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.11", "10.0.0.1"}, 5353, 53, {}));
  auto owner = dp.ct_get(reply_key);
  ASSERT_TRUE(owner);
  EXPECT_EQ(owner->xlat_addr, parse_ipv4("192.168.1.11"));
  // Age only the first flow: rewrite its timestamp into the past.
  auto orig_key = ct_key("192.168.1.10", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG);
  auto e = dp.ct_get(orig_key);
  e->last_ns = 1;
  bpf_map_update_elem(dp.ct_fd(), &orig_key, &*e, BPF_EXIST);
  auto r = pins::CtGc(maps).sweep(pins::boottime_ns());
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.entries_deleted, 1u);
  EXPECT_FALSE(dp.ct_get(orig_key));
  EXPECT_TRUE(dp.ct_get(reply_key));
  EXPECT_TRUE(dp.ct_get(ct_key("192.168.1.11", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG)));
}

TEST_F(CtGcTest, RemoveIfDeletesBothEntriesOfTheSelectedFlowsOnly) {
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {}));
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5354, 123, {}));
  dp.run(dp.skel()->progs.tc_snat_egress, eth.tcp({"192.168.1.11", "10.0.0.1"}, 40000, 80, 0x02, {}));
  ASSERT_EQ(dp.ct_all().size(), 6u);
  ct::FlowFilter udp_53;
  udp_53.proto = 17;
  udp_53.port = 53;
  auto r = pins::CtGc(maps).remove_if([&](const ct::Flow& f) { return udp_53.matches(f); });
  EXPECT_EQ(r.flows, 3u);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.entries_deleted, 2u);
  EXPECT_FALSE(dp.ct_get(ct_key("192.168.1.10", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG)));
  EXPECT_FALSE(dp.ct_get(ct_key("10.0.0.1", "10.20.30.2", 53, 5353, 17, IPSNAT_CT_REPLY)));
  EXPECT_EQ(dp.ct_all().size(), 4u);
  // The flow's next packet binds anew.
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {}));
  EXPECT_TRUE(dp.ct_get(ct_key("192.168.1.10", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG)));
  EXPECT_TRUE(dp.ct_get(ct_key("10.0.0.1", "10.20.30.2", 53, 5353, 17, IPSNAT_CT_REPLY)));
}

// The datapath creates a flow REPLY first, then ORIG: a removal that finds the REPLY alone and
// deletes it must not leave the ORIG that lands meanwhile (it would translate outgoing packets,
// stay fresh through them, and its replies would find no entry).
TEST_F(CtGcTest, RemoveIfTakesTheOrigEntryThatLandsAfterItReadAHalfFlow) {
  dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {}));
  auto orig_key = ct_key("192.168.1.10", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG);
  auto orig = dp.ct_get(orig_key);
  ASSERT_TRUE(orig);
  ASSERT_TRUE(maps.erase(orig_key));  // mid-creation: the REPLY is in, the ORIG not yet
  int judged = 0;
  auto r = pins::CtGc(maps).remove_if([&](const ct::Flow& f) {
    // The second judgement is on the fresh read: the datapath's second insert lands right after.
    if (++judged == 2) {
      EXPECT_EQ(bpf_map_update_elem(dp.ct_fd(), &orig_key, &*orig, BPF_NOEXIST), 0);
    }
    return !f.orig;
  });
  EXPECT_EQ(judged, 2);
  EXPECT_EQ(r.removed, 1u);
  EXPECT_EQ(r.entries_deleted, 2u);
  EXPECT_TRUE(dp.ct_all().empty());
}

// The datapath's clock (ct_now in bpf/lib/ct.h) reads CLOCK_BOOTTIME about once per jiffy: a
// packet's time is the GC's clock within a few jiffies, and it follows that clock as it moves.
TEST_F(CtGcTest, EntryTimesFollowTheBoottimeClockWithinJiffies) {
  constexpr uint64_t kSlack = 50000000ull;  // 50 ms: a few jiffies at any HZ, and scheduling
  auto key = ct_key("192.168.1.10", "10.0.0.1", 5353, 53, 17, IPSNAT_CT_ORIG);
  auto send = [&] { dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({"192.168.1.10", "10.0.0.1"}, 5353, 53, {})); };
  for (int round = 0; round < 3; ++round) {
    uint64_t before = pins::boottime_ns();
    send();
    uint64_t after = pins::boottime_ns();
    auto e = dp.ct_get(key);
    ASSERT_TRUE(e);
    EXPECT_GE(e->last_ns + kSlack, before) << "round " << round;
    EXPECT_LE(e->last_ns, after) << "round " << round;
    usleep(200000);
  }
}

}  // namespace
}  // namespace ipsnat::test
