// The conntrack summary behind `ipsnat status` and the metrics (loader/state/ct_summary.h): flows
// by protocol per table, NAT ports in use and the busiest remote endpoint per NAT address of
// either family, traffic by reqid across both tables.
#include "state/ct_summary.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace ipsnat::state {
namespace {

uint32_t ip4(const char* s) {
  in_addr a{};
  EXPECT_EQ(1, inet_pton(AF_INET, s, &a)) << s;
  return a.s_addr;
}

void ip6(const char* s, uint8_t out[16]) { EXPECT_EQ(1, inet_pton(AF_INET6, s, out)) << s; }

// Both entries of an IPv4 flow inside:sport -> remote:dport translated to nat:nat_port, each
// direction with `packets` packets of 100 bytes.
void flow4(std::vector<ct::Entry>& out, const char* inside, const char* remote, uint16_t sport, uint16_t dport,
           uint8_t proto, const char* nat, uint16_t nat_port, uint32_t reqid, uint64_t packets = 1) {
  ct::Entry o, r;
  o.key = {ip4(inside), ip4(remote), htons(sport), htons(dport), proto, IPSNAT_CT_ORIG, {0, 0}};
  o.value.xlat_addr = ip4(nat);
  o.value.xlat_port = htons(nat_port);
  o.value.reqid = reqid;
  o.value.packets = packets;
  o.value.bytes = 100 * packets;
  r.key = ct_partner_key(&o.key, &o.value);
  r.value = o.value;
  r.value.xlat_addr = o.key.saddr;
  r.value.xlat_port = o.key.sport;
  out.push_back(o);
  out.push_back(r);
}

// The same for a NAT66 flow (ipsnat_ct6).
void flow6(std::vector<ct::Entry6>& out, const char* inside, const char* remote, uint16_t sport, uint16_t dport,
           uint8_t proto, const char* nat, uint16_t nat_port, uint32_t reqid, uint64_t packets = 1) {
  ct::Entry6 o, r;
  ip6(inside, o.key.saddr);
  ip6(remote, o.key.daddr);
  o.key.sport = htons(sport);
  o.key.dport = htons(dport);
  o.key.proto = proto;
  o.key.dir = IPSNAT_CT_ORIG;
  ip6(nat, o.value.xlat_addr);
  o.value.xlat_port = htons(nat_port);
  o.value.kind = IPSNAT_CT_KIND_NAT66;
  o.value.reqid = reqid;
  o.value.packets = packets;
  o.value.bytes = 100 * packets;
  r.key = ct6_partner_key(&o.key, &o.value);
  r.value = o.value;
  std::memcpy(r.value.xlat_addr, o.key.saddr, 16);
  r.value.xlat_port = o.key.sport;
  out.push_back(o);
  out.push_back(r);
}

TEST(CtSummary, Ipv4FlowsByProtocolPortsAndBusiestEndpoint) {
  std::vector<ct::Entry> v4;
  // Two hosts to one remote endpoint, one to another, an echo: all as 10.20.30.2.
  flow4(v4, "192.168.1.10", "10.0.0.1", 5000, 53, IPPROTO_UDP, "10.20.30.2", 5000, 1, 2);
  flow4(v4, "192.168.1.11", "10.0.0.1", 5000, 53, IPPROTO_UDP, "10.20.30.2", 5001, 1, 3);
  flow4(v4, "192.168.1.10", "10.0.0.2", 40000, 443, IPPROTO_TCP, "10.20.30.2", 40000, 1);
  flow4(v4, "192.168.1.10", "10.0.0.1", 7, 0, IPPROTO_ICMP, "10.20.30.2", 7, 1);
  // Another NAT address of a pool, another policy, a protocol without ports.
  flow4(v4, "192.168.2.10", "10.0.0.1", 0, 0, 47, "10.20.30.3", 0, 4);
  ConntrackSummary s;
  add_entries(s, v4);
  EXPECT_FALSE(s.ipv6);
  EXPECT_EQ(10u, s.ipv4.entries);
  EXPECT_EQ(5u, s.ipv4.flows);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"tcp", 1}, {"udp", 2}, {"icmp", 1}, {"other", 1}}), s.ipv4.by_proto);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"10.20.30.2", 4}, {"10.20.30.3", 1}}), s.ports_in_use);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"10.20.30.2", 2}, {"10.20.30.3", 1}}), s.busiest_endpoint);
  ASSERT_EQ(2u, s.by_reqid.size());
  EXPECT_EQ(4u, s.by_reqid[1].flows);
  EXPECT_EQ(2u * (2 + 3 + 1 + 1), s.by_reqid[1].packets);  // both directions
  EXPECT_EQ(100u * 2 * (2 + 3 + 1 + 1), s.by_reqid[1].bytes);
  EXPECT_EQ(1u, s.by_reqid[4].flows);
}

// NAT66 flows through a pool of two NAT66 addresses, next to an IPv4 flow of the same policy.
TEST(CtSummary, Ipv6FlowsPerNat66AddressBesideIpv4) {
  std::vector<ct::Entry> v4;
  flow4(v4, "172.16.66.10", "10.66.9.1", 7304, 7304, IPPROTO_UDP, "10.66.0.2", 7304, 2);
  std::vector<ct::Entry6> v6;
  // Two hosts with one source port towards one server: two NAT ports on 2001:db8:66::5.
  flow6(v6, "fd00:66:1::a", "2001:db8:e66::1", 40066, 7303, IPPROTO_UDP, "2001:db8:66::5", 40066, 2);
  flow6(v6, "fd00:66:1::b", "2001:db8:e66::1", 40066, 7303, IPPROTO_UDP, "2001:db8:66::5", 1025, 2);
  flow6(v6, "fd00:66:1::b", "2001:db8:e66::1", 50000, 7302, IPPROTO_TCP, "2001:db8:66::5", 50000, 2);
  // ICMPv6 echo (id 9) on the pool's other address, and the same id of the same host to another
  // remote: one binding each.
  flow6(v6, "fd00:66:1::a", "2001:db8:e66::1", 9, 0, IPPROTO_ICMPV6, "2001:db8:66::6", 9, 2);
  flow6(v6, "fd00:66:1::a", "2001:db8:e66::2", 9, 0, IPPROTO_ICMPV6, "2001:db8:66::6", 9, 2);
  ConntrackSummary s;
  add_entries(s, v4);
  add_entries(s, v6);
  EXPECT_EQ(2u, s.ipv4.entries);
  EXPECT_EQ(1u, s.ipv4.flows);
  ASSERT_TRUE(s.ipv6);
  EXPECT_EQ(10u, s.ipv6->entries);
  EXPECT_EQ(5u, s.ipv6->flows);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"tcp", 1}, {"udp", 2}, {"icmpv6", 2}}), s.ipv6->by_proto);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"udp", 1}}), s.ipv4.by_proto);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"10.66.0.2", 1}, {"2001:db8:66::5", 3}, {"2001:db8:66::6", 2}}),
            s.ports_in_use);
  EXPECT_EQ((std::map<std::string, uint64_t>{{"10.66.0.2", 1}, {"2001:db8:66::5", 2}, {"2001:db8:66::6", 1}}),
            s.busiest_endpoint);
  ASSERT_EQ(1u, s.by_reqid.size());
  EXPECT_EQ(6u, s.by_reqid[2].flows);
  EXPECT_EQ(12u, s.by_reqid[2].packets);
  EXPECT_EQ(1200u, s.by_reqid[2].bytes);
}

// A walk restarted by a key deleted under it visits keys again: each key counts once.
TEST(CtSummary, AKeySeenTwiceCountsOnce) {
  std::vector<ct::Entry6> v6;
  flow6(v6, "fd00::a", "2001:db8::1", 1000, 53, IPPROTO_UDP, "2001:db8:66::5", 1000, 3);
  flow6(v6, "fd00::b", "2001:db8::1", 1000, 53, IPPROTO_UDP, "2001:db8:66::5", 1001, 3);
  std::vector<ct::Entry6> walked = {v6[0], v6[1], v6[2], v6[0], v6[1], v6[3], v6[2]};
  ConntrackSummary s;
  add_entries(s, walked);
  EXPECT_EQ(4u, s.ipv6->entries);
  EXPECT_EQ(2u, s.ipv6->flows);
  EXPECT_EQ(2u, s.ports_in_use["2001:db8:66::5"]);
  EXPECT_EQ(2u, s.busiest_endpoint["2001:db8:66::5"]);
  EXPECT_EQ(4u, s.by_reqid[3].packets);
}

TEST(CtSummary, AnEmptyIpv6TableIsThereWithNoFlows) {
  ConntrackSummary s;
  add_entries(s, std::vector<ct::Entry6>{});
  ASSERT_TRUE(s.ipv6);
  EXPECT_EQ(0u, s.ipv6->flows);
  EXPECT_TRUE(s.ports_in_use.empty());
  EXPECT_TRUE(s.by_reqid.empty());
}

}  // namespace
}  // namespace ipsnat::state
