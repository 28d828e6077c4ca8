// The model's age order is the kernel's (xfrm_policy `pos`): a dump lists newest first, a
// notification announces the newest; an update that keeps the priority keeps its place in its
// kernel list; a hard POLEXPIRE deletes. Transport-mode policies imply no translation. The
// kernel itself judges the same rules in SpdDifferentialNetns and SpdMirrorNetns.
#include <gtest/gtest.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <string>

#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/reference.h"
#include "unit/spd_policies.h"
#include "xfrm/policy_msg.h"

using namespace ipsnat;
using namespace ipsnat::spd;
using namespace ipsnat::xfrm;
using namespace ipsnat::spd::test;

namespace {

std::vector<uint32_t> age_order(const SpdModel& m) {
  std::vector<uint32_t> v;
  for (const Policy* p : m.ordered()) v.push_back(p->index);
  return v;
}

}  // namespace

TEST(SpdModelOrder, ADumpListsTheNewestFirst) {
  SpdModel m;
  // The tie: /32 -> /8 and /24 -> /16 have equal priority; 1 is older than 9.
  m.apply(PolicyUpsert{out_policy("10.20.31.0/24", "10.0.0.0/16", 9)}, SpdModel::From::Dump);
  m.apply(PolicyUpsert{out_policy("10.20.30.2/32", "10.0.0.0/8", 1)}, SpdModel::From::Dump);
  EXPECT_EQ((std::vector<uint32_t>{1, 9}), age_order(m));
  // The kernel's ACQUIRE names the older one.
  auto pick = reference_lookup(m.ordered(), flow4("10.20.30.2", "10.0.0.1"));
  ASSERT_TRUE(pick);
  EXPECT_EQ(1u, pick->index);
  // Notified later: newer than everything dumped.
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 17)});
  EXPECT_EQ((std::vector<uint32_t>{1, 9, 17}), age_order(m));
  // A dump after clear() (a resync) orders from scratch.
  m.clear();
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 17)}, SpdModel::From::Dump);
  m.apply(PolicyUpsert{out_policy("10.20.31.0/24", "10.0.0.0/16", 9)}, SpdModel::From::Dump);
  m.apply(PolicyUpsert{out_policy("10.20.30.2/32", "10.0.0.0/8", 1)}, SpdModel::From::Dump);
  EXPECT_EQ((std::vector<uint32_t>{1, 9, 17}), age_order(m));
}

TEST(SpdModelOrder, AnUpdateIsTheNewestAlsoWhenNothingChanged) {
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 1)});
  m.apply(PolicyUpsert{out_policy("10.20.30.2/32", "10.0.0.0/8", 9)});
  m.take_changes();
  // UPDPOLICY with the same content: the kernel links a new policy at the head.
  EXPECT_TRUE(m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 1)}));
  EXPECT_EQ((std::vector<uint32_t>{9, 1}), age_order(m));
  EXPECT_FALSE(m.take_changes().indices.empty());
  // A dump repeating it (a notification queued before the dump reply) changes nothing.
  EXPECT_FALSE(m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 1)}, SpdModel::From::Dump));
  EXPECT_EQ((std::vector<uint32_t>{9, 1}), age_order(m));
}

TEST(SpdModelOrder, AHardPolicyExpiryDeletesASoftOneDoesNot) {
  SpdModel m;
  Policy p = out_policy("10.20.30.2/32", "10.0.0.0/8", 0x1a1);
  m.apply(PolicyUpsert{p});
  char buf[4096];
  auto soft = parse_policy_msg(build_polexpire_msg(buf, sizeof(buf), p, false));
  EXPECT_FALSE(soft.has_value());
  auto hard = parse_policy_msg(build_polexpire_msg(buf, sizeof(buf), p, true));
  ASSERT_TRUE(hard.has_value());
  EXPECT_TRUE(m.apply(*hard));
  EXPECT_EQ(0u, m.size());
}

// A policy whose source block holds a LAN (site-to-site without NAT) or lies in one implies no
// translation: mapping another LAN onto it would take its hosts' addresses, and the 1:1 map's
// blackhole route would swallow the LAN's inbound traffic.
TEST(SpdModelOrder, APolicySourceOverlappingALanImpliesNoTranslation) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("192.168.2.0/24"));
  for (const char* src : {"192.168.1.0/24", "192.168.0.0/16", "192.168.1.128/25"}) {
    ImpliedNat n = implied_nat(out_policy(src, "10.0.0.0/8", 1), cfg);
    EXPECT_EQ(SPD_NAT_NONE, n.kind) << src << ": " << n.str();
    EXPECT_NE(std::string::npos, n.why.find("overlaps the inside prefix")) << n.why;
  }
  // A block of its own (the translated range of overlapping sites) is still a 1:1 map.
  ImpliedNat n = implied_nat(out_policy("172.16.1.0/24", "10.0.0.0/8", 1), cfg);
  EXPECT_EQ(SPD_NAT_PREFIX, n.kind) << n.str();
}

TEST(SpdModelOrder, TransportModeImpliesNoTranslationButCovers) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.7.0/24"));
  Policy tunnel = out_policy("10.20.30.2/32", "10.0.0.0/8", 1);
  EXPECT_EQ(SPD_NAT_NAPT, implied_nat(tunnel, cfg).kind);
  Policy transport = out_policy("10.20.30.2/32", "10.0.0.0/8", 1, XFRM_MODE_TRANSPORT);
  ImpliedNat n = implied_nat(transport, cfg);
  EXPECT_EQ(SPD_NAT_NONE, n.kind) << n.str();
  EXPECT_NE(std::string::npos, n.why.find("transport"));
  std::vector<const Policy*> pols{&transport};
  EXPECT_TRUE(reference_out_covered(pols, flow4("192.168.7.9", "10.1.2.3")));
  EXPECT_FALSE(reference_nat_target(pols, cfg, flow4("192.168.7.9", "10.1.2.3")));
  // The compiled maps agree: covered for the guard, no translation.
  CompiledSpd c = compile_spd(pols, cfg);
  ASSERT_FALSE(c.refused);
  CompiledEvaluator ev(c);
  EXPECT_EQ(CompiledCover::kIpsec, ev.out_covered(flow4("192.168.7.9", "10.1.2.3")));
  EXPECT_FALSE(ev.nat_target(flow4("192.168.7.9", "10.1.2.3")));
}

namespace {

// The kernel's choice for a flow by the reference and by the compiled maps (0: none, or the
// maps refused the SPD).
struct Choice {
  uint32_t reference = 0, maps = 0;
  std::optional<std::string> refused;
};
Choice choose(const SpdModel& m, const Flow4& f) {
  Choice c;
  const Policy* p = reference_lookup(m.ordered(), f);
  c.reference = p ? p->index : 0;
  CompiledSpd spd = compile_spd(m.ordered(), NatConfig{});
  c.refused = spd.refused;
  if (!spd.refused) {
    auto v = CompiledEvaluator(spd).lookup(f);
    c.maps = v ? v->policy_index : 0;
  }
  return c;
}

PolicyDelete delete_index(uint32_t index) {
  PolicyDelete d;
  d.index = index;
  return d;
}

Policy prio(Policy p, uint32_t priority) {
  p.priority = priority;
  return p;
}

}  // namespace

TEST(SpdModelOrder, KernelListsFollowTheSelectorsPrefixes) {
  EXPECT_EQ(KernelList::Exact, kernel_list(out_policy("10.9.0.1/32", "10.1.2.3/32", 1)));
  EXPECT_EQ(KernelList::Any, kernel_list(out_policy("0.0.0.0/0", "10.0.0.0/8", 1)));  // /8 is shorter than /16
  EXPECT_EQ(KernelList::Any, kernel_list(out_policy("0.0.0.0/24", "0.0.0.0/16", 1)));  // address 0
  EXPECT_EQ(KernelList::Src, kernel_list(out_policy("10.20.30.2/32", "10.0.0.0/8", 1)));
  EXPECT_EQ(KernelList::Dst, kernel_list(out_policy("10.48.0.0/12", "10.1.0.0/16", 1)));
  EXPECT_EQ(KernelList::Both, kernel_list(out_policy("10.20.31.0/24", "10.0.0.0/16", 1)));
  EXPECT_EQ(KernelList::Both, kernel_list(out_policy("10.9.0.1/32", "10.1.2.0/31", 1)));
}

// SpdMirrorNetns.AnUpdateKeepingThePriorityKeepsItsPlaceInItsKernelList on the kernel.
TEST(SpdModelOrder, AnUpdateKeepingThePriorityKeepsItsPlaceInItsList) {
  const Flow4 f = flow4("10.9.0.1", "10.1.2.3");
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 9)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});  // update, same priority
  EXPECT_EQ((std::vector<uint32_t>{9, 1}), age_order(m));              // 1 is the newest ...
  Choice c = choose(m, f);
  EXPECT_EQ(1u, c.reference);  // ... and still first in the destination list
  EXPECT_EQ(1u, c.maps);
  // Another update keeps that place again; one with another priority gives it up.
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});
  EXPECT_EQ(1u, choose(m, f).maps);
  m.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 1), 50)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});  // back to 100: the back of the list
  c = choose(m, f);
  EXPECT_EQ(9u, c.reference);
  EXPECT_EQ(9u, c.maps);
}

TEST(SpdModelOrder, AcrossListsTheOlderWinsAlsoAfterAnUpdateInPlace) {
  const Flow4 f = flow4("10.9.0.1", "10.1.2.3");
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});  // destination list
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 9)});   // any/any list
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});
  Choice c = choose(m, f);
  EXPECT_EQ(9u, c.reference);
  EXPECT_EQ(9u, c.maps);
  // The exact chain and a source node are lists of their own too.
  m.apply(PolicyUpsert{out_policy("10.9.0.1/32", "10.1.2.3/32", 17)});
  m.apply(PolicyUpsert{out_policy("10.9.0.1/32", "10.0.0.0/8", 25)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.0.0.0/8", 9)});  // 9 in place: now the newest
  c = choose(m, f);
  EXPECT_EQ(1u, c.reference);
  EXPECT_EQ(1u, c.maps);
}

// Kept places in one list against ties in another: the kernel's choice for these three can be
// no first-match order (tcp with mark: 2; tcp: 1; udp with mark: 3), so the SPD is refused.
TEST(SpdModelOrder, AChoiceNoListOrderExpressesIsRefused) {
  SpdModel m;
  Policy u = out_policy("0.0.0.0/0", "10.1.0.0/16", 1);
  u.sel.proto = IPPROTO_TCP;
  Policy a = out_policy("0.0.0.0/0", "10.1.2.0/24", 3);
  Policy b = out_policy("0.0.0.0/0", "10.0.0.0/8", 2);
  b.mark_v = 1, b.mark_m = 0xff;
  m.apply(PolicyUpsert{u});
  m.apply(PolicyUpsert{a});
  m.apply(PolicyUpsert{b});
  m.apply(PolicyUpsert{u});  // u: the newest, first in its list
  Flow4 f = flow4("10.9.0.1", "10.1.2.3");
  f.proto = IPPROTO_TCP;
  f.mark = 1;
  EXPECT_EQ(2u, choose(m, f).reference);
  f.mark = 0;
  EXPECT_EQ(1u, choose(m, f).reference);
  f.proto = IPPROTO_UDP;
  f.mark = 1;
  Choice c = choose(m, f);
  EXPECT_EQ(3u, c.reference);
  ASSERT_TRUE(c.refused);
  EXPECT_NE(std::string::npos, c.refused->find("depends on which of them match")) << *c.refused;
  // The same without the kept place is an order: 1 before 3 (one list), 3 before 2 (older).
  m.apply(delete_index(1));
  m.apply(PolicyUpsert{u});
  EXPECT_FALSE(choose(m, f).refused);
}

// A dump shows ages, not places: a tie in one list is ordered by age (the kernel's list order
// unless an update kept a place before the mirror started), marked as a guess, and mirrored.
TEST(SpdModelOrder, ADumpsTieInOneListIsOrderedByAge) {
  const Flow4 f = flow4("10.9.0.1", "10.1.2.3");
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 9)}, SpdModel::From::Dump);
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)}, SpdModel::From::Dump);
  // 9 is the newer (dumped first): behind 1 in their list.
  Choice c = choose(m, f);
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(1u, c.maps);
  EXPECT_TRUE(m.by_index().at(1).place_unknown);
  // An update in place keeps 1's place; one with another priority and back makes 1 the newest
  // and its place known: 9 first.
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});
  c = choose(m, f);
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(1u, c.maps);
  m.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 1), 50)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.0.0/16", 1)});
  c = choose(m, f);
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(9u, c.maps);
}

// A new policy whose prefix no node holds may merge tree nodes, which re-sorts some of them:
// a kept place under it becomes unknown. Under an existing wider prefix nothing merges.
TEST(SpdModelOrder, ANodeMergeMakesAKeptPlaceUnderItAGuess) {
  const Flow4 f = flow4("10.9.0.1", "10.1.2.3");
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/25", 9)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});  // kept place: before 9
  EXPECT_EQ(1u, choose(m, f).maps);
  m.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.2.0/26", 17), 300)});  // inside 10.1.2.0/24's node
  EXPECT_EQ(1u, choose(m, f).maps);
  m.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 25), 300)});  // may merge that node
  Choice c = choose(m, f);
  EXPECT_EQ(1u, c.reference);
  EXPECT_FALSE(c.refused) << "a merge leaves the held order as the guess";
  EXPECT_TRUE(m.by_index().at(1).place_unknown);
  // Elsewhere (another tree, another bin) nothing changes.
  SpdModel n;
  n.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});
  n.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/25", 9)});
  n.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});
  n.apply(PolicyUpsert{prio(out_policy("10.9.0.0/16", "10.0.0.0/8", 25), 300)});  // source tree
  Policy other_bin = prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 33), 300);
  other_bin.if_id = 5;
  n.apply(PolicyUpsert{other_bin});
  c = choose(n, f);
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(1u, c.maps);
  // An update with another priority: the kernel inserts it while the old one holds its node.
  SpdModel o;
  o.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 25), 300)});
  o.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});
  o.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/25", 9)});
  o.apply(PolicyUpsert{out_policy("0.0.0.0/0", "10.1.2.0/24", 1)});
  o.apply(PolicyUpsert{prio(out_policy("0.0.0.0/0", "10.1.0.0/16", 25), 301)});
  c = choose(o, f);
  EXPECT_FALSE(c.refused);
  EXPECT_EQ(1u, c.maps);
}
