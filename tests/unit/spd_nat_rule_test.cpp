// [[nat]] rules (docs/config.md): a rule applies to the out-policies whose source selector
// contains its `to`, and only towards its `destinations`, which must lie inside the policy's
// destination selector. Judged by the reference (loader/spd/reference.*) and by the compiled maps
// the datapath reads, which must agree.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/reference.h"
#include "unit/spd_policies.h"

using namespace ipsnat;
using namespace ipsnat::spd;
using namespace ipsnat::spd::test;

namespace {

NatOverride rule(const char* inside, const char* to, std::vector<const char*> destinations = {}) {
  NatOverride o;
  o.inside = parse_prefix(inside);
  o.nat = parse_prefix(to);
  o.policy_src = o.nat;
  o.kind = o.nat.len == 32 ? SPD_NAT_NAPT : SPD_NAT_PREFIX;
  for (const char* d : destinations) o.destinations.push_back(parse_prefix(d));
  o.origin = "t.toml:7";
  return o;
}

// The source a flow leaves with, by the reference and by the compiled maps ("" untranslated);
// both must agree.
std::string translated(const std::vector<const Policy*>& pols, const NatConfig& cfg, const Flow4& f) {
  auto want = reference_nat_target(pols, cfg, f);
  CompiledSpd c = compile_spd(pols, cfg);
  EXPECT_FALSE(c.refused) << *c.refused;
  auto got = CompiledEvaluator(c).nat_target(f);
  EXPECT_EQ(want.has_value(), got.has_value()) << f.str();
  if (!got) return "";
  return Address::v4(nat_translate(*got, f.saddr)).str();
}

}  // namespace

// `to` one address inside a policy's /24 source selector: the rule applies to that policy (the
// kernel gives the translated source to it), NAPT to exactly `to`.
TEST(SpdNatRule, AppliesToThePoliciesWhoseSourceContainsTo) {
  Policy p = out_policy("172.16.40.0/24", "10.0.0.0/8", 11);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.5.0/24"));
  cfg.overrides.push_back(rule("192.168.5.0/24", "172.16.40.9"));
  std::vector<const Policy*> pols{&p};
  EXPECT_EQ("172.16.40.9", translated(pols, cfg, flow4("192.168.5.20", "10.9.9.9")));
  EXPECT_EQ(SPD_NAT_NAPT, implied_nat(p, cfg).kind) << implied_nat(p, cfg).str();
  // A policy whose source does not contain `to` keeps what the SPD implies.
  Policy other = out_policy("172.16.41.0/24", "10.0.0.0/8", 12);
  EXPECT_EQ("prefix 192.168.5.0/24 -> 172.16.41.0/24", implied_nat(other, cfg).str());
}

// A rule towards 10.1.0.0/16 of a policy for 10.0.0.0/8: its LAN is translated only there; the
// rest of the policy's destinations get no translation (the guard keeps their cleartext in).
TEST(SpdNatRule, DestinationsRestrictTheTranslation) {
  Policy p = out_policy("198.51.100.7/32", "10.0.0.0/8", 21);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.5.0/24"));
  cfg.overrides.push_back(rule("192.168.5.0/24", "198.51.100.7", {"10.1.0.0/16", "10.3.3.0/24"}));
  std::vector<const Policy*> pols{&p};
  EXPECT_EQ("198.51.100.7", translated(pols, cfg, flow4("192.168.5.20", "10.1.200.1")));
  EXPECT_EQ("198.51.100.7", translated(pols, cfg, flow4("192.168.5.20", "10.3.3.3")));
  EXPECT_EQ("", translated(pols, cfg, flow4("192.168.5.20", "10.2.0.1")));
  EXPECT_EQ("", translated(pols, cfg, flow4("192.168.5.20", "10.3.4.1")));
  EXPECT_EQ("napt 192.168.5.0/24 -> 198.51.100.7 for 10.1.0.0/16", implied_nat(p, cfg).str());
  // The maps carry the restriction in the target itself.
  CompiledSpd c = compile_spd(pols, cfg);
  ASSERT_EQ(1u, c.dst.size());
  EXPECT_EQ(2u, c.dst[0].cell.n_nat);
}

// A finer policy inside the rule's destinations gets its own cell: the rule still applies there
// (the rule's destination contains that cell), and not in a finer cell outside them.
TEST(SpdNatRule, DestinationsAcrossFinerCells) {
  Policy wide = out_policy("198.51.100.7/32", "10.0.0.0/8", 31);
  Policy inner = out_policy("198.51.100.7/32", "10.1.2.0/24", 32);
  Policy outer = out_policy("198.51.100.7/32", "10.2.2.0/24", 33);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.5.0/24"));
  cfg.overrides.push_back(rule("192.168.5.0/24", "198.51.100.7", {"10.1.0.0/16"}));
  std::vector<const Policy*> pols{&wide, &inner, &outer};
  EXPECT_EQ("198.51.100.7", translated(pols, cfg, flow4("192.168.5.20", "10.1.2.3")));
  EXPECT_EQ("198.51.100.7", translated(pols, cfg, flow4("192.168.5.20", "10.1.7.3")));
  EXPECT_EQ("", translated(pols, cfg, flow4("192.168.5.20", "10.2.2.3")));
  EXPECT_EQ("", translated(pols, cfg, flow4("192.168.5.20", "10.7.0.1")));
}

// A destination wider than the policy's selector is refused for that policy, in one line naming
// the rule; a disjoint one is another policy's business.
TEST(SpdNatRule, ADestinationOutsideThePolicysSelectorIsAnError) {
  Policy p = out_policy("198.51.100.7/32", "10.1.0.0/16", 41);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.5.0/24"));
  cfg.overrides.push_back(rule("192.168.5.0/24", "198.51.100.7", {"10.0.0.0/8"}));
  ImpliedNat n = implied_nat(p, cfg);
  EXPECT_EQ(SPD_NAT_NONE, n.kind);
  EXPECT_EQ("nat rule t.toml:7: destination 10.0.0.0/8 is not inside the policy's destination selector "
            "10.1.0.0/16; name prefixes inside it",
            n.why);
  std::vector<const Policy*> pols{&p};
  EXPECT_EQ("", translated(pols, cfg, flow4("192.168.5.20", "10.1.0.1")));

  // Disjoint: the rule is not this policy's, which keeps the NAPT the SPD implies.
  cfg.overrides = {rule("192.168.5.0/24", "198.51.100.7", {"172.20.0.0/16"})};
  EXPECT_EQ("napt 192.168.5.0/24 -> 198.51.100.7", implied_nat(p, cfg).str());
}

// Unequal sizes: LANs larger than the policy's source block are translated by NAPT over the
// block's addresses (every inside prefix, as for one address), each LAN host keeping one address.
// A LAN that fits is still mapped 1:1 onto the block's first part.
TEST(SpdNatPool, ALanLargerThanTheSourceBlockIsNaptOverTheBlock) {
  Policy p = out_policy("100.70.8.0/29", "10.44.0.0/16", 51);
  NatConfig cfg;
  cfg.inside = {parse_prefix("172.22.0.0/16"), parse_prefix("192.168.1.0/24")};
  ImpliedNat n = implied_nat(p, cfg);
  EXPECT_EQ("napt 172.22.0.0/16, 192.168.1.0/24 -> 100.70.8.0-100.70.8.7", n.str());
  spd_nat_target t = n.target(p);
  EXPECT_EQ(7u, t.nat_span);
  EXPECT_EQ(SPD_NAT_INSIDE_SET, t.flags);
  std::vector<const Policy*> pols{&p};
  std::set<std::string> used;
  for (int h = 1; h <= 30; h++) {
    std::string host = "172.22.3." + std::to_string(h);
    std::string x = translated(pols, cfg, flow4(host.c_str(), "10.44.1.1"));
    EXPECT_EQ(0u, x.rfind("100.70.8.", 0)) << host << " -> " << x;
    EXPECT_EQ(x, translated(pols, cfg, flow4(host.c_str(), "10.44.200.2"))) << host;
    used.insert(x);
  }
  EXPECT_GE(used.size(), 6u);

  // The seed's sizes: a /24 behind a /27.
  Policy seed = out_policy("10.20.30.0/27", "10.0.0.0/8", 52);
  cfg.inside = {parse_prefix("192.168.1.0/24")};
  EXPECT_EQ("napt 192.168.1.0/24 -> 10.20.30.0-10.20.30.31", implied_nat(seed, cfg).str());
  // A LAN that fits: 1:1 onto the first part, as before.
  cfg.inside = {parse_prefix("192.168.1.0/29")};
  EXPECT_EQ("prefix 192.168.1.0/29 -> 10.20.30.0/29", implied_nat(seed, cfg).str());
}

// A [[nat]] rule's pool: NAPT over its addresses, which must lie inside the policy's source
// selector, or the rule does not apply to the policy and says so in one line.
TEST(SpdNatPool, ARulesPoolSpreadsHostsAndMustLieInsideTheSelector) {
  Policy p = out_policy("10.20.30.0/29", "10.0.0.0/8", 61);
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  NatOverride o = rule("192.168.1.0/24", "10.20.30.2");
  o.nat_count = 2;
  cfg.overrides.push_back(o);
  EXPECT_EQ("napt 192.168.1.0/24 -> 10.20.30.2-10.20.30.3", implied_nat(p, cfg).str());
  std::vector<const Policy*> pols{&p};
  std::set<std::string> used;
  for (int h = 1; h <= 20; h++) used.insert(translated(pols, cfg, flow4(("192.168.1." + std::to_string(h)).c_str(), "10.1.1.1")));
  EXPECT_EQ((std::set<std::string>{"10.20.30.2", "10.20.30.3"}), used);

  cfg.overrides[0].nat = parse_prefix("10.20.30.6");
  cfg.overrides[0].policy_src = cfg.overrides[0].nat;
  cfg.overrides[0].nat_count = 4;
  ImpliedNat n = implied_nat(p, cfg);
  EXPECT_EQ(SPD_NAT_NONE, n.kind);
  EXPECT_EQ("nat rule t.toml:7: pool 10.20.30.6-10.20.30.9 is not inside the policy's source selector "
            "10.20.30.0/29; name addresses inside it",
            n.why);
}

// Neighbouring LAN hosts spread over a pool: any run of consecutive hosts as long as the pool
// uses most of its addresses (a hash's top bits, as netfilter's reciprocal_scale; low product bits
// pair neighbours up), for pool sizes that are and are not a power of two, on several LANs.
TEST(SpdNatPool, NeighbouringHostsSpreadOverThePool) {
  int crowded = 0;
  std::string first;
  for (uint32_t lan : {0xAC160500u, 0xC0A80100u, 0x0A010200u, 0x64400000u}) {
    for (uint32_t size : {4u, 6u, 8u, 13u}) {
      for (uint32_t h = 1; h + size < 255; h++) {
        std::set<uint32_t> used;
        for (uint32_t k = 0; k < size; k++) used.insert(spd_nat_pool_pick(lan + h + k, size - 1));
        ASSERT_LT(*used.rbegin(), size);
        // More than half the pool (a uniformly random pick averages 1 - 1/e of it, about 63 %).
        if (used.size() >= (size + 1) / 2 + 1) continue;
        if (!crowded++) first = "pool " + std::to_string(size) + ": " + std::to_string(used.size()) + " addresses for hosts from ." + std::to_string(h);
      }
    }
  }
  EXPECT_EQ(0, crowded) << "first: " << first;
}

// The gateway's own addresses inside a pool (a virtual IP in the policy's block) are left out of
// it, as NAT66's (ReferenceNat6.APoolLeavesTheGatewaysOwnAddressesOut): the pool is the longest
// run of its addresses no local one interrupts (the first of equal runs), for the pool the SPD
// implies and a [[nat]] rule's alike; no LAN host is translated to a local address, by the
// reference or the compiled maps. A [[nat]] rule's single `to` and a one-address policy stay
// that address, local or not; a pool of local addresses only stays whole.
TEST(SpdNatPool, AGatewayAddressInsideThePoolIsLeftOutOfIt) {
  Policy p = out_policy("100.70.8.0/29", "10.44.0.0/16", 81);
  NatConfig cfg;
  cfg.inside = {parse_prefix("172.22.0.0/16")};
  cfg.local = {parse_address("100.70.8.2"), parse_address("172.22.0.1"), parse_address("198.51.100.1"),
               parse_address("2001:db8::1")};
  ImpliedNat n = implied_nat(p, cfg);
  EXPECT_EQ("napt 172.22.0.0/16 -> 100.70.8.3-100.70.8.7", n.str());
  spd_nat_target t = n.target(p);
  EXPECT_EQ(parse_address("100.70.8.3").v4_be(), t.nat_addr);
  EXPECT_EQ(4u, t.nat_span);
  std::string blocks;
  for (const auto& b : n.nat_blocks()) blocks += b.str() + " ";
  EXPECT_EQ("100.70.8.3/32 100.70.8.4/30 ", blocks);
  std::vector<const Policy*> pols{&p};
  std::set<std::string> used;
  for (int h = 1; h <= 40; h++) used.insert(translated(pols, cfg, flow4(("172.22.3." + std::to_string(h)).c_str(), "10.44.1.1")));
  EXPECT_EQ((std::set<std::string>{"100.70.8.3", "100.70.8.4", "100.70.8.5", "100.70.8.6", "100.70.8.7"}), used);

  // Two local addresses: the longest run between them; of equal runs the first.
  cfg.local = {parse_address("100.70.8.5"), parse_address("100.70.8.1")};
  EXPECT_EQ("napt 172.22.0.0/16 -> 100.70.8.2-100.70.8.4", implied_nat(p, cfg).str());
  cfg.local = {parse_address("100.70.8.3"), parse_address("100.70.8.7")};
  EXPECT_EQ("napt 172.22.0.0/16 -> 100.70.8.0-100.70.8.2", implied_nat(p, cfg).str());
  // Every address local: the pool stays whole.
  cfg.local.clear();
  for (int a = 0; a < 8; a++) cfg.local.push_back(parse_address(("100.70.8." + std::to_string(a)).c_str()));
  EXPECT_EQ("napt 172.22.0.0/16 -> 100.70.8.0-100.70.8.7", implied_nat(p, cfg).str());

  // A [[nat]] rule's pool alike; its single `to` stays, local or not (the gateway's own address
  // as a masquerade would).
  Policy q = out_policy("10.20.30.0/29", "10.0.0.0/8", 82);
  cfg.inside = {parse_prefix("192.168.1.0/24")};
  cfg.local = {parse_address("10.20.30.3")};
  NatOverride o = rule("192.168.1.0/24", "10.20.30.2");
  o.nat_count = 4;
  cfg.overrides = {o};
  EXPECT_EQ("napt 192.168.1.0/24 -> 10.20.30.4-10.20.30.5", implied_nat(q, cfg).str());
  cfg.overrides[0].nat_count = 1;
  cfg.local = {parse_address("10.20.30.2")};
  EXPECT_EQ("napt 192.168.1.0/24 -> 10.20.30.2", implied_nat(q, cfg).str());
  Policy vip = out_policy("10.20.30.2/32", "10.0.0.0/8", 83);
  cfg.overrides.clear();
  EXPECT_EQ("napt 192.168.1.0/24 -> 10.20.30.2", implied_nat(vip, cfg).str());
}

// The decision that makes established flows check their address again (spd/nat.h
// local_change_moves_nat; the mirror publishes a new SPD version on it): a gateway address that
// comes into or leaves an IPv4 pool or a NAT66 pool changes the translation; one outside every
// pool, on a one-address policy's own address, or the same addresses, change nothing.
TEST(SpdNatPool, OnlyALocalAddressInsideAPoolChangesTheTranslation) {
  SpdModel model;
  model.apply(PolicyUpsert{out_policy("100.70.8.0/29", "10.44.0.0/16", 91)});
  model.apply(PolicyUpsert{out_policy("10.20.30.2/32", "10.0.0.0/8", 92)});
  Policy six = tunnel_policy(Dir::Out, parse_prefix("2001:db8:a7:5::100/120"), parse_prefix("2001:db8:e7::/48"), 93);
  six.index = 93;
  model.apply(PolicyUpsert{six});
  NatConfig cfg;
  cfg.inside = {parse_prefix("172.22.0.0/16"), parse_prefix("fd00:67::/48")};
  cfg.local = {parse_address("200.2.2.2")};
  auto with = [&](std::vector<const char*> extra) {
    std::vector<Address> l = cfg.local;
    for (const char* a : extra) l.push_back(parse_address(a));
    return l;
  };
  EXPECT_FALSE(local_change_moves_nat(model, cfg, cfg.local));
  EXPECT_FALSE(local_change_moves_nat(model, cfg, with({"198.51.100.9"})));
  EXPECT_FALSE(local_change_moves_nat(model, cfg, with({"10.20.30.2"})));
  EXPECT_FALSE(local_change_moves_nat(model, cfg, with({"2001:db8:a7:6::120"})));
  EXPECT_FALSE(local_change_moves_nat(model, cfg, {}));
  EXPECT_TRUE(local_change_moves_nat(model, cfg, with({"100.70.8.4"})));
  EXPECT_TRUE(local_change_moves_nat(model, cfg, with({"2001:db8:a7:5::120"})));
  // And back: an address that leaves the pool gives it back.
  cfg.local = with({"100.70.8.4"});
  EXPECT_TRUE(local_change_moves_nat(model, cfg, {parse_address("200.2.2.2")}));
}

// A pool another policy's source selector divides (towards the same destination) could hand a
// flow's next address to that policy: the SPD is not mirrored (fails closed) and says why.
TEST(SpdNatPool, APoolDividedByAnotherPolicysSourceIsRefused) {
  Policy pool = out_policy("10.20.30.0/29", "10.0.0.0/8", 71);
  Policy one = out_policy("10.20.30.5/32", "10.0.0.0/8", 72);
  one.priority = 1;
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  std::vector<const Policy*> pols{&one, &pool};
  CompiledSpd c = compile_spd(pols, cfg);
  ASSERT_TRUE(c.refused);
  EXPECT_NE(std::string::npos, c.refused->find("its NAT pool 10.20.30.0-10.20.30.7 is divided by the source selector "
                                               "10.20.30.5/32 of another policy towards the same destination"))
      << *c.refused;
  // Towards another destination the two do not meet: mirrored.
  Policy elsewhere = out_policy("10.20.30.5/32", "172.31.0.0/16", 73);
  std::vector<const Policy*> apart{&elsewhere, &pool};
  EXPECT_FALSE(compile_spd(apart, cfg).refused);
}
