// spoof_boxes (loader/spd/spoof.*): the XDP pre-filter's drop set is where both the `in` and the
// `fwd` check refuse every cleartext packet; any policy that may come first and lets some through
// removes the box.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "spd/model.h"
#include "spd/spoof.h"
#include "spd/tunnel_policy.h"

namespace ipsnat::spd {
namespace {

Policy pol(uint32_t index, Dir dir, const std::string& src, const std::string& dst, uint32_t priority,
           bool ipsec = true) {
  Policy p = tunnel_policy(dir, parse_prefix(src), parse_prefix(dst),
                           ipsec ? std::optional<uint32_t>(0) : std::nullopt);
  p.index = index;
  p.priority = priority;
  return p;
}

std::vector<std::string> boxes(const std::vector<Policy>& ps) {
  SpdModel m;
  for (const auto& p : ps) m.apply(PolicyUpsert{p});
  std::vector<std::string> out;
  for (const auto& b : spoof_boxes(m)) out.push_back(b.src.str() + " " + b.dst.str());
  return out;
}

using V = std::vector<std::string>;

TEST(SpoofBoxes, BothDirectionsMustRefuseAndTheBoxIsTheirIntersection) {
  EXPECT_EQ(boxes({pol(1, Dir::In, "10.0.0.0/8", "192.168.0.0/16", 10),
                   pol(2, Dir::Fwd, "10.1.0.0/16", "192.168.1.0/24", 10)}),
            V({"10.1.0.0/16 192.168.1.0/24"}));
  EXPECT_EQ(boxes({pol(1, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10)}), V{});
  EXPECT_EQ(boxes({pol(1, Dir::Fwd, "10.0.0.0/8", "192.168.1.0/24", 10)}), V{});
  EXPECT_EQ(boxes({pol(1, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10),
                   pol(2, Dir::Fwd, "10.0.0.0/8", "192.168.2.0/24", 10)}),
            V{});
  // Out-policies and IPv6 ones say nothing about IPv4 cleartext coming in.
  EXPECT_EQ(boxes({pol(1, Dir::Out, "10.0.0.0/8", "192.168.1.0/24", 10),
                   pol(2, Dir::Fwd, "10.0.0.0/8", "192.168.1.0/24", 10)}),
            V{});
}

TEST(SpoofBoxes, APolicyThatMayComeFirstAndAcceptsRemovesTheBox) {
  auto in = pol(1, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10);
  auto fwd = pol(2, Dir::Fwd, "10.0.0.0/8", "192.168.1.0/24", 10);
  EXPECT_EQ(boxes({in, fwd, pol(3, Dir::Fwd, "10.9.0.0/16", "192.168.1.5/32", 10, false)}), V{});  // equal priority
  EXPECT_EQ(boxes({in, fwd, pol(3, Dir::In, "10.9.0.0/16", "0.0.0.0/0", 5, false)}), V{});
  auto optional = pol(3, Dir::Fwd, "10.9.0.0/16", "192.168.1.0/24", 5);
  optional.tmpls[0].optional = true;  // `level use`: cleartext is accepted
  EXPECT_EQ(boxes({in, fwd, optional}), V{});
  // Refusing, later, elsewhere, or for another if_id: the box stays.
  auto block = pol(3, Dir::Fwd, "10.9.0.0/16", "192.168.1.0/24", 5, false);
  block.action = Action::Block;
  auto other_if = pol(4, Dir::Fwd, "10.9.0.0/16", "192.168.1.0/24", 5, false);
  other_if.if_id = 7;
  EXPECT_EQ(boxes({in, fwd, block, other_if, pol(5, Dir::Fwd, "10.9.0.0/16", "192.168.1.0/24", 20, false),
                   pol(6, Dir::Fwd, "172.16.0.0/12", "192.168.1.0/24", 5, false)}),
            V({"10.0.0.0/8 192.168.1.0/24"}));
}

TEST(SpoofBoxes, OnlyPoliciesWithoutConditionsMakeABox) {
  auto fwd = pol(2, Dir::Fwd, "10.0.0.0/8", "192.168.1.0/24", 10);
  auto tcp = pol(1, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10);
  tcp.sel.proto = IPPROTO_TCP;
  auto marked = pol(3, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10);
  marked.mark_v = marked.mark_m = 1;
  auto if_id = pol(4, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10);
  if_id.if_id = 3;
  EXPECT_EQ(boxes({fwd, tcp, marked, if_id}), V{});
}

TEST(SpoofBoxes, NestedBoxesAreMerged) {
  EXPECT_EQ(boxes({pol(1, Dir::In, "10.0.0.0/8", "192.168.1.0/24", 10),
                   pol(2, Dir::In, "10.1.0.0/16", "192.168.1.0/24", 10),
                   pol(3, Dir::Fwd, "10.0.0.0/8", "192.168.0.0/16", 10)}),
            V({"10.0.0.0/8 192.168.1.0/24"}));
}

}  // namespace
}  // namespace ipsnat::spd
