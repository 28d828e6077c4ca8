// XFRM policy messages built with libmnl parse into the model's events, attribute by attribute.
#include <gtest/gtest.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spd/model.h"
#include "xfrm/policy_msg.h"

using namespace ipsnat;
using namespace ipsnat::spd;
using namespace ipsnat::xfrm;

namespace {

Policy sample() {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.src = parse_prefix("10.20.30.2/32");
  p.sel.dst = parse_prefix("10.0.0.0/8");
  p.sel.proto = IPPROTO_TCP;
  p.sel.dport = 443;
  p.sel.dport_mask = 0xffff;
  p.dir = Dir::Out;
  p.priority = 379519;
  p.index = 0x1a1;
  p.mark_v = 0x10;
  p.mark_m = 0xf0;
  p.if_id = 42;
  Template t;
  t.mode = 1;
  t.proto = IPPROTO_ESP;
  t.reqid = 7;
  t.family = AF_INET;
  t.tunnel_src = parse_address("200.2.2.2");
  t.tunnel_dst = parse_address("100.1.1.1");
  p.tmpls.push_back(t);
  t.optional = true;
  t.proto = IPPROTO_COMP;
  p.tmpls.push_back(t);
  return p;
}

}  // namespace

TEST(XfrmPolicyMsg, NewPolicyRoundTripsEveryMatchingAttribute) {
  char buf[4096];
  Policy p = sample();
  auto ev = parse_policy_msg(build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, p));
  ASSERT_TRUE(ev);
  const auto* up = std::get_if<PolicyUpsert>(&*ev);
  ASSERT_TRUE(up);
  const Policy& q = up->policy;
  EXPECT_EQ(p.sel, q.sel);
  EXPECT_EQ(p.dir, q.dir);
  EXPECT_EQ(p.priority, q.priority);
  EXPECT_EQ(p.index, q.index);
  EXPECT_EQ(p.mark_v, q.mark_v);
  EXPECT_EQ(p.mark_m, q.mark_m);
  EXPECT_EQ(p.if_id, q.if_id);
  EXPECT_EQ(PolicyType::Main, q.type);
  ASSERT_EQ(2u, q.tmpls.size());
  EXPECT_EQ(p.tmpls[0], q.tmpls[0]);
  EXPECT_TRUE(q.tmpls[1].optional);
  EXPECT_EQ("100.1.1.1", q.tmpls[0].tunnel_dst.str());
  EXPECT_TRUE(q.is_ipsec());
}

TEST(XfrmPolicyMsg, Ipv6SelectorsAndSubTypeAreKept) {
  char buf[4096];
  Policy p = sample();
  p.sel.family = AF_INET6;
  p.sel.src = parse_prefix("fd00::2/128");
  p.sel.dst = parse_prefix("fd01::/64");
  p.type = PolicyType::Sub;
  p.tmpls.clear();
  p.action = Action::Block;
  auto ev = parse_policy_msg(build_policy_msg(buf, sizeof(buf), XFRM_MSG_UPDPOLICY, p));
  const Policy& q = std::get<PolicyUpsert>(*ev).policy;
  EXPECT_EQ("fd01::/64", q.sel.dst.str());
  EXPECT_EQ(PolicyType::Sub, q.type);
  EXPECT_EQ(Action::Block, q.action);
}

TEST(XfrmPolicyMsg, PerSocketPoliciesAreSkipped) {
  char buf[4096];
  Policy p = sample();
  p.dir = static_cast<Dir>(XFRM_POLICY_MAX);  // socket policies use dir >= XFRM_POLICY_MAX
  EXPECT_FALSE(parse_policy_msg(build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, p)));
}

TEST(XfrmPolicyMsg, DeleteByIndexAndBySelectorAndFlushApplyToTheModel) {
  char buf[4096];
  SpdModel m;
  Policy a = sample(), b = sample();
  b.index = 0x2a9;
  b.sel.dst = parse_prefix("172.16.0.0/12");
  Policy c = b;
  c.index = 0x3b1;
  c.type = PolicyType::Sub;
  for (const Policy* p : {&a, &b, &c})
    ASSERT_TRUE(m.apply(*parse_policy_msg(build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, *p))));
  EXPECT_EQ(3u, m.size());
  auto del = parse_policy_msg(build_delpolicy_msg(buf, sizeof(buf), a, true));
  ASSERT_TRUE(del);
  EXPECT_EQ(a.index, std::get<PolicyDelete>(*del).index);
  EXPECT_TRUE(m.apply(*del));
  EXPECT_EQ(2u, m.size());
  del = parse_policy_msg(build_delpolicy_msg(buf, sizeof(buf), b, false));
  EXPECT_EQ(0u, std::get<PolicyDelete>(*del).index);
  EXPECT_TRUE(m.apply(*del));
  ASSERT_EQ(1u, m.size());
  EXPECT_EQ(c.index, m.ordered().front()->index);
  EXPECT_FALSE(m.apply(*parse_policy_msg(build_flush_msg(buf, sizeof(buf), PolicyType::Main))));
  EXPECT_TRUE(m.apply(*parse_policy_msg(build_flush_msg(buf, sizeof(buf), PolicyType::Sub))));
  EXPECT_EQ(0u, m.size());
}

TEST(XfrmPolicyMsg, TruncatedMessagesAreErrors) {
  char buf[4096];
  nlmsghdr* nlh = build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, sample());
  nlh->nlmsg_len = NLMSG_HDRLEN + 8;
  EXPECT_THROW(parse_policy_msg(nlh), std::runtime_error);
}

TEST(SpdModel, UpdateBySameKeyReplacesAndRepeatedDumpIsNoChange) {
  SpdModel m;
  Policy p = sample();
  EXPECT_TRUE(m.apply(PolicyUpsert{p}));
  EXPECT_FALSE(m.apply(PolicyUpsert{p}, SpdModel::From::Dump));
  Policy q = p;
  q.index = 0;  // same key, the kernel would keep the index
  q.priority = 5;
  EXPECT_TRUE(m.apply(PolicyUpsert{q}));
  EXPECT_EQ(1u, m.size());
  EXPECT_EQ(5u, m.ordered().front()->priority);
}
