// [[nat]] rules (docs/config.md): a rule applies to the out-policies whose source selector
// contains its `to`, and only towards its `destinations`, which must lie inside the policy's
// destination selector. Judged by the reference (loader/spd/reference.*) and by the compiled maps
// the datapath reads, which must agree.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spd/compiler.h"
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
