// Random overlapping SPDs and random flows: the compiled maps, evaluated with the datapath's
// algorithm, must give the reference's answer for lookup, NAT target and coverage.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "spd/compiler.h"
#include "spd/incremental.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "support/spd_gen.h"

using namespace ipsnat;
using namespace ipsnat::spd;

using ipsnat::test::ChangeGen;
using ipsnat::test::Gen;

namespace {

// A policy the maps carry as SPD_V_UNKNOWN is judged against two references: one where the
// kernel never gives it a flow (its device or ICMP type never meets one: `none`) and one where
// it gives it every flow its other conditions allow (`all`). The datapath must answer exactly
// where both agree and fail closed (SPD_V_UNKNOWN, kUnknown) only where `all` picks such a
// policy; `all_ipsec` makes those policies IPsec, the coverage the guard must enforce.
struct UnknownWorlds {
  std::vector<Policy> all_store, all_ipsec_store;
  std::vector<const Policy*> none, all, all_ipsec;
  std::set<uint32_t> unknown;  // indices

  explicit UnknownWorlds(const std::vector<const Policy*>& pols) {
    all_store.reserve(pols.size());
    all_ipsec_store.reserve(pols.size());
    for (const Policy* p : pols) {
      Policy a = *p;
      if (unknown_condition(*p)) {
        unknown.insert(p->index);
        a.sel.ifindex = 0;
        if (!proto_has_ports(a.sel.proto)) a.sel.sport = a.sel.sport_mask = a.sel.dport = a.sel.dport_mask = 0;
      } else {
        none.push_back(p);
      }
      all_store.push_back(a);
      if (unknown_condition(*p)) {
        a.action = Action::Allow;
        Template t;
        t.mode = 1;
        t.proto = IPPROTO_ESP;
        a.tmpls = {t};
      }
      all_ipsec_store.push_back(a);
    }
    for (const auto& a : all_store) all.push_back(&a);
    for (const auto& a : all_ipsec_store) all_ipsec.push_back(&a);
  }
};

// The compiled answer for f against the references (lookup, NAT target, coverage); counts what
// it saw into *unknown_hits (the datapath failing closed) when not null.
::testing::AssertionResult exact_or_fail_closed(const UnknownWorlds& w, const NatConfig& cfg,
                                                const CompiledEvaluator& ev, const Flow4& f, int* unknown_hits = nullptr) {
  auto fail = [&f](const std::string& what) { return ::testing::AssertionFailure() << what << " flow " << f.str(); };
  const Policy* all = reference_lookup(w.all, f);
  const Policy* none = reference_lookup(w.none, f);
  auto got = ev.lookup(f);
  if ((all != nullptr) != got.has_value()) return fail("lookup found/not found");
  if (got) {
    if (got->policy_index != all->index) return fail("lookup chose " + std::to_string(got->policy_index));
    bool is_unknown = w.unknown.count(all->index) > 0;
    if ((got->verdict == SPD_V_UNKNOWN) != is_unknown) return fail("verdict unknown or not");
    if (!is_unknown && (!none || none->index != all->index)) return fail("a definite verdict the kernel may not give");
    if (!is_unknown && all->is_ipsec() != (got->verdict == SPD_V_IPSEC)) return fail("verdict");
    if (is_unknown && unknown_hits) ++*unknown_hits;
  }
  auto gn = ev.nat_target(f);
  auto wn = reference_nat_target(w.none, cfg, f);
  if (gn) {
    Flow4 x = f;
    x.saddr = nat_translate(*gn, f.saddr);
    const Policy* xa = reference_lookup(w.all, x);
    const Policy* xn = reference_lookup(w.none, x);
    if (!xa || !xn || xa->index != gn->policy_index || xn->index != gn->policy_index)
      return fail("translated where the kernel may choose another policy");
  }
  if (wn) {
    Flow4 x = f;
    x.saddr = nat_translate(*wn, f.saddr);
    const Policy* xa = reference_lookup(w.all, x);
    bool met_unknown = xa && w.unknown.count(xa->index);
    if (!met_unknown && (!gn || std::memcmp(&*wn, &*gn, sizeof(*wn)) != 0)) return fail("NAT target");
  } else if (gn) {
    return fail("NAT target without one in the reference");
  }
  CompiledCover cover = ev.out_covered(f);
  if ((cover != CompiledCover::kNo) != reference_out_covered(w.all_ipsec, f)) return fail("coverage");
  if (cover == CompiledCover::kIpsec && !reference_out_covered(w.none, f)) return fail("covered by IPsec");
  if (cover == CompiledCover::kUnknown && w.unknown.empty()) return fail("unknown coverage without such a policy");
  return ::testing::AssertionSuccess();
}

// Gives p a condition the maps cannot express: a selector bound to a device, or an ICMP type.
void make_unknown(Policy& p, Gen& g) {
  if (g.u(0, 1)) {
    p.sel.ifindex = 2;
  } else {
    p.sel.proto = IPPROTO_ICMP;
    p.sel.sport = 8;  // echo request
    p.sel.sport_mask = 0xffff;
    p.sel.dport = p.sel.dport_mask = 0;
  }
}

}  // namespace


TEST(SpdEquivalence, RandomOverlappingSpds) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("10.1.2.0/29"));
  int compiled_spds = 0, refused = 0, ipsec_hits = 0, nat_hits = 0, covered_hits = 0;
  for (uint32_t seed = 1; seed <= 400; seed++) {
    Gen g(seed);
    SpdModel model;
    uint32_t n = g.u(1, 20);
    for (uint32_t i = 1; i <= n; i++) model.apply(PolicyUpsert{g.policy(i * 8 + 1)});
    auto pols = model.ordered();
    CompiledSpd c = compile_spd(pols, cfg);
    if (c.refused) {
      refused++;
      continue;
    }
    compiled_spds++;
    CompiledEvaluator ev(c);
    for (int k = 0; k < 400; k++) {
      Flow4 f = g.flow();
      const Policy* want = reference_lookup(pols, f);
      auto got = ev.lookup(f);
      ASSERT_EQ(want != nullptr, got.has_value()) << "seed " << seed << " flow " << f.str();
      if (want) {
        ASSERT_EQ(want->index, got->policy_index) << "seed " << seed << " flow " << f.str();
        ipsec_hits += want->is_ipsec();
      }
      auto wn = reference_nat_target(pols, cfg, f);
      auto gn = ev.nat_target(f);
      ASSERT_EQ(wn.has_value(), gn.has_value()) << "seed " << seed << " flow " << f.str();
      if (wn) {
        ASSERT_EQ(0, std::memcmp(&*wn, &*gn, sizeof(*wn))) << "seed " << seed << " flow " << f.str();
        nat_hits++;
      }
      bool wc = reference_out_covered(pols, f);
      ASSERT_EQ(wc, ev.out_covered(f) == CompiledCover::kIpsec) << "seed " << seed << " flow " << f.str();
      covered_hits += wc;
    }
  }
  // The generator must exercise every outcome, and most SPDs must be representable.
  EXPECT_GT(compiled_spds, 200);
  EXPECT_GT(ipsec_hits, 1000);
  EXPECT_GT(nat_hits, 100);
  EXPECT_GT(covered_hits, 1000);
  RecordProperty("refused", refused);
  std::printf("compiled %d refused %d ipsec %d nat %d covered %d\n", compiled_spds, refused, ipsec_hits,
              nat_hits, covered_hits);
}

TEST(SpdEquivalence, TiesGoToTheOlderPolicyAndUpdatesMoveToTheBack) {
  Policy a;
  a.sel.family = AF_INET;
  a.sel.src = parse_prefix("0.0.0.0/0");
  a.sel.dst = parse_prefix("10.0.0.0/8");
  a.index = 9;
  a.tmpls.push_back(Template{});
  Policy b = a;
  b.index = 17;
  b.sel.src = parse_prefix("192.168.0.0/16");
  SpdModel m;
  m.apply(PolicyUpsert{a});
  m.apply(PolicyUpsert{b});
  Flow4 f;
  f.saddr = htonl(0xc0a80101);
  f.daddr = htonl(0x0a000001);
  EXPECT_EQ(9u, reference_lookup(m.ordered(), f)->index);
  auto c = compile_spd(m.ordered(), {});
  ASSERT_FALSE(c.refused);
  EXPECT_EQ(9u, CompiledEvaluator(c).lookup(f)->policy_index);
  a.tmpls[0].reqid = 5;  // an update of a: now newer than b
  m.apply(PolicyUpsert{a});
  EXPECT_EQ(17u, reference_lookup(m.ordered(), f)->index);
  c = compile_spd(m.ordered(), {});
  EXPECT_EQ(17u, CompiledEvaluator(c).lookup(f)->policy_index);
}

// Random SPDs where some policies are bound to a device or an ICMP type: every flow is answered
// exactly or fails closed, and fails closed only where the kernel could choose such a policy.
TEST(SpdEquivalence, UnknownPoliciesFailClosedOnlyWhereTheKernelCouldChooseThem) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  int compiled_spds = 0, unknown_hits = 0, nat_hits = 0, flows = 0;
  for (uint32_t seed = 1; seed <= 400; seed++) {
    Gen g(seed);
    SpdModel model;
    uint32_t n = g.u(1, 20);
    for (uint32_t i = 1; i <= n; i++) {
      Policy p = g.policy(i * 8 + 1);
      if (g.u(0, 3) == 0) make_unknown(p, g);
      model.apply(PolicyUpsert{p});
    }
    auto pols = model.ordered();
    CompiledSpd c = compile_spd(pols, cfg);
    if (c.refused) continue;
    compiled_spds++;
    UnknownWorlds w(pols);
    CompiledEvaluator ev(c);
    for (int k = 0; k < 400; k++) {
      Flow4 f = g.flow();
      ASSERT_TRUE(exact_or_fail_closed(w, cfg, ev, f, &unknown_hits)) << "seed " << seed;
      nat_hits += ev.nat_target(f).has_value();
      flows++;
    }
  }
  EXPECT_GT(compiled_spds, 200);
  EXPECT_GT(unknown_hits, 1000);
  EXPECT_GT(nat_hits, 100);
  std::printf("compiled %d flows %d unknown %d nat %d\n", compiled_spds, flows, unknown_hits, nat_hits);
}

// The two cases of docs/spd.md: a device-bound policy and an ICMP-type policy for 10.99.0.0/16
// beside a translating policy for 10.0.0.0/8 (outside 10.99.0.0/16); and a representable policy
// of higher priority for the same destination, which decides alone.
TEST(SpdEquivalence, AnUnknownPolicyFailsClosedOnlyItsDestinations) {
  auto policy = [](uint32_t index, const char* src, const char* dst, uint32_t priority) {
    Policy p;
    p.sel.family = AF_INET;
    p.sel.src = parse_prefix(src);
    p.sel.dst = parse_prefix(dst);
    p.index = index;
    p.priority = priority;
    Template t;
    t.mode = 1;
    t.proto = IPPROTO_ESP;
    t.reqid = index;
    p.tmpls = {t};
    return p;
  };
  Policy nat = policy(9, "10.20.30.2/32", "10.0.0.0/8", 20);
  Policy dev = policy(17, "0.0.0.0/0", "10.99.0.0/16", 10);
  dev.sel.ifindex = 3;
  Policy icmp = policy(25, "0.0.0.0/0", "10.99.0.0/16", 10);
  icmp.sel.proto = IPPROTO_ICMP;
  icmp.sel.sport = 8;
  icmp.sel.sport_mask = 0xffff;
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  SpdModel m;
  for (const Policy& p : {nat, dev, icmp}) m.apply(PolicyUpsert{p});
  auto c = compile_spd(m.ordered(), cfg);
  ASSERT_FALSE(c.refused) << *c.refused;
  ASSERT_EQ(2u, c.unknown.size());
  EXPECT_NE(std::string::npos, c.unknown[0].find("10.99.0.0/16")) << c.unknown[0];
  auto flow = [](const char* dst, uint8_t proto) {
    Flow4 f;
    f.saddr = parse_address("192.168.1.10").v4_be();
    f.daddr = parse_address(dst).v4_be();
    f.proto = proto;
    return f;
  };
  CompiledEvaluator ev(c);
  EXPECT_TRUE(ev.nat_target(flow("10.1.0.1", IPPROTO_UDP)));
  EXPECT_EQ(CompiledCover::kIpsec, ev.out_covered(flow("10.1.0.1", IPPROTO_UDP)));
  EXPECT_FALSE(ev.nat_target(flow("10.99.0.1", IPPROTO_UDP)));
  EXPECT_EQ(CompiledCover::kUnknown, ev.out_covered(flow("10.99.0.1", IPPROTO_UDP)));
  EXPECT_EQ(CompiledCover::kNo, ev.out_covered(flow("172.16.0.1", IPPROTO_UDP)));
  // Only ICMP meets the ICMP-type policy: without the device-bound one, UDP to 10.99.0.0/16 is
  // translated by the /8 and ICMP fails closed.
  PolicyDelete del_dev;
  del_dev.index = 17;
  m.apply(del_dev);
  c = compile_spd(m.ordered(), cfg);
  CompiledEvaluator ev2(c);
  EXPECT_TRUE(ev2.nat_target(flow("10.99.0.1", IPPROTO_UDP)));
  EXPECT_FALSE(ev2.nat_target(flow("10.99.0.1", IPPROTO_ICMP)));
  EXPECT_EQ(CompiledCover::kUnknown, ev2.out_covered(flow("10.99.0.1", IPPROTO_ICMP)));
  // Shadowed: a representable policy of higher priority for the same destination decides.
  Policy first = policy(33, "0.0.0.0/0", "10.99.0.0/16", 5);
  m.apply(PolicyUpsert{first});
  m.apply(PolicyUpsert{dev});
  c = compile_spd(m.ordered(), cfg);
  CompiledEvaluator ev3(c);
  for (uint8_t proto : {IPPROTO_UDP, IPPROTO_ICMP}) {
    auto v = ev3.lookup(flow("10.99.0.1", proto));
    ASSERT_TRUE(v);
    EXPECT_EQ(33u, v->policy_index);
    EXPECT_EQ(SPD_V_IPSEC, v->verdict);
    EXPECT_EQ(CompiledCover::kIpsec, ev3.out_covered(flow("10.99.0.1", proto)));
  }
}

// The mirror compiles change by change (IncrementalSpd): after every event of a random sequence
// (adds, updates by index and by selector, deletes, flushes, policies that cannot be mirrored)
// the incremental state must equal a from-scratch compile and the reference, and the deltas,
// applied to two simulated generations the way SpdMapWriter does, must reproduce it exactly.
namespace {
struct SimGen {
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, spd_cell> dst;
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, uint32_t> src;
  std::map<uint32_t, spd_list> lists;
};

void apply_pending(SimGen& g, const SpdDelta& d, const IncrementalSpd& s) {
  for (uint32_t id : d.lists) {
    if (const spd_list* l = s.list(id)) g.lists[id] = *l;
    else g.lists.erase(id);
  }
  for (const auto& k : d.src) {
    if (auto l = s.src(k)) g.src[{k.cell, k.len, k.saddr}] = *l;
    else g.src.erase({k.cell, k.len, k.saddr});
  }
  for (const auto& k : d.dst) {
    if (const spd_cell* c = s.dst(k)) g.dst[{k.if_id, k.len, k.daddr}] = *c;
    else g.dst.erase({k.if_id, k.len, k.daddr});
  }
}

bool same_content(const SimGen& g, const CompiledSpd& c) {
  if (g.dst.size() != c.dst.size() || g.src.size() != c.src.size() || g.lists.size() != c.lists.size()) return false;
  for (const auto& d : c.dst) {
    auto it = g.dst.find({d.if_id, d.len, d.daddr});
    if (it == g.dst.end() || std::memcmp(&it->second, &d.cell, sizeof(d.cell)) != 0) return false;
  }
  for (const auto& e : c.src) {
    auto it = g.src.find({e.cell, e.len, e.saddr});
    if (it == g.src.end() || it->second != e.list) return false;
  }
  for (const auto& [id, l] : c.lists) {
    auto it = g.lists.find(id);
    if (it == g.lists.end() || std::memcmp(&it->second, &l, sizeof(l)) != 0) return false;
  }
  return true;
}
}  // namespace

TEST(SpdEquivalence, IncrementalUpdatesStayExact) {
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  cfg.inside.push_back(parse_prefix("10.1.2.0/29"));
  int checked = 0, steps = 0, refused_steps = 0, unknown_steps = 0, writes = 0, flushes = 0;
  for (uint32_t seed = 500; seed < 600; seed++) {
    Gen g(seed);
    SpdModel model;
    IncrementalSpd inc(cfg);
    SimGen gens[2];
    SpdDelta pending[2];
    uint32_t active = 0;
    ChangeGen changes(g, true);
    for (int step = 0; step < 60; step++) {
      changes.step(model);
      SpdModel::Changes ch = model.take_changes();
      if (g.u(0, 19) == 0)
        inc.rebuild(model);
      else
        inc.update(model, ch.indices);
      SpdDelta d = inc.take_delta();
      pending[0].merge(d);
      pending[1].merge(d);
      steps++;
      if (changes.flushes) flushes += std::exchange(changes.flushes, 0);
      auto pols = model.ordered();
      CompiledSpd scratch = compile_spd(pols, cfg);
      ASSERT_EQ(scratch.refused.has_value(), inc.refused().has_value()) << "seed " << seed << " step " << step;
      if (scratch.refused) {
        refused_steps++;
        continue;
      }
      std::vector<std::string> inc_unknown = inc.unknown();
      ASSERT_EQ(std::set<std::string>(scratch.unknown.begin(), scratch.unknown.end()),
                std::set<std::string>(inc_unknown.begin(), inc_unknown.end()));
      unknown_steps += !inc_unknown.empty();
      UnknownWorlds w(pols);
      uint32_t gen = active ^ 1;
      apply_pending(gens[gen], pending[gen], inc);
      pending[gen] = SpdDelta{};
      active = gen;
      writes++;
      CompiledSpd snap = inc.snapshot();
      ASSERT_TRUE(same_content(gens[active], snap)) << "seed " << seed << " step " << step;
      ASSERT_EQ(scratch.dst.size(), snap.dst.size());
      ASSERT_EQ(scratch.src.size(), snap.src.size());
      ASSERT_EQ(scratch.lists.size(), snap.lists.size());
      CompiledEvaluator ev(snap), ref_ev(scratch);
      for (int k = 0; k < 40; k++) {
        Flow4 f = g.flow();
        auto got = ev.lookup(f);
        auto scr = ref_ev.lookup(f);
        ASSERT_EQ(scr.has_value(), got.has_value());
        if (got) {
          ASSERT_EQ(scr->policy_index, got->policy_index);
        }
        ASSERT_TRUE(exact_or_fail_closed(w, cfg, ev, f)) << "seed " << seed << " step " << step;
        checked++;
      }
    }
  }
  std::printf("steps %d writes %d refused %d unknown %d flushes %d flows %d\n", steps, writes, refused_steps,
              unknown_steps, flushes, checked);
  EXPECT_GT(checked, 100000);
  EXPECT_GT(unknown_steps, 50);
  EXPECT_GT(flushes, 20);
}

// A policy whose templates are all optional (`ip xfrm policy ... level use`) does not require
// protection: the kernel skips an optional template without state and sends the packet in
// cleartext (netns tier: SpdMirrorNetns.OptionalTemplatesLeaveInCleartext). It still wins the
// lookup over lower-priority policies.
TEST(SpdEquivalence, AllOptionalTemplatesAreNotProtection) {
  Policy use;
  use.sel.family = AF_INET;
  use.sel.src = parse_prefix("10.20.30.2/32");
  use.sel.dst = parse_prefix("10.0.0.0/8");
  use.index = 9;
  use.priority = 10;
  Template t;
  t.mode = 1;
  t.proto = IPPROTO_ESP;
  t.reqid = 3;
  t.optional = true;
  use.tmpls = {t, t};
  Policy required = use;  // inside use's destination, lower priority: shadowed by use
  required.sel.dst = parse_prefix("10.1.0.0/16");
  required.index = 17;
  required.priority = 20;
  required.tmpls[0].optional = false;
  EXPECT_FALSE(use.is_ipsec());
  EXPECT_TRUE(use.is_bypass());
  EXPECT_TRUE(required.is_ipsec());
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  SpdModel m;
  m.apply(PolicyUpsert{use});
  m.apply(PolicyUpsert{required});
  auto c = compile_spd(m.ordered(), cfg);
  ASSERT_FALSE(c.refused);
  CompiledEvaluator ev(c);
  for (const char* dst : {"10.0.0.1", "10.1.0.1"}) {
    Flow4 f;
    f.saddr = parse_address("192.168.1.10").v4_be();
    f.daddr = parse_address(dst).v4_be();
    f.proto = IPPROTO_UDP;
    EXPECT_EQ(CompiledCover::kNo, ev.out_covered(f)) << dst;
    EXPECT_FALSE(reference_out_covered(m.ordered(), f)) << dst;
    EXPECT_FALSE(ev.nat_target(f)) << dst;  // translated, it would meet the optional policy
    Flow4 x = f;
    x.saddr = parse_address("10.20.30.2").v4_be();
    auto v = ev.lookup(x);
    ASSERT_TRUE(v);
    EXPECT_EQ(9u, v->policy_index) << dst;
    EXPECT_EQ(SPD_V_BYPASS, v->verdict) << dst;
  }
  PolicyDelete del;
  del.index = 9;
  m.apply(del);
  c = compile_spd(m.ordered(), cfg);
  Flow4 f;
  f.saddr = parse_address("192.168.1.10").v4_be();
  f.daddr = parse_address("10.1.0.1").v4_be();
  f.proto = IPPROTO_UDP;
  EXPECT_EQ(CompiledCover::kIpsec, CompiledEvaluator(c).out_covered(f));  // without the shadowing use policy
  EXPECT_TRUE(CompiledEvaluator(c).nat_target(f));
}

// Profiling aid (not run by CTest): the compile of 100,000 policies shaped like the benchmark's
// (scripts/bench/spd-mirror.sh), without netlink or maps. Run with
// --gtest_also_run_disabled_tests --gtest_filter='*CompileProfile*' under perf or callgrind.
TEST(SpdEquivalence, DISABLED_CompileProfile) {
  SpdModel m;
  for (uint32_t i = 0; i < 100000; i++) {
    Policy p;
    p.sel.family = AF_INET;
    p.sel.src = Prefix{Address::v4(htonl(0x0a140000 + (i & 0xffff))), 32};
    p.sel.dst = Prefix{Address::v4(htonl(0x0b000000 + (i << 6))), 26};
    p.priority = 100 + i % 7;
    p.index = i * 8 + 1;
    Template t;
    t.mode = 1;
    t.proto = IPPROTO_ESP;
    t.reqid = i + 1;
    p.tmpls.push_back(t);
    m.apply(PolicyUpsert{p});
  }
  auto t0 = std::chrono::steady_clock::now();
  IncrementalSpd inc{NatConfig{}};
  inc.rebuild(m);
  auto t1 = std::chrono::steady_clock::now();
  inc.rebuild(m);
  auto t2 = std::chrono::steady_clock::now();
  EXPECT_FALSE(inc.refused());
  std::printf("rebuild %.0f ms, again %.0f ms\n", std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count());
}
