// The test seam every bpf test stands on (support/datapath.cpp): a finished test's loaded object
// serves the next Datapath, and that one must see the object as a fresh load leaves it — no
// conntrack entry, no counter, no SPD, no device, no configuration of the test before.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <vector>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

size_t map_keys(bpf_map* map) {
  std::vector<uint8_t> key(bpf_map__key_size(map)), next(key.size());
  size_t n = 0;
  for (void* prev = nullptr; n <= bpf_map__max_entries(map); prev = key.data(), ++n) {
    if (bpf_map_get_next_key(bpf_map__fd(map), prev, next.data()) != 0) break;
    key = next;
  }
  return n;
}

TEST(DatapathReuse, TheNextTestGetsTheSameObjectEmptied) {
  uint32_t used_prog = 0;
  {
    Datapath dp;
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
    dp.set_port_range(40000, 40010);
    dp.set_inside("192.168.1.0/24", 0);
    ASSERT_GT(map_keys(dp.skel()->maps.spd_dst), 0u);
    ASSERT_EQ(map_keys(dp.skel()->maps.ipsnat_inside), 1u);
    PacketBuilder eth;
    auto r = dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({kLan, kRemote}, 5353, 53, {}));
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    ASSERT_EQ(dp.ct_all().size(), 2u);
    ASSERT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 1u);
    used_prog = program_id(dp.skel()->progs.tc_snat_egress);
  }
  Datapath dp;
  EXPECT_EQ(program_id(dp.skel()->progs.tc_snat_egress), used_prog) << "not the finished test's object";
  EXPECT_TRUE(dp.ct_all().empty());
  EXPECT_EQ(dp.nonzero_reasons(), "");
  uint32_t zero = 0;
  ipsnat_config cfg{};
  ASSERT_EQ(0, bpf_map_lookup_elem(dp.cfg_fd(), &zero, &cfg));
  EXPECT_EQ(cfg.port_min, 0);
  EXPECT_EQ(cfg.port_max, 0);
  for (bpf_map* m : {dp.skel()->maps.spd_dst, dp.skel()->maps.ipsnat_inside})
    EXPECT_EQ(map_keys(m), 0u) << bpf_map__name(m);
  // The same packet with nothing installed: no policy, no device, so nothing is translated.
  PacketBuilder eth;
  Bytes p = eth.udp({kLan, kRemote}, 5353, 53, {});
  auto r = dp.run(dp.skel()->progs.tc_snat_egress, p);
  EXPECT_EQ(r.out, p);
  EXPECT_TRUE(dp.ct_all().empty());
}

}  // namespace
}  // namespace ipsnat::test
