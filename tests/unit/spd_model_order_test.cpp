// The model's age order is the kernel's (xfrm_policy `pos`): a dump lists newest first, a
// notification announces the newest; a hard POLEXPIRE deletes. Transport-mode policies imply no
// translation. The kernel itself judges the same rules in SpdDifferentialNetns.
#include <gtest/gtest.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/reference.h"
#include "xfrm/policy_msg.h"

using namespace ipsnat::spd;
using namespace ipsnat::xfrm;

namespace {

Policy out_policy(const char* src, const char* dst, uint32_t index, uint8_t mode = XFRM_MODE_TUNNEL) {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.src = parse_prefix(src);
  p.sel.dst = parse_prefix(dst);
  p.priority = 100;
  p.index = index;
  Template t;
  t.mode = mode;
  t.proto = IPPROTO_ESP;
  t.reqid = index;
  p.tmpls.push_back(t);
  return p;
}

std::vector<uint32_t> age_order(const SpdModel& m) {
  std::vector<uint32_t> v;
  for (const Policy* p : m.ordered()) v.push_back(p->index);
  return v;
}

Flow4 flow4(const char* s, const char* d) {
  Flow4 f;
  f.saddr = parse_address(s).v4_be();
  f.daddr = parse_address(d).v4_be();
  f.proto = IPPROTO_UDP;
  return f;
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
