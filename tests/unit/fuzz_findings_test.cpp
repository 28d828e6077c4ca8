// What the fuzz tier (tests/fuzz) found, pinned down as plain unit tests so that the g++ build
// checks them too (the inputs themselves are in tests/fuzz/corpus/*/regress-*).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/xfrm.h>

#include <cstring>
#include <string>

#include "config/config.h"
#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "util/error.h"
#include "xfrm/policy_msg.h"

using namespace ipsnat;
using namespace ipsnat::spd;

TEST(FuzzFindings, DurationThatOverflows64BitsIsRefused) {
  // 213503982334602 * 86400 wraps past 2^64 to 1984; it was accepted as 33 minutes.
  EXPECT_FALSE(config::parse_duration("213503982334602d"));
  EXPECT_FALSE(config::parse_duration("49711d"));  // just above 2^32 - 1 seconds
  EXPECT_EQ(config::parse_duration("49710d"), 49710u * 86400u);
}

TEST(FuzzFindings, AddressWithNulIsRefused) {
  EXPECT_THROW(parse_address(std::string("10.0.0.1\0junk", 13)), UserError);
  EXPECT_THROW(parse_prefix(std::string("::\0/8", 5)), UserError);
  EXPECT_EQ(parse_address("10.0.0.1").str(), "10.0.0.1");
}

namespace {
Policy out_policy(const char* src, uint32_t dst_host_order, uint8_t dst_len, uint32_t index, Action action) {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.src = parse_prefix(src);
  p.sel.dst.addr = Address::v4(htonl(dst_host_order));  // host bits kept, as the kernel keeps them
  p.sel.dst.len = dst_len;
  p.dir = Dir::Out;
  p.index = index;
  p.action = action;
  if (action == Action::Allow) {
    Template t;
    t.mode = 1;
    t.proto = IPPROTO_ESP;
    t.reqid = 1;
    t.family = AF_INET;
    t.tunnel_src = parse_address("200.2.2.2");
    t.tunnel_dst = parse_address("100.1.1.1");
    p.tmpls.push_back(t);
  }
  return p;
}
}  // namespace

TEST(FuzzFindings, SelectorHostBitsAreOneLpmPrefix) {
  // The kernel holds 10.0.247.255/8 and 10.0.0.0/8 as two policies, matching both on 10/8.
  SpdModel m;
  m.apply(PolicyUpsert{out_policy("10.20.30.2/32", 0x0a00f7ff, 8, 9, Action::Allow)});
  m.apply(PolicyUpsert{out_policy("0.0.0.0/0", 0x0a000000, 8, 17, Action::Block)});
  auto pols = m.ordered();
  NatConfig cfg;
  CompiledSpd c = compile_spd(pols, cfg);
  ASSERT_FALSE(c.refused) << *c.refused;
  for (const auto& d : c.dst) EXPECT_EQ(ntohl(d.daddr) & ~v4_mask(d.len), 0u) << "LPM key with host bits";
  CompiledEvaluator ev(c);
  Flow4 f;
  f.saddr = htonl(0x0a141e02);
  f.daddr = htonl(0x0a000001);
  f.proto = IPPROTO_UDP;
  const Policy* want = reference_lookup(pols, f);
  auto got = ev.lookup(f);
  ASSERT_TRUE(want);
  ASSERT_TRUE(got);
  EXPECT_EQ(want->index, got->policy_index);
  EXPECT_EQ(reference_out_covered(pols, f), ev.out_covered(f) == CompiledCover::kIpsec);
}

TEST(FuzzFindings, SourceSelectorHostBitsCoverTheirWholePrefix) {
  // 214.217.255.127/1 (IPsec) is 128.0.0.0/1 to the kernel; 253.0.0.0/2 (a bypass of proto 100
  // that wins on priority) is 192.0.0.0/2. Sources 128.0.0.0-191.255.255.255 meet only the
  // IPsec policy, so proto 100 to 255.255.255.255 is covered for some source. The reference
  // took the selectors' addresses as their prefixes' first addresses and missed that region.
  Policy ipsec = out_policy("0.0.0.0/0", 0xff000000, 8, 1, Action::Allow);
  ipsec.sel.src.addr = Address::v4(htonl(0xd6d9ff7f));
  ipsec.sel.src.len = 1;
  ipsec.priority = 379518;
  Policy bypass = out_policy("0.0.0.0/0", 0, 0, 41, Action::Allow);
  bypass.tmpls.clear();
  bypass.sel.src.addr = Address::v4(htonl(0xfd000000));
  bypass.sel.src.len = 2;
  bypass.sel.proto = 100;
  bypass.priority = 0;
  SpdModel m;
  m.apply(PolicyUpsert{ipsec});
  m.apply(PolicyUpsert{bypass});
  auto pols = m.ordered();
  Flow4 f;
  f.saddr = htonl(0xfd000000);
  f.daddr = htonl(0xffffffff);
  f.proto = 100;
  Flow4 from_the_region = f;
  from_the_region.saddr = htonl(0x80000001);
  const Policy* first = reference_lookup(pols, from_the_region);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->index, 1u);
  EXPECT_TRUE(reference_out_covered(pols, f));
  CompiledSpd c = compile_spd(pols, NatConfig{});
  ASSERT_FALSE(c.refused) << *c.refused;
  EXPECT_EQ(CompiledEvaluator(c).out_covered(f), CompiledCover::kIpsec);
}

TEST(FuzzFindings, PolicyMessageAtFourByteAlignmentParses) {
  // Netlink aligns to 4; xfrm_userpolicy_info needs 8. The parser copies (UBSan checks it in the
  // sanitizer build; here the result must simply be right).
  alignas(8) char buf[4100];
  Policy p = out_policy("10.20.30.2/32", 0x0a000000, 8, 5, Action::Allow);
  char* at = buf + 4;
  xfrm::build_policy_msg(at, sizeof(buf) - 4, XFRM_MSG_NEWPOLICY, p);
  auto ev = xfrm::parse_policy_msg(reinterpret_cast<const nlmsghdr*>(at));
  ASSERT_TRUE(ev);
  const auto* up = std::get_if<PolicyUpsert>(&*ev);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->policy.sel, p.sel);
  EXPECT_EQ(up->policy.tmpls, p.tmpls);
}

TEST(FuzzFindings, NetlinkLengthAbove2To31EndsTheWalk) {
  alignas(8) char buf[64] = {};
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf);
  nlh->nlmsg_len = 0xffffdfff;  // (int) is negative: mnl_nlmsg_ok accepted it
  EXPECT_FALSE(xfrm::nlmsg_ok(nlh, sizeof(buf)));
  nlh->nlmsg_len = sizeof(buf);
  EXPECT_TRUE(xfrm::nlmsg_ok(nlh, sizeof(buf)));
  nlh->nlmsg_len = sizeof(buf) + 4;
  EXPECT_FALSE(xfrm::nlmsg_ok(nlh, sizeof(buf)));
}

TEST(FuzzFindings, AnAttributePastAnUnalignedMessageEndIsNotRead) {
  // libmnl's payload tail rounds nlmsg_len up to 4: an attribute ending up to 3 bytes past the
  // message (past the buffer, for a buffer's last message) was parsed. Input
  // regress-unaligned-message-tail (ASan heap-buffer-overflow in copy_of<xfrm_userpolicy_type>).
  alignas(8) char buf[4100];
  Policy p = out_policy("10.20.30.2/32", 0x0a000000, 8, 5, Action::Allow);
  p.if_id = 7;  // XFRMA_IF_ID is the message's last attribute
  nlmsghdr* nlh = xfrm::build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, p);
  auto whole = xfrm::parse_policy_msg(nlh);
  ASSERT_TRUE(whole && std::get_if<PolicyUpsert>(&*whole));
  EXPECT_EQ(std::get<PolicyUpsert>(*whole).policy.if_id, 7u);
  nlh->nlmsg_len -= 1;
  auto cut = xfrm::parse_policy_msg(nlh);
  ASSERT_TRUE(cut && std::get_if<PolicyUpsert>(&*cut));
  EXPECT_EQ(std::get<PolicyUpsert>(*cut).policy.if_id, 0u) << "the cut attribute was read";
}
