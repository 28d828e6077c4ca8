// `ipsnat explain`'s logic (spd/explain.h) and the IPv6 reference it rests on (spd/reference.h):
// the flow parser's refusals, the kernel's IPv6 out-policy lookup, and what the datapath does to
// an IPv6 source (NAT66, NPTv6 only with --binat, nothing for a port-restricted policy on the
// uplink). The netns test t_explain_ipv6.sh holds the same answers against the kernel's ACQUIRE.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <tuple>

#include "spd/explain.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "unit/spd_policies.h"
#include "util/error.h"

namespace ipsnat::spd {
namespace {

using test::out_policy;

Policy out6(const char* src, const char* dst, uint32_t index, uint32_t priority) {
  Policy p = out_policy(src, dst, index);
  p.sel.family = AF_INET6;
  p.priority = priority;
  p.seq = index;  // inserted in index order
  return p;
}

Flow6 flow6(const char* s, const char* d, uint8_t proto = IPPROTO_UDP, uint16_t sport = 4000, uint16_t dport = 53) {
  Flow6 f;
  f.saddr = parse_address(s);
  f.daddr = parse_address(d);
  f.proto = proto;
  f.sport = sport;
  f.dport = dport;
  return f;
}

std::vector<const Policy*> ptrs(const std::vector<Policy>& v) {
  std::vector<const Policy*> out;
  for (const auto& p : v) out.push_back(&p);
  return out;
}

FlowArgs args(const char* src, const char* dst, uint8_t proto, std::optional<uint16_t> sport = std::nullopt,
              std::optional<uint16_t> dport = std::nullopt) {
  FlowArgs a;
  a.src = src;
  a.dst = dst;
  a.proto = proto;
  a.sport = sport;
  a.dport = dport;
  return a;
}

std::string refusal(const FlowArgs& a) {
  try {
    parse_flow(a);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(ExplainParse, Ipv6AddressesGiveAnIpv6Flow) {
  AnyFlow f = parse_flow(args("fd00:1::a", "2001:db8:e::1", IPPROTO_TCP, 40000, 443));
  ASSERT_TRUE(std::holds_alternative<Flow6>(f));
  const auto& f6 = std::get<Flow6>(f);
  EXPECT_EQ(f6.saddr, parse_address("fd00:1::a"));
  EXPECT_EQ(f6.dport, 443);
  EXPECT_EQ(f6.str(), "fd00:1::a -> 2001:db8:e::1 proto tcp 40000 443");
  EXPECT_TRUE(std::holds_alternative<Flow4>(parse_flow(args("192.0.2.1", "198.51.100.2", IPPROTO_UDP, 1, 2))));
}

TEST(ExplainParse, BadAddressIsRefusedByName) {
  EXPECT_NE(refusal(args("fd00:1::g", "2001:db8::1", IPPROTO_UDP)).find("'fd00:1::g'"), std::string::npos);
  EXPECT_NE(refusal(args("192.0.2.1", "192.0.2.300", IPPROTO_UDP)).find("'192.0.2.300'"), std::string::npos);
}

TEST(ExplainParse, MixedFamiliesAreRefused) {
  std::string why = refusal(args("192.0.2.1", "2001:db8::1", IPPROTO_UDP));
  EXPECT_NE(why.find("different address families"), std::string::npos) << why;
  EXPECT_NE(refusal(args("fd00::1", "198.51.100.2", IPPROTO_UDP)), "");
}

TEST(ExplainParse, IcmpHasNoPorts) {
  std::string why = refusal(args("fd00::1", "2001:db8::1", IPPROTO_ICMPV6, 1, std::nullopt));
  EXPECT_NE(why.find("has no ports"), std::string::npos) << why;
  EXPECT_NE(refusal(args("fd00::1", "2001:db8::1", IPPROTO_ICMPV6, std::nullopt, 0)), "");
  EXPECT_NE(refusal(args("192.0.2.1", "198.51.100.2", IPPROTO_ICMP, 8, std::nullopt)), "");
  EXPECT_EQ(refusal(args("fd00::1", "2001:db8::1", IPPROTO_ICMPV6)), "");
}

// Equal priority: the policy inserted first; a port-restricted one only for its port; a more
// specific destination does not beat a lower priority value.
TEST(ReferenceLookup6, PriorityThenAgeAndPorts) {
  std::vector<Policy> v{out6("::/0", "2001:db8:e2::/48", 1, 300), out6("2001:db8:a5::9/128", "2001:db8:e2::/48", 2, 300),
                        out6("::/0", "2001:db8:e2:1::/64", 3, 400), out6("::/0", "2001:db8:e2::/48", 4, 50)};
  v[3].sel.proto = IPPROTO_TCP;
  v[3].sel.dport = 443;
  v[3].sel.dport_mask = 0xffff;
  auto pols = ptrs(v);
  EXPECT_EQ(reference_lookup(pols, flow6("2001:db8:a5::9", "2001:db8:e2::1"))->index, 1u);
  EXPECT_EQ(reference_lookup(pols, flow6("2001:db8:a5::9", "2001:db8:e2:1::1"))->index, 1u);
  EXPECT_EQ(reference_lookup(pols, flow6("fd00::1", "2001:db8:e2::1", IPPROTO_TCP, 1, 443))->index, 4u);
  EXPECT_EQ(reference_lookup(pols, flow6("fd00::1", "2001:db8:e3::1")), nullptr);
  EXPECT_EQ(reference_mismatch(v[3], flow6("fd00::1", "2001:db8:e2::1")), "protocol tcp");
  EXPECT_EQ(reference_mismatch(v[3], flow6("fd00::1", "2001:db8:e2::1", IPPROTO_TCP, 1, 80)), "destination port");
  EXPECT_EQ(reference_mismatch(v[1], flow6("fd00::1", "2001:db8:e2::1")), "source not in 2001:db8:a5::9/128");
  // An IPv4 flow never matches an IPv6 policy.
  EXPECT_EQ(reference_mismatch(v[0], test::flow4("192.0.2.1", "198.51.100.1")), "another address family");
}

const std::vector<Prefix> kInside{parse_prefix("fd00:61:1::/64"), parse_prefix("192.168.61.0/24")};

// The rule of the longest destination selector translates, NAT66 to the policy's address, and
// nothing checks the kernel's choice: an older any-source policy of equal priority takes the
// translated flow (explain says so in `after`).
TEST(ReferenceNat6, LongestDestinationRuleThenTheKernelDecides) {
  std::vector<Policy> v{out6("::/0", "2001:db8:e2::/48", 1, 300), out6("2001:db8:a5::9/128", "2001:db8:e2::/48", 2, 300),
                        out6("2001:db8:a1::5/128", "2001:db8:e1::/48", 3, 200),
                        out6("2001:db8:a2::6/128", "2001:db8:e1:5::/64", 4, 250)};
  auto pols = ptrs(v);
  auto n = reference_nat6(pols, kInside, false, flow6("fd00:61:1::a", "2001:db8:e1:5::1"));
  ASSERT_TRUE(n.to);
  EXPECT_EQ(n.policy->index, 4u);
  EXPECT_EQ(n.to->str(), "2001:db8:a2::6");
  EXPECT_EQ(reference_nat6(pols, kInside, false, flow6("fd00:61:1::a", "2001:db8:e1:6::1")).to->str(), "2001:db8:a1::5");
  // Not from the inside prefix, or not TCP/UDP/ICMPv6: untouched, and said why.
  EXPECT_NE(reference_nat6(pols, kInside, false, flow6("fd00:99::a", "2001:db8:e1::1")).why.find("inside prefix"),
            std::string::npos);
  EXPECT_NE(reference_nat6(pols, kInside, false, flow6("fd00:61:1::a", "2001:db8:e1::1", IPPROTO_SCTP)).why.find("only"),
            std::string::npos);
  // Policy mode: the any-source policy takes the LAN flow at the kernel's first lookup, before
  // the LWT route could translate it.
  Explanation e = explain(pols, {}, kInside, false, AnyFlow(flow6("fd00:61:1::a", "2001:db8:e2::7")));
  EXPECT_EQ(e.before->index, 1u);
  EXPECT_EQ(e.kind, "");
  EXPECT_NE(e.none_why.find("first lookup"), std::string::npos) << e.none_why;
  // Route mode (an xfrm interface's if_id): TC egress translates before the device's lookup.
  for (auto& p : v) p.if_id = 9;
  auto f = flow6("fd00:61:1::a", "2001:db8:e2::7");
  f.if_id = 9;
  e = explain(pols, {}, kInside, false, AnyFlow(f));
  EXPECT_EQ(e.before->index, 1u);
  EXPECT_EQ(e.kind, "nat66");
  EXPECT_EQ(e.nat_policy, 2u);
  EXPECT_TRUE(e.ports);
  EXPECT_EQ(e.after->index, 1u);
  ASSERT_EQ(e.not_chosen.size(), 1u);
  EXPECT_EQ(e.not_chosen[0].why, "source not in 2001:db8:a5::9/128");
}

// RFC 6296 appendix B: fd01:203:405:1::1234 in fd01:203:405::/48 becomes 2001:db8:1:d550::1234
// in 2001:db8:1::/48. Only with --binat.
TEST(ReferenceNat6, Nptv6OnlyWithBinatAsRfc6296MapsIt) {
  std::vector<Policy> v{out6("2001:db8:1::/48", "2001:db8:e3::/48", 7, 100)};
  auto pols = ptrs(v);
  std::vector<Prefix> inside{parse_prefix("fd01:203:405::/48")};
  auto f = flow6("fd01:203:405:1::1234", "2001:db8:e3::1");
  auto without = reference_nat6(pols, inside, false, f);
  EXPECT_FALSE(without.to);
  EXPECT_NE(without.why.find("--binat"), std::string::npos) << without.why;
  auto with = reference_nat6(pols, inside, true, f);
  ASSERT_TRUE(with.to) << with.why;
  EXPECT_EQ(with.to->str(), "2001:db8:1:d550::1234");
  Explanation e = explain(pols, {}, inside, true, AnyFlow(f));
  EXPECT_EQ(e.kind, "nptv6");
  EXPECT_FALSE(e.ports);
  ASSERT_NE(e.after, nullptr);
  EXPECT_EQ(e.after->index, 7u);
}

// Policy mode (if_id 0): a port-restricted policy gets no LWT route, so its destination is not
// translated at all; through an xfrm interface (route mode) it is.
TEST(ReferenceNat6, PortRestrictedPolicyIsNotTranslatedOnTheUplink) {
  std::vector<Policy> v{out6("2001:db8:a3::7/128", "2001:db8:e4::/48", 5, 50)};
  v[0].sel.proto = IPPROTO_TCP;
  v[0].sel.dport = 443;
  v[0].sel.dport_mask = 0xffff;
  auto pols = ptrs(v);
  auto f = flow6("fd00:61:1::a", "2001:db8:e4::1", IPPROTO_TCP, 40000, 443);
  auto n = reference_nat6(pols, kInside, true, f);
  EXPECT_FALSE(n.to);
  EXPECT_EQ(n.why, "no LWT route in policy mode for 2001:db8:e4::1: policy 5: none (not translated in policy mode: "
                   "restricts ports (tcp dport 443), which the kernel's lookup after the LWT reroute does not carry)");
  v[0].if_id = 9;
  f.if_id = 9;
  n = reference_nat6(pols, kInside, false, f);
  ASSERT_TRUE(n.to) << n.why;
  EXPECT_EQ(n.to->str(), "2001:db8:a3::7");
}

// The npt6 map's rule for (if_id, dir, prefix) in `entries`, or nullptr.
const npt6_rule* rule_at(const std::map<std::vector<uint8_t>, npt6_rule>& entries, uint32_t if_id, npt6_dir dir,
                         const char* prefix) {
  Prefix p = parse_prefix(prefix);
  npt6_key k{};
  k.prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + p.len;
  k.if_id = if_id;
  k.dir = dir;
  std::memcpy(k.addr, p.addr.bytes.data(), 16);
  auto* b = reinterpret_cast<const uint8_t*>(&k);
  auto it = entries.find({b, b + sizeof(k)});
  return it == entries.end() ? nullptr : &it->second;
}

Policy ports(Policy p, uint8_t proto, uint16_t dport) {
  p.sel.proto = proto;
  p.sel.dport = dport;
  p.sel.dport_mask = 0xffff;
  return p;
}

// The npt6 map's OUT rule for (if_id, dst) in `entries`, or nullptr.
const npt6_rule* out_rule(const std::map<std::vector<uint8_t>, npt6_rule>& entries, uint32_t if_id, const char* dst) {
  return rule_at(entries, if_id, NPT6_OUT, dst);
}

// The npt6 map's entries for the SPD `v` and the inside prefixes kInside.
std::map<std::vector<uint8_t>, npt6_rule> entries_of(const std::vector<Policy>& v) {
  SpdModel model;
  for (const auto& p : v) model.apply(PolicyUpsert{p});
  return npt6_entries(model, kInside);
}

Policy proto_only(Policy p, uint8_t proto) {
  p.sel.proto = proto;
  return p;
}

// NAT66 takes every IPv6 inside prefix to the policy's address: the reference, explain and the
// map's inside set (NPT6_INSIDE keys, what bpf/lib/nat66.h looks the source up in) agree; a
// source in no inside prefix is not translated and explain says why.
TEST(ReferenceNat6, Nat66TakesEveryIpv6InsidePrefix) {
  std::vector<Policy> v{out6("2001:db8:a6::5/128", "2001:db8:e6::/48", 1, 100)};
  for (auto& p : v) p.if_id = 9;
  auto pols = ptrs(v);
  const std::vector<Prefix> lans{parse_prefix("fd00:61:1::/64"), parse_prefix("fd00:62::/48"),
                                 parse_prefix("192.168.61.0/24")};
  for (const char* host : {"fd00:61:1::a", "fd00:62:0:7::b"}) {
    auto f = flow6(host, "2001:db8:e6::1");
    f.if_id = 9;
    auto n = reference_nat6(pols, lans, false, f);
    ASSERT_TRUE(n.to) << host << " " << n.why;
    EXPECT_EQ(n.to->str(), "2001:db8:a6::5");
    EXPECT_EQ(n.mapping.str(), "nat66 fd00:61:1::/64, fd00:62::/48 -> 2001:db8:a6::5 (ports)");
    Explanation e = explain(pols, {}, lans, false, AnyFlow(f));
    EXPECT_EQ(e.kind, "nat66") << host;
    ASSERT_NE(e.after, nullptr) << host;
    EXPECT_EQ(e.after->index, 1u);
  }
  auto stranger = flow6("fd00:63::c", "2001:db8:e6::1");
  stranger.if_id = 9;
  Explanation e = explain(pols, {}, lans, false, AnyFlow(stranger));
  EXPECT_EQ(e.kind, "");
  EXPECT_NE(e.none_why.find("source not in an IPv6 inside prefix"), std::string::npos) << e.none_why;

  SpdModel model;
  model.apply(PolicyUpsert{v[0]});
  auto entries = npt6_entries(model, lans);
  EXPECT_EQ(entries.size(), 3u);
  ASSERT_NE(out_rule(entries, 9, "2001:db8:e6::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:e6::/48")->kind, NPT6_KIND_NAT66);
  for (const char* lan : {"fd00:61:1::/64", "fd00:62::/48"}) {
    const npt6_rule* r = rule_at(entries, 0, NPT6_INSIDE, lan);
    ASSERT_NE(r, nullptr) << lan;
    EXPECT_EQ(r->kind, NPT6_KIND_INSIDE);
    EXPECT_EQ(r->len, parse_prefix(lan).len);
  }
}

// The gateway's own IPv6 addresses a netfilter masquerade or SNAT rule may give a LAN packet before
// LWT xmit are /128 NPT6_INSIDE keys of kind NPT6_KIND_LOCAL (bpf/lib/nat66.h nat66_takes): a
// global or unique-local address outside every inside prefix, not a link-local or loopback one,
// nor one inside a LAN (the prefix takes it); none without an IPv6 inside prefix.
TEST(ReferenceNat6, TheGatewaysOwnAddressesOutsideTheLansAreLocalEntriesOfTheInsideSet) {
  SpdModel model;
  model.apply(PolicyUpsert{out6("2001:db8:a6::5/128", "2001:db8:e6::/48", 1, 100)});
  std::vector<Address> local{parse_address("2001:db8:ff::2"), parse_address("fd00:99::1"), parse_address("fe80::1"),
                             parse_address("::1"), parse_address("fd00:61:1::1"), parse_address("198.51.100.2")};
  auto entries = npt6_entries(model, kInside, local);
  for (const char* a : {"2001:db8:ff::2/128", "fd00:99::1/128"}) {
    const npt6_rule* r = rule_at(entries, 0, NPT6_INSIDE, a);
    ASSERT_NE(r, nullptr) << a;
    EXPECT_EQ(r->kind, NPT6_KIND_LOCAL) << a;
  }
  for (const char* a : {"fe80::1/128", "::1/128", "fd00:61:1::1/128"}) EXPECT_EQ(rule_at(entries, 0, NPT6_INSIDE, a), nullptr) << a;
  EXPECT_EQ(rule_at(entries, 0, NPT6_INSIDE, "fd00:61:1::/64")->kind, NPT6_KIND_INSIDE);
  EXPECT_EQ(entries.size(), 4u);  // the rule, the LAN, the two addresses
  EXPECT_TRUE(npt6_entries(model, {parse_prefix("192.168.61.0/24")}, local).empty());  // no IPv6 LAN
}

// A LAN larger than the policy's source prefix (a /48 under a /64) is taken with ports over a pool
// of the selector's addresses from the first after the Subnet-Router anycast one (65536 of them,
// IPSNAT_NPT6_MAX_POOL), without --binat: the reference, explain (whose translated flow the
// policy matches after the translation) and the map (a NAT66 OUT rule with the pool's span, no
// NPTv6 IN rule that would open the block to the far side) agree; on the uplink (policy mode) and
// through an xfrm interface alike.
TEST(ReferenceNat6, ALanLargerThanTheSelectorIsNat66OverThePool) {
  const std::vector<Prefix> lans{parse_prefix("fd00:67::/48"), parse_prefix("192.168.67.0/24")};
  for (uint32_t if_id : {0u, 9u}) {
    std::vector<Policy> v{out6("2001:db8:a7:5::/64", "2001:db8:e7::/48", 3, 100)};
    v[0].if_id = if_id;
    auto pols = ptrs(v);
    auto f = flow6("fd00:67:0:5::a", "2001:db8:e7::1", IPPROTO_TCP, 40000, 443);
    f.if_id = if_id;
    auto n = reference_nat6(pols, lans, false, f);
    ASSERT_TRUE(n.to) << if_id << " " << n.why;
    EXPECT_EQ(n.mapping.str(), "nat66 fd00:67::/48 -> 2001:db8:a7:5::1-2001:db8:a7:5::1:0 (ports)");
    EXPECT_EQ(n.mapping.pool, 65536u);
    EXPECT_TRUE(n.mapping.pool_holds(*n.to)) << n.to->str();
    EXPECT_TRUE(parse_prefix("2001:db8:a7:5::/112").contains(*n.to) || *n.to == parse_address("2001:db8:a7:5::1:0"));
    EXPECT_NE(*n.to, parse_address("2001:db8:a7:5::")) << "the Subnet-Router anycast address is never used";
    Explanation e = explain(pols, {}, lans, false, AnyFlow(f));
    EXPECT_EQ(e.kind, "nat66") << e.none_why;
    EXPECT_TRUE(e.ports);
    EXPECT_EQ(e.to, *n.to);
    ASSERT_NE(e.after, nullptr);
    EXPECT_EQ(e.after->index, 3u);
    // A source already in the pool is left as it is, as IPv4's.
    auto own = f;
    own.saddr = parse_address("2001:db8:a7:5::77");
    EXPECT_FALSE(reference_nat6(pols, lans, false, own).to);

    SpdModel model;
    model.apply(PolicyUpsert{v[0]});
    auto entries = npt6_entries(model, lans);
    const npt6_rule* r = out_rule(entries, if_id, "2001:db8:e7::/48");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->kind, NPT6_KIND_NAT66);
    EXPECT_EQ(std::memcmp(r->to, parse_address("2001:db8:a7:5::1").bytes.data(), 16), 0);
    EXPECT_EQ(r->span, 65535u);
    EXPECT_EQ(rule_at(entries, if_id, NPT6_IN, "2001:db8:a7:5::/64"), nullptr);
    EXPECT_NE(rule_at(entries, 0, NPT6_INSIDE, "fd00:67::/48"), nullptr);
  }
}

// Beside the one LAN a 1:1 map holds (a /64 under a /56), a larger LAN (a /48) is NAT66 with ports
// over the next /64's pool from its first address after the Subnet-Router anycast one: the
// reference, explain and the map (the prefix rule flagged NPT6_FLAG_REST, the NAT66 rule with its
// span under NPT6_OUT_REST, no NPT6_IN rule for the pool) agree; the mapped LAN's host stays
// NPTv6's. Without --binat the larger LAN's flow is translated alike and the mapped one's is not.
TEST(ReferenceNat6, BesideAOneToOneMapALargerLanIsNat66OverTheNextBlocksPool) {
  const std::vector<Prefix> lans{parse_prefix("fd00:67::/48"), parse_prefix("fd00:68:0:1::/64")};
  for (uint32_t if_id : {0u, 9u}) {
    std::vector<Policy> v{out6("2001:db8:a7:500::/56", "2001:db8:e7::/48", 3, 100)};
    v[0].if_id = if_id;
    auto pols = ptrs(v);
    for (bool binat : {true, false}) {
      auto f = flow6("fd00:67:0:5::a", "2001:db8:e7::1", IPPROTO_TCP, 40000, 443);
      f.if_id = if_id;
      auto n = reference_nat6(pols, lans, binat, f);
      ASSERT_TRUE(n.to) << if_id << " " << n.why;
      EXPECT_EQ(n.mapping.str(), "nat66 fd00:67::/48 -> 2001:db8:a7:501::1-2001:db8:a7:501::1:0 (ports)");
      EXPECT_TRUE(n.mapping.pool_holds(*n.to)) << n.to->str();
      Explanation e = explain(pols, {}, lans, binat, AnyFlow(f));
      EXPECT_EQ(e.kind, "nat66") << e.none_why;
      EXPECT_TRUE(e.ports);
      EXPECT_EQ(e.to, *n.to);
      ASSERT_NE(e.after, nullptr);
      EXPECT_EQ(e.after->index, 3u);

      auto g = flow6("fd00:68:0:1::b", "2001:db8:e7::1", IPPROTO_UDP, 40001, 53);
      g.if_id = if_id;
      auto m = reference_nat6(pols, lans, binat, g);
      EXPECT_EQ(m.to.has_value(), binat) << m.why;
      if (binat) {
        EXPECT_EQ(m.to->str().rfind("2001:db8:a7:500:", 0), 0u) << m.to->str();
      }
      Explanation eg = explain(pols, {}, lans, binat, AnyFlow(g));
      EXPECT_EQ(eg.kind, binat ? "nptv6" : "") << eg.none_why;
    }

    SpdModel model;
    model.apply(PolicyUpsert{v[0]});
    auto entries = npt6_entries(model, lans);
    const npt6_rule* r = out_rule(entries, if_id, "2001:db8:e7::/48");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->kind, NPT6_KIND_PREFIX);
    EXPECT_EQ(r->flags, NPT6_FLAG_REST);
    const npt6_rule* rest = rule_at(entries, if_id, NPT6_OUT_REST, "2001:db8:e7::/48");
    ASSERT_NE(rest, nullptr);
    EXPECT_EQ(rest->kind, NPT6_KIND_NAT66);
    EXPECT_EQ(std::memcmp(rest->to, parse_address("2001:db8:a7:501::1").bytes.data(), 16), 0);
    EXPECT_EQ(rest->span, 65535u);
    EXPECT_EQ(r->span, 0u);
    EXPECT_NE(rule_at(entries, if_id, NPT6_IN, "2001:db8:a7:500::/64"), nullptr);
    EXPECT_EQ(entries.size(), 5u);  // OUT, OUT_REST, IN and the two inside prefixes
  }
}

// Policy mode (if_id 0): the rule is picked by destination alone, so a port-restricted policy's
// rule would take a port-less policy's destination (equal with a better priority, or longer
// inside it) and translate its flows to an address the lookup after the reroute (no ports) finds
// no policy for. Such a policy takes no rule: the port-less one translates every flow there, the
// restricted ports' too.
TEST(ReferenceNat6, APortRestrictedPolicyTakesNoRuleFromAPortlessOneOnTheUplink) {
  std::vector<Policy> v{out6("2001:db8:b7::5/128", "2001:db8:e7::/48", 1, 200),
                        ports(out6("2001:db8:b8::6/128", "2001:db8:e7::/48", 2, 100), IPPROTO_TCP, 443),
                        out6("2001:db8:b9::7/128", "2001:db8:e9::/48", 3, 200),
                        ports(out6("2001:db8:ba::8/128", "2001:db8:e9:5::/64", 4, 300), IPPROTO_UDP, 53)};
  auto entries = entries_of(v);
  EXPECT_EQ(entries.size(), 3u);  // two OUT rules and the one IPv6 inside prefix
  ASSERT_NE(out_rule(entries, 0, "2001:db8:e7::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 0, "2001:db8:e7::/48")->policy_index, 1u);
  EXPECT_EQ(out_rule(entries, 0, "2001:db8:e9:5::/64"), nullptr);
  auto pols = ptrs(v);
  for (auto [dst, proto, dport, to, index] :
       {std::tuple{"2001:db8:e7::1", IPPROTO_TCP, 443, "2001:db8:b7::5", 1u},
        std::tuple{"2001:db8:e7::1", IPPROTO_UDP, 7001, "2001:db8:b7::5", 1u},
        std::tuple{"2001:db8:e9:5::1", IPPROTO_UDP, 53, "2001:db8:b9::7", 3u}}) {
    auto f = flow6("fd00:61:1::a", dst, uint8_t(proto), 40000, uint16_t(dport));
    auto n = reference_nat6(pols, kInside, false, f);
    ASSERT_TRUE(n.to) << dst << " " << n.why;
    EXPECT_EQ(n.to->str(), to);
    Explanation e = explain(pols, {}, kInside, false, AnyFlow(f));
    ASSERT_NE(e.after, nullptr) << dst;
    EXPECT_EQ(e.after->index, index) << dst;
  }
}

// Through an xfrm interface (route mode, if_id 9) the kernel's lookup after TC egress carries the
// ports, but the rule is still picked by destination alone: a port-restricted policy whose
// destination a port-less policy of its if_id also covers (the same destination with a worse
// priority, or a shorter one holding it) takes no rule, and the port-less policy's rule translates
// every flow there, as on the uplink. Alone on its destination (tcp/22 to 2001:db8:eb::/48) it
// keeps its rule, as IPv4's route mode translates such a policy; a port-less policy of another
// if_id (7) does not count.
TEST(ReferenceNat6, APortRestrictedPolicyOfAnXfrmInterfaceTakesNoRuleFromAPortlessOne) {
  std::vector<Policy> v{out6("2001:db8:b7::5/128", "2001:db8:e7::/48", 1, 200),
                        ports(out6("2001:db8:b8::6/128", "2001:db8:e7::/48", 2, 100), IPPROTO_TCP, 443),
                        out6("2001:db8:b9::7/128", "2001:db8:e9::/48", 3, 200),
                        ports(out6("2001:db8:ba::8/128", "2001:db8:e9:5::/64", 4, 300), IPPROTO_UDP, 53),
                        ports(out6("2001:db8:bb::9/128", "2001:db8:eb::/48", 5, 100), IPPROTO_TCP, 22),
                        out6("2001:db8:bc::1/128", "2001:db8::/40", 6, 300)};
  for (auto& p : v) p.if_id = 9;
  v.back().if_id = 7;
  auto entries = entries_of(v);
  ASSERT_NE(out_rule(entries, 9, "2001:db8:e7::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:e7::/48")->policy_index, 1u);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:e9:5::/64"), nullptr);
  ASSERT_NE(out_rule(entries, 9, "2001:db8:eb::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:eb::/48")->policy_index, 5u);
  auto pols = ptrs(v);
  for (auto [dst, proto, dport, to, index] :
       {std::tuple{"2001:db8:e7::1", IPPROTO_TCP, 443, "2001:db8:b7::5", 1u},
        std::tuple{"2001:db8:e7::1", IPPROTO_UDP, 7001, "2001:db8:b7::5", 1u},
        std::tuple{"2001:db8:e9:5::1", IPPROTO_UDP, 53, "2001:db8:b9::7", 3u},
        std::tuple{"2001:db8:e9:5::1", IPPROTO_UDP, 123, "2001:db8:b9::7", 3u},
        std::tuple{"2001:db8:eb::1", IPPROTO_TCP, 22, "2001:db8:bb::9", 5u}}) {
    auto f = flow6("fd00:61:1::a", dst, uint8_t(proto), 40000, uint16_t(dport));
    f.if_id = 9;
    auto n = reference_nat6(pols, kInside, false, f);
    ASSERT_TRUE(n.to) << dst << " " << n.why;
    EXPECT_EQ(n.to->str(), to) << dst << " " << dport;
    Explanation e = explain(pols, {}, kInside, false, AnyFlow(f));
    ASSERT_NE(e.after, nullptr) << dst << " " << dport;
    EXPECT_EQ(e.after->index, index) << dst << " " << dport;
  }
  auto m = npt6_mapped(v[1], kInside, pols);
  EXPECT_FALSE(m.ok);
  EXPECT_EQ(m.str(),
            "none (restricts ports (tcp dport 443) on a destination the port-less policy 1 (2001:db8:b7::5/128 -> "
            "2001:db8:e7::/48) also covers: rules are chosen by destination alone, and its rule would take that "
            "policy's flows on other ports to an address no policy covers)");
}

// A policy restricted to a protocol alone is told apart by the kernel's lookup as a port-restricted
// one is, not by the rules: where an unrestricted policy of its if_id covers its destination it
// takes no rule (tcp to 2001:db8:f1:2::/64 inside the unrestricted 2001:db8:f1::/48), else it keeps
// it (tcp to 2001:db8:f3::/48). Restricted policies of one if_id whose destinations overlap and
// that need different translations take no rule there, each naming the other: another address
// (tcp/443 and udp/53 to 2001:db8:f4::/48; udp to 2001:db8:f6::/48 holding tcp/22 to
// 2001:db8:f6:7::/64), or the same address through other SAs (reqid 8 and 9 to 2001:db8:fa::/48).
// Those that need the same translation (2001:db8:c8::8 for tcp/443 and udp/53) share the rule.
TEST(ReferenceNat6, RestrictedPoliciesThatNeedDifferentTranslationsTakeNoRuleOnTheirDestination) {
  std::vector<Policy> v{out6("2001:db8:c1::1/128", "2001:db8:f1::/48", 1, 200),
                        proto_only(out6("2001:db8:c2::2/128", "2001:db8:f1:2::/64", 2, 100), IPPROTO_TCP),
                        proto_only(out6("2001:db8:c3::3/128", "2001:db8:f3::/48", 3, 100), IPPROTO_TCP),
                        ports(out6("2001:db8:c4::4/128", "2001:db8:f4::/48", 4, 100), IPPROTO_TCP, 443),
                        ports(out6("2001:db8:c5::5/128", "2001:db8:f4::/48", 5, 200), IPPROTO_UDP, 53),
                        proto_only(out6("2001:db8:c6::6/128", "2001:db8:f6::/48", 6, 100), IPPROTO_UDP),
                        ports(out6("2001:db8:c7::7/128", "2001:db8:f6:7::/64", 7, 100), IPPROTO_TCP, 22),
                        ports(out6("2001:db8:c8::8/128", "2001:db8:f8::/48", 8, 100), IPPROTO_TCP, 443),
                        ports(out6("2001:db8:c8::8/128", "2001:db8:f8::/48", 9, 200), IPPROTO_UDP, 53),
                        ports(out6("2001:db8:ca::a/128", "2001:db8:fa::/48", 10, 100), IPPROTO_TCP, 80),
                        ports(out6("2001:db8:ca::a/128", "2001:db8:fa::/48", 11, 200), IPPROTO_UDP, 53)};
  for (auto& p : v) p.if_id = 9;
  v[7].tmpls[0].reqid = v[8].tmpls[0].reqid = 7;  // the helper's reqid is the index
  v[9].tmpls[0].reqid = 8;
  v[10].tmpls[0].reqid = 9;
  auto entries = entries_of(v);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:f1:2::/64"), nullptr);
  ASSERT_NE(out_rule(entries, 9, "2001:db8:f3::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:f3::/48")->policy_index, 3u);
  for (const char* dst : {"2001:db8:f4::/48", "2001:db8:f6::/48", "2001:db8:f6:7::/64", "2001:db8:fa::/48"})
    EXPECT_EQ(out_rule(entries, 9, dst), nullptr) << dst;
  ASSERT_NE(out_rule(entries, 9, "2001:db8:f8::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 9, "2001:db8:f8::/48")->policy_index, 8u);

  auto pols = ptrs(v);
  for (auto [dst, proto, dport, to] :
       {std::tuple{"2001:db8:f1:2::1", IPPROTO_TCP, 443, "2001:db8:c1::1"},
        std::tuple{"2001:db8:f1:2::1", IPPROTO_UDP, 53, "2001:db8:c1::1"},
        std::tuple{"2001:db8:f3::1", IPPROTO_TCP, 443, "2001:db8:c3::3"},
        std::tuple{"2001:db8:f8::1", IPPROTO_TCP, 443, "2001:db8:c8::8"},
        std::tuple{"2001:db8:f8::1", IPPROTO_UDP, 53, "2001:db8:c8::8"}}) {
    auto f = flow6("fd00:61:1::a", dst, uint8_t(proto), 40000, uint16_t(dport));
    f.if_id = 9;
    auto n = reference_nat6(pols, kInside, false, f);
    ASSERT_TRUE(n.to) << dst << " " << n.why;
    EXPECT_EQ(n.to->str(), to) << dst << " " << dport;
  }
  for (auto [dst, proto, dport] : {std::tuple{"2001:db8:f4::1", IPPROTO_TCP, 443},
                                   std::tuple{"2001:db8:f4::1", IPPROTO_UDP, 53},
                                   std::tuple{"2001:db8:f6:7::1", IPPROTO_UDP, 53},
                                   std::tuple{"2001:db8:f6:8::1", IPPROTO_UDP, 53},
                                   std::tuple{"2001:db8:fa::1", IPPROTO_UDP, 53}}) {
    auto f = flow6("fd00:61:1::a", dst, uint8_t(proto), 40000, uint16_t(dport));
    f.if_id = 9;
    EXPECT_FALSE(reference_nat6(pols, kInside, false, f).to) << dst << " " << dport;
  }
  auto f = flow6("fd00:61:1::a", "2001:db8:f4::1", IPPROTO_UDP, 40000, 53);
  f.if_id = 9;
  Explanation e = explain(pols, {}, kInside, false, AnyFlow(f));
  EXPECT_EQ(e.none_why,
            "no IPv6 IPsec out-policy for this destination implies a translation: policy 4: none (restricts ports "
            "(tcp dport 443) on a destination the restricted policy 5 (2001:db8:c5::5/128 -> 2001:db8:f4::/48 udp "
            "dport 53) also covers with another translation: rules are chosen by destination alone, and either "
            "one's rule would take the other's flows to an address no policy covers)");

  EXPECT_EQ(npt6_mapped(v[1], kInside, pols).str(),
            "none (restricts the protocol (tcp) on a destination the unrestricted policy 1 (2001:db8:c1::1/128 -> "
            "2001:db8:f1::/48) also covers: rules are chosen by destination alone, and its rule would take that "
            "policy's flows of other protocols to an address no policy covers)");
  EXPECT_EQ(npt6_mapped(v[6], kInside, pols).str(),
            "none (restricts ports (tcp dport 22) on a destination the restricted policy 6 (2001:db8:c6::6/128 -> "
            "2001:db8:f6::/48 udp) also covers with another translation: rules are chosen by destination alone, and "
            "either one's rule would take the other's flows to an address no policy covers)");
  EXPECT_EQ(npt6_mapped(v[10], kInside, pols).str().substr(0, 90),
            "none (restricts ports (udp dport 53) on a destination the restricted policy 10 (2001:db8:c");
}

// Policy mode (if_id 0): the kernel's lookup after the LWT reroute carries the protocol (not the
// ports), so a policy restricted to a protocol alone is translated there, but not on a destination
// an unrestricted policy also covers.
TEST(ReferenceNat6, AProtocolRestrictedPolicyTakesNoRuleFromAnUnrestrictedOneOnTheUplink) {
  std::vector<Policy> v{out6("2001:db8:c1::1/128", "2001:db8:f1::/48", 1, 200),
                        proto_only(out6("2001:db8:c2::2/128", "2001:db8:f1::/48", 2, 100), IPPROTO_TCP),
                        proto_only(out6("2001:db8:c3::3/128", "2001:db8:f3::/48", 3, 100), IPPROTO_TCP)};
  auto entries = entries_of(v);
  ASSERT_NE(out_rule(entries, 0, "2001:db8:f1::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 0, "2001:db8:f1::/48")->policy_index, 1u);
  ASSERT_NE(out_rule(entries, 0, "2001:db8:f3::/48"), nullptr);
  EXPECT_EQ(out_rule(entries, 0, "2001:db8:f3::/48")->policy_index, 3u);
  auto pols = ptrs(v);
  auto n = reference_nat6(pols, kInside, false, flow6("fd00:61:1::a", "2001:db8:f1::1", IPPROTO_UDP, 40000, 53));
  ASSERT_TRUE(n.to) << n.why;
  EXPECT_EQ(n.to->str(), "2001:db8:c1::1");
}

// A VTI's marked policy (mark 42, its okey) and the uplink's unmarked one on one destination: the
// reference gives a flow of mark 42 (the VTI's lookup) the VTI's address and a flow of mark 0 (the
// uplink's LWT xmit) the uplink's, whichever is first by priority, as the map keeps a rule per mark
// (npt6_entries); explain's translated flow then meets that very policy. A port-restricted policy
// of the VTI keeps its rule: its lookup carries the ports.
TEST(ReferenceNat6, AVtisMarkedPolicyAndTheUplinksUnmarkedOneKeepTheirOwnRules) {
  for (uint32_t vti_prio : {100u, 300u}) {
    std::vector<Policy> v{out6("2001:db8:6e::5/128", "2001:db8:e6e::/48", 1, vti_prio),
                          out6("2001:db8:6f::5/128", "2001:db8:e6e::/48", 2, 200),
                          ports(out6("2001:db8:6e::7/128", "2001:db8:e6f::/48", 3, 200), IPPROTO_TCP, 443)};
    for (auto* p : {&v[0], &v[2]}) {
      p->mark_v = 42;
      p->mark_m = 0xffffffff;
    }
    auto entries = entries_of(v);
    auto pols = ptrs(v);
    for (auto [mark, dst, proto, dport, to, index] :
         {std::tuple{42u, "2001:db8:e6e::1", IPPROTO_UDP, 53, "2001:db8:6e::5", 1u},
          std::tuple{0u, "2001:db8:e6e::1", IPPROTO_UDP, 53, "2001:db8:6f::5", 2u},
          std::tuple{42u, "2001:db8:e6f::1", IPPROTO_TCP, 443, "2001:db8:6e::7", 3u}}) {
      auto f = flow6("fd00:61:1::a", dst, uint8_t(proto), 40000, uint16_t(dport));
      f.mark = mark;
      auto n = reference_nat6(pols, kInside, false, f);
      ASSERT_TRUE(n.to) << "mark " << mark << " " << dst << ": " << n.why;
      EXPECT_EQ(n.to->str(), to) << "mark " << mark;
      Explanation e = explain(pols, {}, kInside, false, AnyFlow(f));
      ASSERT_NE(e.after, nullptr) << "mark " << mark;
      EXPECT_EQ(e.after->index, index) << "mark " << mark;
    }
    int out_keys = 0;
    for (const auto& [key, rule] : entries) {
      npt6_key k{};
      std::memcpy(&k, key.data(), sizeof(k));
      if (k.dir != NPT6_OUT) continue;
      ++out_keys;
      EXPECT_EQ(k.mark, rule.policy_index == 2 ? 0u : 42u) << "policy " << rule.policy_index;
    }
    EXPECT_EQ(out_keys, 3);
  }
}

}  // namespace
}  // namespace ipsnat::spd

namespace ipsnat::spd {
namespace {

// The pool of a prefix selector: its addresses after the Subnet-Router anycast one, as many as it
// holds up to IPSNAT_NPT6_MAX_POOL; a /128 is one address. Each LAN host keeps one address for all
// its flows, hosts spread over the pool (consecutive ones and random ones alike), and the
// reference, explain and the map agree on it.
TEST(ReferenceNat6, EachLanHostKeepsOneAddressOfThePoolAndHostsSpreadOverIt) {
  const std::vector<Prefix> lans{parse_prefix("fd00:67::/48")};
  struct Case {
    const char* selector;
    uint32_t pool;
    const char* first;
    const char* last;
  };
  for (const Case& c : {Case{"2001:db8:a7:5::100/120", 255, "2001:db8:a7:5::101", "2001:db8:a7:5::1ff"},
                        Case{"2001:db8:a7:5::1:0/112", 65535, "2001:db8:a7:5::1:1", "2001:db8:a7:5::1:ffff"},
                        Case{"2001:db8:a7:5::/126", 3, "2001:db8:a7:5::1", "2001:db8:a7:5::3"},
                        Case{"2001:db8:a7:5::4/127", 1, "2001:db8:a7:5::5", "2001:db8:a7:5::5"},
                        Case{"2001:db8:a7:5::9/128", 1, "2001:db8:a7:5::9", "2001:db8:a7:5::9"}}) {
    std::vector<Policy> v{out6(c.selector, "2001:db8:e7::/48", 3, 100)};
    auto pols = ptrs(v);
    auto m = npt6_of(v[0], lans);
    ASSERT_TRUE(m.ok) << c.selector << " " << m.why;
    EXPECT_TRUE(m.nat66);
    EXPECT_EQ(m.pool, c.pool) << c.selector;
    EXPECT_EQ(m.outside.addr, parse_address(c.first)) << c.selector;
    EXPECT_EQ(m.pool_last(), parse_address(c.last)) << c.selector;
    EXPECT_EQ(m.str(), std::string("nat66 fd00:67::/48 -> ") + c.first +
                           (c.pool > 1 ? std::string("-") + c.last : std::string()) + " (ports)");
    SpdModel model;
    model.apply(PolicyUpsert{v[0]});
    auto entries = npt6_entries(model, lans);
    const npt6_rule* r = out_rule(entries, 0, "2001:db8:e7::/48");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->span + 1u, c.pool);
    std::set<Address> used;
    std::mt19937 rnd(c.pool);
    for (int h = 0; h < 64; ++h) {
      Address src = parse_address("fd00:67::");
      if (h < 32) {
        src.bytes[15] = uint8_t(h + 1);  // consecutive hosts
      } else {
        for (int i = 6; i < 16; ++i) src.bytes[i] = uint8_t(rnd());  // SLAAC-like ones
      }
      Address first;
      for (uint16_t dport : {53, 443}) {
        auto f = flow6(src.str().c_str(), "2001:db8:e7::1", IPPROTO_UDP, 40000, dport);
        auto n = reference_nat6(pols, lans, false, f);
        ASSERT_TRUE(n.to) << n.why;
        EXPECT_TRUE(m.pool_holds(*n.to)) << n.to->str();
        if (dport == 53) first = *n.to;
        EXPECT_EQ(*n.to, first) << src.str() << " keeps one address";
        EXPECT_EQ(explain(pols, {}, lans, false, AnyFlow(f)).to, *n.to);
      }
      used.insert(first);
    }
    if (c.pool >= 255) {
      EXPECT_GE(used.size(), 50u) << c.selector;
    } else {
      EXPECT_EQ(used.size(), c.pool) << c.selector;
    }
  }
}

// A pool stays inside its selector's block and never holds the block's Subnet-Router anycast
// address; its blackhole blocks (to_blocks) cover exactly its addresses.
TEST(ReferenceNat6, APoolNeverHoldsTheAnycastAddressNorLeavesItsBlock) {
  for (const char* sel : {"2001:db8:a7:5::/64", "2001:db8:a7:5::/96", "2001:db8:a7:5::1:0/112", "2001:db8:a7:5::f0/124"}) {
    std::vector<Policy> v{out6(sel, "2001:db8:e7::/48", 3, 100)};
    auto m = npt6_of(v[0], {parse_prefix("fd00:67::/48")});
    ASSERT_TRUE(m.ok) << sel;
    Prefix block = parse_prefix(sel);
    EXPECT_TRUE(block.contains(m.outside.addr)) << sel;
    EXPECT_TRUE(block.contains(m.pool_last())) << sel;
    EXPECT_FALSE(m.pool_holds(parse_prefix(sel).addr)) << "the anycast address of " << sel;
    uint64_t covered = 0;
    for (const Prefix& b : m.to_blocks()) {
      EXPECT_TRUE(block.contains(b.addr)) << b.str();
      EXPECT_TRUE(m.pool_holds(b.addr)) << b.str();
      covered += uint64_t(1) << (128 - b.len);
    }
    EXPECT_EQ(covered, m.pool) << sel;
  }
}

// The gateway's own addresses are left out of a pool (npt6_of's `local`), and the reference, the
// map and explain (NatConfig::local) agree; a /128 virtual IP stays the policy's one address.
TEST(ReferenceNat6, APoolLeavesTheGatewaysOwnAddressesOut) {
  const std::vector<Prefix> lans{parse_prefix("fd00:67::/48")};
  std::vector<Policy> v{out6("2001:db8:a7:5::100/120", "2001:db8:e7::/48", 3, 100)};
  auto pols = ptrs(v);
  const std::vector<Address> local{parse_address("2001:db8:a7:5::1f0"), parse_address("2001:db8:a7:5::120"),
                                    parse_address("192.0.2.1"), parse_address("2001:db8:ffff::1")};
  auto m = npt6_of(v[0], lans, local);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.str(), "nat66 fd00:67::/48 -> 2001:db8:a7:5::121-2001:db8:a7:5::1ef (ports)");
  for (const Address& a : local) EXPECT_FALSE(m.pool_holds(a)) << a.str();
  SpdModel model;
  model.apply(PolicyUpsert{v[0]});
  auto entries = npt6_entries(model, lans, local);
  const npt6_rule* r = out_rule(entries, 0, "2001:db8:e7::/48");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::memcmp(r->to, parse_address("2001:db8:a7:5::121").bytes.data(), 16), 0);
  EXPECT_EQ(r->span, 0x1ef - 0x121);
  NatConfig cfg;
  cfg.local = local;
  for (int h = 1; h <= 32; ++h) {
    auto f = flow6(("fd00:67::" + std::to_string(h)).c_str(), "2001:db8:e7::1", IPPROTO_UDP, 40000, 53);
    auto n = reference_nat6(pols, lans, false, f, local);
    ASSERT_TRUE(n.to) << n.why;
    EXPECT_TRUE(m.pool_holds(*n.to)) << n.to->str();
    EXPECT_EQ(explain(pols, cfg, lans, false, AnyFlow(f)).to, *n.to);
  }
  std::vector<Policy> vip{out6("2001:db8:a7:5::9/128", "2001:db8:e7::/48", 4, 100)};
  auto one = npt6_of(vip[0], lans, {parse_address("2001:db8:a7:5::9")});
  EXPECT_EQ(one.str(), "nat66 fd00:67::/48 -> 2001:db8:a7:5::9 (ports)");
}

// An IPv6 [[nat]] rule (NatOverride, as the daemon builds it from the file, spd/npt6.h npt6_of).
NatOverride rule6(const char* inside, const char* to, spd_nat_kind kind = SPD_NAT_NAPT, uint32_t count = 1) {
  NatOverride o;
  o.inside = parse_prefix(inside);
  o.nat = parse_prefix(to);
  o.policy_src = o.nat;
  o.kind = kind;
  o.nat_count = count;
  o.origin = "t.toml:9";
  return o;
}

// A rule `to` one address inside a policy's /64 source selector: the policy takes NAT66 of the
// rule's inside prefix alone to exactly that address (not the selector's pool the SPD implies); the
// other IPv6 LAN is not translated by it. The reference, explain and the map (a NAT66 rule whose
// from/len name the rule's inside prefix, bpf/lib/nat66.h nat66_takes) agree; a policy whose source
// does not contain `to` keeps what the SPD implies.
TEST(ReferenceNat6, ANatRuleTakesItsInsidePrefixToExactlyItsAddress) {
  const std::vector<Prefix> lans{parse_prefix("fd00:61::/64"), parse_prefix("fd00:62::/48")};
  std::vector<Policy> v{out6("2001:db8:a1::/64", "2001:db8:e1::/48", 5, 100),
                        out6("2001:db8:a2::/64", "2001:db8:e2::/48", 6, 100)};
  auto pols = ptrs(v);
  NatConfig cfg;
  cfg.overrides = {rule6("fd00:61::/64", "2001:db8:a1::9")};
  auto m = npt6_of(v[0], lans, {}, cfg.overrides);
  ASSERT_TRUE(m.ok) << m.why;
  EXPECT_EQ(m.str(), "nat66 fd00:61::/64 -> 2001:db8:a1::9 (ports); nat rule t.toml:9");
  EXPECT_EQ(m.why, "configured (t.toml:9)");
  EXPECT_EQ(npt6_of(v[1], lans, {}, cfg.overrides).str(), npt6_of(v[1], lans).str());

  auto f = flow6("fd00:61::a", "2001:db8:e1::1", IPPROTO_TCP, 40000, 443);
  auto n = reference_nat6(pols, lans, false, f, {}, cfg.overrides);
  ASSERT_TRUE(n.to) << n.why;
  EXPECT_EQ(n.to->str(), "2001:db8:a1::9");
  Explanation e = explain(pols, cfg, lans, false, AnyFlow(f));
  EXPECT_EQ(e.kind, "nat66") << e.none_why;
  EXPECT_EQ(e.to.str(), "2001:db8:a1::9");
  ASSERT_NE(e.after, nullptr);
  EXPECT_EQ(e.after->index, 5u);
  auto other = flow6("fd00:62::a", "2001:db8:e1::1", IPPROTO_TCP, 40000, 443);
  EXPECT_FALSE(reference_nat6(pols, lans, false, other, {}, cfg.overrides).to);
  EXPECT_NE(explain(pols, cfg, lans, false, AnyFlow(other)).none_why.find("source not in the inside prefix fd00:61::/64"),
            std::string::npos);

  SpdModel model;
  for (const auto& p : v) model.apply(PolicyUpsert{p});
  auto entries = npt6_entries(model, lans, {}, cfg.overrides);
  const npt6_rule* r = out_rule(entries, 0, "2001:db8:e1::/48");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, NPT6_KIND_NAT66);
  EXPECT_EQ(std::memcmp(r->to, parse_address("2001:db8:a1::9").bytes.data(), 16), 0);
  EXPECT_EQ(r->span, 0u);
  EXPECT_EQ(r->len, 64u);
  EXPECT_EQ(std::memcmp(r->from, parse_address("fd00:61::").bytes.data(), 16), 0);
  // The policy no rule applies to keeps the rule the SPD implies.
  const npt6_rule* implied = out_rule(entries, 0, "2001:db8:e2::/48");
  const auto implied_only = npt6_entries(model, lans);
  const npt6_rule* without = out_rule(implied_only, 0, "2001:db8:e2::/48");
  ASSERT_NE(implied, nullptr);
  ASSERT_NE(without, nullptr);
  EXPECT_EQ(std::memcmp(implied, without, sizeof(npt6_rule)), 0);
}

// A pool (a range, or a prefix /112../127: its addresses after the all-zeros one, as the automatic
// pool) spreads the rule's LAN as the automatic pool does (npt6_pool_pick); one reaching beyond the
// policy's selector is refused for that policy in one line naming the rule; a prefix of the
// inside prefix's length is NPTv6 onto it (with --binat); two rules naming addresses of one
// policy are refused (its rule is kept per destination).
TEST(ReferenceNat6, ANatRulePoolOrPrefixAndItsRefusals) {
  const std::vector<Prefix> lans{parse_prefix("fd00:61::/64")};
  std::vector<Policy> v{out6("2001:db8:a1::/64", "2001:db8:e1::/48", 5, 100)};
  auto pols = ptrs(v);
  auto range = npt6_of(v[0], lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::10/128", SPD_NAT_NAPT, 4)});
  ASSERT_TRUE(range.ok) << range.why;
  EXPECT_EQ(range.to_str(), "2001:db8:a1::10-2001:db8:a1::13");
  auto block = npt6_of(v[0], lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::100/126")});
  ASSERT_TRUE(block.ok) << block.why;
  EXPECT_EQ(block.to_str(), "2001:db8:a1::101-2001:db8:a1::103");
  std::set<std::string> used;
  for (int h = 1; h <= 64; ++h) {
    auto f = flow6(("fd00:61::" + std::to_string(h)).c_str(), "2001:db8:e1::1");
    auto n = reference_nat6(pols, lans, false, f, {}, {rule6("fd00:61::/64", "2001:db8:a1::100/126")});
    ASSERT_TRUE(n.to) << n.why;
    EXPECT_TRUE(block.pool_holds(*n.to)) << n.to->str();
    EXPECT_EQ(*n.to, block.nat66_address(f.saddr));
    used.insert(n.to->str());
  }
  EXPECT_EQ(used.size(), 3u);

  std::vector<Policy> narrow{out6("2001:db8:a1::/120", "2001:db8:e1::/48", 7, 100)};
  auto beyond = npt6_of(narrow[0], lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::f0/128", SPD_NAT_NAPT, 32)});
  EXPECT_FALSE(beyond.ok);
  EXPECT_EQ(beyond.why, "nat rule t.toml:9: pool 2001:db8:a1::f0-2001:db8:a1::10f is not inside the policy's source "
                        "selector 2001:db8:a1::/120; name addresses inside it");

  auto map = npt6_of(v[0], lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::/64", SPD_NAT_PREFIX)});
  ASSERT_TRUE(map.ok) << map.why;
  EXPECT_EQ(map.str(), "nptv6 fd00:61::/64 -> 2001:db8:a1::/64; nat rule t.toml:9");
  auto f = flow6("fd00:61::1:2", "2001:db8:e1::1");
  auto n = reference_nat6(pols, lans, true, f, {}, {rule6("fd00:61::/64", "2001:db8:a1::/64", SPD_NAT_PREFIX)});
  ASSERT_TRUE(n.to) << n.why;
  EXPECT_EQ(*n.to, *npt6_map_address(map, f.saddr));
  EXPECT_FALSE(reference_nat6(pols, lans, false, f, {}, {rule6("fd00:61::/64", "2001:db8:a1::/64", SPD_NAT_PREFIX)}).to);

  auto two = npt6_of(v[0], lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::9"), rule6("fd00:62::/64", "2001:db8:a1::8")});
  EXPECT_FALSE(two.ok);
  EXPECT_EQ(two.why, "nat rules t.toml:9 and t.toml:9 both name an address of 2001:db8:a1::/64: an IPv6 policy's "
                     "translation is kept per destination, one rule per policy");
  SpdModel model;
  model.apply(PolicyUpsert{v[0]});
  EXPECT_EQ(out_rule(npt6_entries(model, lans, {}, {rule6("fd00:61::/64", "2001:db8:a1::9"),
                                                     rule6("fd00:62::/64", "2001:db8:a1::8")}),
                     0, "2001:db8:e1::/48"),
            nullptr);
}

}  // namespace
}  // namespace ipsnat::spd
