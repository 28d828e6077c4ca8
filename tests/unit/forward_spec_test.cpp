// Port-forward rules as `ipsnat attach --forward` spells them, their resolution onto the
// device's NAPT addresses, and the map entries (maps/fwd.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "attach/forward.h"
#include "config/config.h"
#include "util/error.h"

namespace ipsnat::attach {
namespace {

uint32_t be(const char* a) { return inet_addr(a); }

TEST(ForwardSpec, ParsesWithAndWithoutNatAddress) {
  auto r = parse_forward_spec("tcp:8080=192.168.1.10:80");
  EXPECT_EQ(r.proto, IPPROTO_TCP);
  EXPECT_FALSE(r.nat_addr);
  EXPECT_EQ(r.port, 8080);
  EXPECT_EQ(r.inside_addr, be("192.168.1.10"));
  EXPECT_EQ(r.inside_port, 80);
  EXPECT_EQ(r.str(), "tcp *:8080 -> 192.168.1.10:80");
  EXPECT_EQ(parse_forward_spec(r.spec()), r);

  auto u = parse_forward_spec("udp:10.99.0.7:5353=172.16.5.11:53");
  EXPECT_EQ(u.proto, IPPROTO_UDP);
  ASSERT_TRUE(u.nat_addr);
  EXPECT_EQ(*u.nat_addr, be("10.99.0.7"));
  EXPECT_EQ(u.spec(), "udp:10.99.0.7:5353=172.16.5.11:53");
  EXPECT_EQ(parse_forward_spec(u.spec()), u);
}

TEST(ForwardSpec, ErrorsSayWhatIsWrong) {
  auto msg = [](const char* s) {
    try {
      parse_forward_spec(s);
    } catch (const UserError& e) {
      return std::string(e.what()) + " | " + e.hint();
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg("tcp:8080").find("no '='"), std::string::npos);
  EXPECT_NE(msg("sctp:1=1.2.3.4:5").find("not tcp or udp"), std::string::npos);
  EXPECT_NE(msg("tcp:0=1.2.3.4:5").find("outside port \"0\""), std::string::npos);
  EXPECT_NE(msg("tcp:70000=1.2.3.4:5").find("outside port"), std::string::npos);
  EXPECT_NE(msg("tcp:1.2.3:80=1.2.3.4:5").find("\"1.2.3\" is not an IPv4 address"), std::string::npos);
  EXPECT_NE(msg("tcp:80=1.2.3.4").find("ADDRESS:PORT"), std::string::npos);
  EXPECT_NE(msg("tcp:80=1.2.3.4:x").find("inside port \"x\""), std::string::npos);
  EXPECT_NE(msg("tcp:80=1.2.3.4:x").find("PROTO:[NATADDR:]PORT=INSIDEADDR:PORT"), std::string::npos);
}

TEST(ForwardSpec, ImpliedAddressesAreTheNaptAddresses) {
  std::vector<ForwardRule> rules = {parse_forward_spec("tcp:8080=192.168.1.10:80"),
                                    parse_forward_spec("udp:10.0.9.9:53=192.168.1.11:53")};
  auto out = resolve_forwards(rules, {be("10.20.30.2"), be("10.20.30.3")});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].spec(), "tcp:10.20.30.2:8080=192.168.1.10:80");
  EXPECT_EQ(out[1].spec(), "tcp:10.20.30.3:8080=192.168.1.10:80");
  EXPECT_EQ(out[2].spec(), "udp:10.0.9.9:53=192.168.1.11:53");
  auto e = forward_entries(out);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].key.nat_addr, be("10.20.30.2"));
  EXPECT_EQ(e[0].key.port, htons(8080));
  EXPECT_EQ(e[0].key.proto, IPPROTO_TCP);
  EXPECT_EQ(e[0].target.inside_addr, be("192.168.1.10"));
  EXPECT_EQ(e[0].target.inside_port, htons(80));

  EXPECT_THROW(resolve_forwards({rules[0]}, {}), UserError);
  EXPECT_THROW(resolve_forwards({rules[0], parse_forward_spec("tcp:10.20.30.2:8080=192.168.1.12:80")},
                                {be("10.20.30.2")}),
               UserError);
}

TEST(ForwardSpec, ConfigForwardsAndTheStaleKeysOfAReload) {
  config::PortForward f;
  f.proto = IPPROTO_UDP;
  f.nat_addr = ntohl(be("10.20.30.2"));  // the parser's host order
  f.outside_port = 5353;
  f.inside_addr = ntohl(be("192.168.1.20"));
  f.inside_port = 53;
  EXPECT_EQ(forward_rule_of(f).spec(), "udp:10.20.30.2:5353=192.168.1.20:53");

  auto kept = forward_entries({forward_rule_of(f)});
  auto gone = forward_entries({parse_forward_spec("tcp:10.20.30.2:8080=192.168.1.10:80")});
  std::vector<ipsnat_fwd_key> present = {kept[0].key, gone[0].key};
  auto stale = stale_forward_keys(present, kept);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].port, htons(8080));
  EXPECT_EQ(stale[0].proto, IPPROTO_TCP);
  // The same port on another protocol or address is another forward.
  auto other = forward_entries({parse_forward_spec("tcp:10.20.30.2:5353=192.168.1.20:53"),
                                parse_forward_spec("udp:10.20.30.3:5353=192.168.1.20:53")});
  EXPECT_EQ(stale_forward_keys({kept[0].key}, other).size(), 1u);
  EXPECT_TRUE(stale_forward_keys({}, kept).empty());
}

}  // namespace
}  // namespace ipsnat::attach
