// NAPT over a pool of NAT addresses (maps/spd.h nat_span; docs/datapath.md "NAPT pools"): a LAN
// larger than the policy's source block, or a [[nat]] rule's range. The LAN 172.22.5.0/24 sits
// behind a policy whose source selector is 100.70.8.0/29 (the pool: all 8 addresses). Golden
// packets: each translated packet is rebuilt from scratch with the address the flow got and its
// checksums verified independently.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <map>
#include <set>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

const std::string kPoolLan = "172.22.5.", kPoolRemote = "10.44.0.9";
constexpr uint32_t kPoolFirst = 0x64460800;  // 100.70.8.0, host order
constexpr uint32_t kPoolSize = 8;

std::string addr_str(uint32_t be) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &be, buf, sizeof(buf));
  return buf;
}

bool in_pool(uint32_t be) { return ntohl(be) - kPoolFirst < kPoolSize; }

class NatPool : public ::testing::Test {
 protected:
  NatPool() {
    install_nat_target_from(dp, "100.70.8.0/29", "10.44.0.0/16", napt_pool_target("100.70.8.0", kPoolSize, "172.22.5.0/24", 5));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  RunResult snat(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  RunResult rev(const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p); }
  // The translation of the flow (host, remote) from sport to dport, read from its ORIG entry.
  std::optional<ipsnat_ct_entry> orig(const std::string& host, uint16_t sport, uint16_t dport, uint8_t proto = kUdp) {
    return dp.ct_get(ct_key(host, kPoolRemote, sport, dport, proto, IPSNAT_CT_ORIG));
  }

  Datapath dp;
  PacketBuilder eth;
};

TEST_F(NatPool, EachHostGetsOneAddressInsideTheBlockForAllItsFlows) {
  std::set<uint32_t> used;
  for (int h = 1; h <= 40; h++) {
    std::string host = kPoolLan + std::to_string(h);
    uint32_t first = 0;
    for (uint16_t dport : {53, 123, 443}) {
      Bytes payload(20, static_cast<uint8_t>(h));
      auto r = snat(eth.udp({host, kPoolRemote}, 6000, dport, payload));
      ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
      auto e = orig(host, 6000, dport);
      ASSERT_TRUE(e) << host;
      EXPECT_TRUE(in_pool(e->xlat_addr)) << host << " -> " << addr_str(e->xlat_addr);
      if (!first) first = e->xlat_addr;
      EXPECT_EQ(e->xlat_addr, first) << host << " changed its NAT address for dport " << dport;
      EXPECT_SAME_PACKET(r.out, eth.udp({addr_str(e->xlat_addr), kPoolRemote}, ntohs(e->xlat_port), dport, payload));
    }
    used.insert(first);
  }
  // Spread over the pool, not all on its first address.
  EXPECT_GE(used.size(), 6u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 120u);
}

TEST_F(NatPool, RepliesReachTheHostBehindEachAddress) {
  std::set<std::string> nats;
  // Three hosts that prefer three different addresses (maps/spd.h spd_nat_pool_pick: 2, 7, 0).
  for (int h : {3, 4, 200}) {
    std::string host = kPoolLan + std::to_string(h);
    auto r = snat(eth.tcp({host, kPoolRemote, kTcp, 64, 11}, 41000, 22, kSyn, {}));
    auto e = orig(host, 41000, 22, kTcp);
    ASSERT_TRUE(e) << dp.nonzero_reasons();
    std::string nat = addr_str(e->xlat_addr);
    nats.insert(nat);
    uint16_t port = ntohs(e->xlat_port);
    EXPECT_SAME_PACKET(r.out, eth.tcp({nat, kPoolRemote, kTcp, 64, 11}, port, 22, kSyn, {}));
    auto b = rev(eth.tcp({kPoolRemote, nat, kTcp, 60, 12}, 22, port, kSyn | kAck, Bytes(9, 0x61)));
    EXPECT_EQ(b.retval, TC_ACT_UNSPEC);
    EXPECT_SAME_PACKET(b.out, eth.tcp({kPoolRemote, host, kTcp, 60, 12}, 22, 41000, kSyn | kAck, Bytes(9, 0x61)));
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 3u);
  EXPECT_EQ(nats.size(), 3u);
}

// Two hosts that share an address and a source port towards one remote endpoint get two ports
// (a guard: single-address NAPT passes it too).
TEST_F(NatPool, HostsSharingAnAddressGetDistinctPorts) {
  std::map<uint32_t, std::string> first_host;
  for (int h = 1; h <= 40; h++) {
    std::string host = kPoolLan + std::to_string(h);
    snat(eth.udp({host, kPoolRemote}, 7000, 53, {}));
    auto e = orig(host, 7000, 53);
    ASSERT_TRUE(e);
    auto [it, fresh] = first_host.emplace(e->xlat_addr, host);
    if (fresh) continue;
    auto other = orig(it->second, 7000, 53);
    EXPECT_NE(e->xlat_port, other->xlat_port) << host << " and " << it->second << " on " << addr_str(e->xlat_addr);
    auto back = rev(eth.udp({kPoolRemote, addr_str(e->xlat_addr)}, 53, ntohs(e->xlat_port), {}));
    EXPECT_SAME_PACKET(back.out, eth.udp({kPoolRemote, host}, 53, 7000, {}));
    return;
  }
  FAIL() << "no two of 40 hosts share an address of 8";
}

// An address whose ports towards the remote endpoint are all taken sends the host's next flow to
// the next address of the pool, counted as nat-pool-address-full; after NAT_POOL_TRIES (4)
// addresses the flow is dropped (drop-no-port).
TEST_F(NatPool, ExhaustedAddressFallsOverToTheNextAndIsCounted) {
  dp.set_port_range(40000, 40001);
  const std::string host = kPoolLan + "9";
  std::vector<uint32_t> addr;
  for (uint16_t i = 0; i < 8; i++) {
    auto r = snat(eth.udp({host, kPoolRemote}, 5000 + i, 53, {}));
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << "flow " << i << ": " << dp.nonzero_reasons();
    auto e = orig(host, 5000 + i, 53);
    ASSERT_TRUE(e);
    EXPECT_TRUE(in_pool(e->xlat_addr));
    addr.push_back(e->xlat_addr);
  }
  // Two ports per address: flows 2k and 2k+1 share the k-th address tried, four different ones.
  for (int k = 0; k < 4; k++) EXPECT_EQ(addr[2 * k], addr[2 * k + 1]) << k;
  EXPECT_EQ(std::set<uint32_t>(addr.begin(), addr.end()).size(), 4u);
  EXPECT_EQ(ntohl(addr[2]), kPoolFirst + (ntohl(addr[0]) - kPoolFirst + 1) % kPoolSize);
  // Flows 3-4 found 1 full address, 5-6 two, 7-8 three.
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_NAT_POOL_ADDR_FULL), 2u * 1 + 2u * 2 + 2u * 3);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 0u);
  auto r = snat(eth.udp({host, kPoolRemote}, 5100, 53, {}));
  EXPECT_EQ(r.retval, TC_ACT_SHOT);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_DROP_NO_PORT), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_NAT_POOL_ADDR_FULL), 12u + 4u);
  // Another remote endpoint has all the ports again, on the host's own address.
  auto fresh = snat(eth.udp({host, kPoolRemote}, 5100, 54, {}));
  EXPECT_EQ(fresh.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(orig(host, 5100, 54)->xlat_addr, addr[0]);
}

// A source already inside the pool needs no translation (pass-already-ok); the addresses just
// below and above it are translated. The inside block here contains the pool, so every one of
// them reaches that decision.
TEST(NatPoolBounds, SourcesAlreadyInThePoolPassUntouched) {
  Datapath dp;
  PacketBuilder eth;
  install_nat_target_from(dp, "100.70.8.8/29", "10.44.0.0/16", napt_pool_target("100.70.8.8", 8, "100.70.0.0/16"));
  dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  for (const char* inside : {"100.70.8.8", "100.70.8.12", "100.70.8.15"}) {
    Bytes pkt = eth.udp({inside, kPoolRemote}, 5000, 53, {});
    EXPECT_EQ(dp.run(dp.skel()->progs.tc_snat_egress, pkt).out, pkt) << inside;
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_ALREADY_OK), 3u) << dp.nonzero_reasons();
  for (const char* outside : {"100.70.8.7", "100.70.8.16"}) {
    auto r = dp.run(dp.skel()->progs.tc_snat_egress, eth.udp({outside, kPoolRemote}, 5000, 53, {}));
    auto e = dp.ct_get(ct_key(outside, kPoolRemote, 5000, 53, kUdp, IPSNAT_CT_ORIG));
    ASSERT_TRUE(e) << outside << ": " << dp.nonzero_reasons();
    EXPECT_TRUE(ntohl(e->xlat_addr) - 0x64460808u < 8u) << outside;
  }
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_SNAT), 2u);
}

}  // namespace
}  // namespace ipsnat::test
