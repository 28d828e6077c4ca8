#include <netinet/in.h>

#include <gtest/gtest.h>

#include <fstream>

#include "config/config.h"

using namespace ipsnat::config;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "ipsnat.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

constexpr const char* kFull = R"(# a full configuration
inside = ["192.168.1.0/24", "192.168.2.0/24"]
port_range = "20000-29999"
metrics = "127.0.0.1:9477"
log_format = "json"
log_level = "debug"
gc_interval = "5s"
state_dir = "/run/ipsnat-test"

[[device]]
name = "eth0"
mode = "policy"

[[device]]
name = "ipsec0"

[[nat]]
inside = "192.168.1.0/24"
to = "10.20.30.2"
destinations = ["10.0.0.0/8"]

[[nat]]
inside = "192.168.2.0/24"
to = "10.20.31.0/24"

[[forward]]
proto = "tcp"
port = 8080
address = "10.20.30.2"
to = "192.168.1.10:80"

[timeouts]
tcp_established = "2h4m"
tcp_transitory = 240
udp = "1m"
udp_stream = "5m"
icmp = 30
)";

}  // namespace

TEST(Config, FullExampleParses) {
  Config c = parse_config(kFull, "ipsnat.toml");
  ASSERT_EQ(c.inside.size(), 2u);
  EXPECT_EQ(c.inside[1].str(), "192.168.2.0/24");
  EXPECT_EQ(c.port_range, (PortRange{20000, 29999}));
  ASSERT_TRUE(c.metrics);
  EXPECT_EQ(c.metrics->str(), "127.0.0.1:9477");
  EXPECT_EQ(c.log_format, LogFormat::kJson);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.gc_interval, 5u);
  EXPECT_EQ(c.state_dir, "/run/ipsnat-test");
  ASSERT_EQ(c.devices.size(), 2u);
  EXPECT_EQ(c.devices[0].name, "eth0");
  EXPECT_EQ(c.devices[0].mode, DeviceMode::kPolicy);
  EXPECT_EQ(c.devices[1].mode, DeviceMode::kAuto);
  EXPECT_EQ(c.devices[1].line, 14);
  ASSERT_EQ(c.nat.size(), 2u);
  EXPECT_EQ(c.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(c.nat[0].to.str(), "10.20.30.2/32");
  ASSERT_EQ(c.nat[0].destinations.size(), 1u);
  EXPECT_EQ(c.nat[0].destinations[0].str(), "10.0.0.0/8");
  EXPECT_EQ(c.nat[1].kind, NatRule::Kind::kPrefixMap);
  ASSERT_EQ(c.forwards.size(), 1u);
  EXPECT_EQ(c.forwards[0].proto, IPPROTO_TCP);
  EXPECT_EQ(c.forwards[0].outside_port, 8080);
  EXPECT_EQ(ipv4_str(c.forwards[0].inside_addr), "192.168.1.10");
  EXPECT_EQ(c.forwards[0].inside_port, 80);
  EXPECT_EQ(c.timeouts, (Timeouts{7440, 240, 60, 300, 30}));
}

TEST(Config, EmptyFileGivesDefaults) {
  Config c = parse_config("", "x.toml");
  EXPECT_TRUE(c.devices.empty());
  EXPECT_FALSE(c.metrics);
  EXPECT_EQ(c.port_range, (PortRange{1024, 65535}));
  EXPECT_EQ(c.timeouts, Timeouts{});
  EXPECT_EQ(c.log_format, LogFormat::kText);
}

TEST(Config, PortRangeErrorNamesFileLineAndExpectation) {
  EXPECT_EQ(error_of("inside = [\"192.168.1.0/24\"]\n\nport_range = \"80-90\"\n"),
            "ipsnat.toml:3: port_range: expected \"MIN-MAX\" with 1024 <= MIN <= MAX <= 65535");
  EXPECT_EQ(error_of("port_range = \"3000-2000\""),
            "ipsnat.toml:1: port_range: expected \"MIN-MAX\" with 1024 <= MIN <= MAX <= 65535");
  EXPECT_EQ(error_of("port_range = \"3000-70000\""),
            "ipsnat.toml:1: port_range: expected \"MIN-MAX\" with 1024 <= MIN <= MAX <= 65535");
  EXPECT_EQ(error_of("port_range = 3000"),
            "ipsnat.toml:1: port_range: expected \"MIN-MAX\" with 1024 <= MIN <= MAX <= 65535, got an integer");
}

TEST(Config, LimitLogInterval) {
  EXPECT_EQ(parse_config("", "ipsnat.toml").limit_log_interval, 60u);
  EXPECT_EQ(parse_config("limit_log_interval = \"2m\"\n", "ipsnat.toml").limit_log_interval, 120u);
  EXPECT_TRUE(error_of("limit_log_interval = \"0s\"\n").starts_with("ipsnat.toml:1: limit_log_interval: expected"));
}

TEST(Config, UnknownKeysAreErrorsEverywhere) {
  EXPECT_EQ(error_of("\nmetric = \"127.0.0.1:1\"\n"),
            "ipsnat.toml:2: metric: unknown key; expected one of: inside, port_range, metrics, log_format, "
            "log_level, gc_interval, limit_log_interval, state_dir, [[device]], [[nat]], [[forward]], [timeouts]");
  EXPECT_EQ(error_of("[[device]]\nname = \"eth0\"\nmod = \"route\"\n"),
            "ipsnat.toml:3: device[0].mod: unknown key; expected one of: name, mode, masquerade, binat");
  EXPECT_EQ(error_of("[timeouts]\nudp = 30\ntcp = 5\n"),
            "ipsnat.toml:3: timeouts.tcp: unknown key; expected one of: tcp_established, tcp_transitory, udp, "
            "udp_stream, icmp");
  EXPECT_EQ(error_of("[[forward]]\nproto = \"tcp\"\nport = 1\naddress = \"1.2.3.4\"\nto = \"5.6.7.8:9\"\nprot = 1\n"),
            "ipsnat.toml:6: forward[0].prot: unknown key; expected one of: proto, port, address, to");
}

// [[device]] masquerade: true (the device's address), an address, or false; anything else is an error.
TEST(Config, DeviceMasquerade) {
  auto c = parse_config("[[device]]\nname = \"eth0\"\nmasquerade = true\n[[device]]\nname = \"eth1\"\n"
                        "masquerade = \"198.18.0.5\"\n[[device]]\nname = \"eth2\"\n",
                        "ipsnat.toml");
  ASSERT_EQ(c.devices.size(), 3u);
  EXPECT_TRUE(c.devices[0].masquerade);
  EXPECT_FALSE(c.devices[0].masquerade_addr);
  EXPECT_TRUE(c.devices[1].masquerade);
  EXPECT_EQ(c.devices[1].masquerade_addr, parse_ipv4("198.18.0.5"));
  EXPECT_FALSE(c.devices[2].masquerade);
  EXPECT_EQ(error_of("[[device]]\nname = \"eth0\"\nmasquerade = \"eth0\"\n"),
            "ipsnat.toml:3: device[0].masquerade: expected true, false or an IPv4 address like \"200.2.2.2\", got "
            "\"eth0\"");
  EXPECT_NE(error_of("[[device]]\nname = \"eth0\"\nmasquerade = 1\n").find("masquerade: expected true"),
            std::string::npos);
}

// [[device]] binat: a bool (attach --binat), off unless set.
TEST(Config, DeviceBinat) {
  auto c = parse_config("[[device]]\nname = \"eth0\"\nbinat = true\n[[device]]\nname = \"ipsec0\"\n", "ipsnat.toml");
  ASSERT_EQ(c.devices.size(), 2u);
  EXPECT_TRUE(c.devices[0].binat);
  EXPECT_FALSE(c.devices[1].binat);
  EXPECT_EQ(error_of("[[device]]\nname = \"eth0\"\nbinat = \"yes\"\n"),
            "ipsnat.toml:3: device[0].binat: expected true or false, got a string");
}

TEST(Config, AddressesAndPrefixes) {
  EXPECT_EQ(error_of("inside = [\"192.168.1.0/33\"]"),
            "ipsnat.toml:1: inside: expected an IPv4 address or prefix like \"192.168.1.0/24\", got "
            "\"192.168.1.0/33\"");
  EXPECT_EQ(error_of("inside = [\"192.168.1.7/24\"]"),
            "ipsnat.toml:1: inside: expected a network prefix with the host bits zero (\"192.168.1.0/24\"), got "
            "\"192.168.1.7/24\"");
  EXPECT_EQ(error_of("inside = [\"192.168.300.0/24\"]"),
            "ipsnat.toml:1: inside: expected an IPv4 address or prefix like \"192.168.1.0/24\", got "
            "\"192.168.300.0/24\"");
  EXPECT_EQ(error_of("inside = [1]"),
            "ipsnat.toml:1: inside: expected an array of IPv4 prefixes like [\"192.168.1.0/24\"], got an integer "
            "in it");
  EXPECT_EQ(error_of("metrics = \"localhost:9477\""),
            "ipsnat.toml:1: metrics: expected \"ADDRESS:PORT\" like \"127.0.0.1:9477\" (IPv4, port 1-65535), got "
            "\"localhost:9477\"");
}

TEST(Config, NatRules) {
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.31.0/16\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a network prefix with the host bits zero (\"10.20.0.0/16\"), got "
            "\"10.20.31.0/16\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.0.0/16\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a /24 (1:1 map of inside 192.168.1.0/24), a pool (a longer prefix, "
            "/16 to /31) or a single address, got /16");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"10.0.0.0/8\"\nto = \"172.16.0.0/12\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a /8 (1:1 map of inside 10.0.0.0/8), a pool (a longer prefix, "
            "/16 to /31) or a single address, got /12");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\n"),
            "ipsnat.toml:1: nat[0].to: missing; expected the NAT address (\"10.20.30.2\"), a pool "
            "(\"10.20.30.2-10.20.30.5\" or a prefix longer than inside's) or a prefix of the inside prefix's length");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.5-10.20.30.2\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a pool \"FIRST-LAST\" of at most 65536 addresses, FIRST <= LAST, like "
            "\"10.20.30.2-10.20.30.5\", got \"10.20.30.5-10.20.30.2\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.0.0.0-10.1.0.0\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a pool \"FIRST-LAST\" of at most 65536 addresses, FIRST <= LAST, like "
            "\"10.20.30.2-10.20.30.5\", got \"10.0.0.0-10.1.0.0\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"1.1.1.1\"\n[[nat]]\ninside = "
                     "\"192.168.1.0/24\"\nto = \"1.1.1.2\"\n"),
            "ipsnat.toml:5: nat[1].inside: expected one rule per inside prefix; 192.168.1.0/24 already has a rule "
            "at line 1");
}

// A pool: a range or a prefix longer than the inside prefix means NAPT over its addresses.
TEST(Config, NatRulePools) {
  auto range = parse_config("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.2-10.20.30.4\"\n", "ipsnat.toml");
  ASSERT_EQ(range.nat.size(), 1u);
  EXPECT_EQ(range.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(range.nat[0].to.str(), "10.20.30.2/32");
  EXPECT_EQ(range.nat[0].to_count, 3u);
  auto block = parse_config("[[nat]]\ninside = \"172.22.0.0/16\"\nto = \"100.64.9.8/29\"\n", "ipsnat.toml");
  EXPECT_EQ(block.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(block.nat[0].to.str(), "100.64.9.8/29");
  EXPECT_EQ(block.nat[0].to_count, 8u);
  auto one = parse_config("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.2\"\n", "ipsnat.toml");
  EXPECT_EQ(one.nat[0].to_count, 1u);
  auto map = parse_config("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.40.0/24\"\n", "ipsnat.toml");
  EXPECT_EQ(map.nat[0].kind, NatRule::Kind::kPrefixMap);
}

// IPv6 rules: `to` one address (NAT66 with ports), a pool (a range, or a prefix /112../127 longer
// than inside) or a prefix of inside's length (NPTv6); a family mix, IPv6 `destinations`, a range
// beyond 65536 addresses or across the first 96 bits are refused in one line naming file and line.
TEST(Config, NatRulesIpv6) {
  auto one = parse_config("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::9\"\n", "ipsnat.toml");
  ASSERT_EQ(one.nat.size(), 1u);
  EXPECT_TRUE(one.nat[0].ipv6);
  EXPECT_EQ(one.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(one.nat[0].inside6.str(), "fd00:61::/64");
  EXPECT_EQ(one.nat[0].to6.str(), "2001:db8:a::9/128");
  EXPECT_EQ(one.nat[0].to_count, 1u);
  auto range = parse_config("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::2-2001:db8:a::1:1\"\n",
                            "ipsnat.toml");
  EXPECT_EQ(range.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(range.nat[0].to6.str(), "2001:db8:a::2/128");
  EXPECT_EQ(range.nat[0].to_count, 0x10000u);
  auto pool = parse_config("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::/120\"\n", "ipsnat.toml");
  EXPECT_EQ(pool.nat[0].kind, NatRule::Kind::kNapt);
  EXPECT_EQ(pool.nat[0].to6.str(), "2001:db8:a::/120");
  auto map = parse_config("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a:1::/64\"\n", "ipsnat.toml");
  EXPECT_EQ(map.nat[0].kind, NatRule::Kind::kPrefixMap);
  // One rule per inside prefix and family: an IPv4 and an IPv6 rule live side by side.
  auto both = parse_config("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"10.20.30.2\"\n"
                           "[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::9\"\n",
                           "ipsnat.toml");
  EXPECT_FALSE(both.nat[0].ipv6);
  EXPECT_TRUE(both.nat[1].ipv6);

  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"10.20.30.2\"\n"),
            "ipsnat.toml:3: nat[0].to: expected an IPv6 address, pool or prefix for the IPv6 inside fd00:61::/64 (one "
            "family per rule), got \"10.20.30.2\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"192.168.1.0/24\"\nto = \"2001:db8:a::9\"\n"),
            "ipsnat.toml:3: nat[0].to: expected an IPv4 address, pool or prefix for the IPv4 inside 192.168.1.0/24 "
            "(one family per rule), got \"2001:db8:a::9\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::9\"\ndestinations = [\"2001:db8:e::/48\"]\n"),
            "ipsnat.toml:4: nat[0].destinations: expected no destinations in an IPv6 rule: its translation is kept "
            "per policy destination (the datapath's IPv6 rules are keyed by it), so it applies to each policy's "
            "whole destination selector");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::1/64\"\nto = \"2001:db8:a::9\"\n"),
            "ipsnat.toml:2: nat[0].inside: expected a network prefix with the host bits zero (\"fd00:61::/64\"), got "
            "\"fd00:61::1/64\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::/96\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a /64 (NPTv6 1:1 map of inside fd00:61::/64, up to /112), a pool (a "
            "longer prefix, /112 to /127, or \"FIRST-LAST\") or a single address, got /96");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::2-2001:db8:a::1:2\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a pool \"FIRST-LAST\" of at most 65536 addresses differing in the "
            "last 32 bits, FIRST <= LAST, like \"2001:db8:b::2-2001:db8:b::5\", got \"2001:db8:a::2-2001:db8:a::1:2\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::2-2001:db8:b::2\"\n"),
            "ipsnat.toml:3: nat[0].to: expected a pool \"FIRST-LAST\" of at most 65536 addresses differing in the "
            "last 32 bits, FIRST <= LAST, like \"2001:db8:b::2-2001:db8:b::5\", got \"2001:db8:a::2-2001:db8:b::2\"");
  EXPECT_EQ(error_of("[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::9\"\n"
                     "[[nat]]\ninside = \"fd00:61::/64\"\nto = \"2001:db8:a::8\"\n"),
            "ipsnat.toml:5: nat[1].inside: expected one rule per inside prefix; fd00:61::/64 already has a rule at line 1");
}

TEST(Config, PortForwards) {
  const std::string head = "inside = [\"192.168.1.0/24\"]\n[[forward]]\n";
  EXPECT_EQ(error_of(head + "proto = \"sctp\"\n"), "ipsnat.toml:3: forward[0].proto: expected \"tcp\" or \"udp\", got \"sctp\"");
  EXPECT_EQ(error_of(head + "proto = \"udp\"\nport = 70000\n"),
            "ipsnat.toml:4: forward[0].port: expected the outside port on the NAT address, an integer 1-65535");
  EXPECT_EQ(error_of(head + "proto = \"udp\"\nport = 53\naddress = \"10.20.30.2\"\nto = \"192.168.1.10\"\n"),
            "ipsnat.toml:6: forward[0].to: expected \"ADDRESS:PORT\" like \"192.168.1.10:80\", got \"192.168.1.10\"");
  EXPECT_EQ(error_of(head + "proto = \"udp\"\nport = 53\naddress = \"10.20.30.2\"\nto = \"192.168.9.10:53\"\n"),
            "ipsnat.toml:6: forward[0].to: expected a host inside one of the `inside` prefixes; 192.168.9.10 is in "
            "none");
  EXPECT_EQ(error_of(head + "proto = \"udp\"\nport = 53\naddress = \"10.20.30.2\"\nto = \"192.168.1.2:53\"\n" +
                     "[[forward]]\nproto = \"udp\"\nport = 53\naddress = \"10.20.30.2\"\nto = \"192.168.1.3:53\"\n"),
            "ipsnat.toml:9: forward[1].port: expected each (proto, address, port) once; udp 10.20.30.2:53 is already "
            "forwarded at line 2");
}

TEST(Config, DevicesAndEnums) {
  EXPECT_EQ(error_of("[[device]]\nname = \"eth0\"\nmode = \"tunnel\"\n"),
            "ipsnat.toml:3: device[0].mode: expected \"auto\", \"route\" or \"policy\", got \"tunnel\"");
  EXPECT_EQ(error_of("[[device]]\nmode = \"route\"\n"),
            "ipsnat.toml:1: device[0].name: missing; expected a network device name like \"eth0\"");
  EXPECT_EQ(error_of("[[device]]\nname = \"eth0\"\n[[device]]\nname = \"eth0\"\n"),
            "ipsnat.toml:3: device[1].name: expected each device once; \"eth0\" is already configured at line 1");
  EXPECT_EQ(error_of("log_format = \"xml\""), "ipsnat.toml:1: log_format: expected \"text\" or \"json\", got \"xml\"");
  EXPECT_EQ(error_of("device = 3"), "ipsnat.toml:1: device: expected device tables ([[device]] tables)");
}

TEST(Config, Durations) {
  EXPECT_EQ(parse_duration("90"), 90u);
  EXPECT_EQ(parse_duration("2h4m"), 7440u);
  EXPECT_EQ(parse_duration("1d"), 86400u);
  EXPECT_FALSE(parse_duration("0"));
  EXPECT_FALSE(parse_duration("5x"));
  EXPECT_FALSE(parse_duration("m5"));
  EXPECT_EQ(error_of("[timeouts]\nudp = -1\n"),
            "ipsnat.toml:2: timeouts.udp: expected a positive duration: seconds (e.g. 300) or a string like "
            "\"90s\", \"5m\", \"2h4m\"");
}

TEST(Config, TomlSyntaxErrorsCarryTheLine) {
  std::string e = error_of("inside = [\"192.168.1.0/24\"]\nport_range = \n");
  EXPECT_EQ(e.rfind("ipsnat.toml:2: expected valid TOML: ", 0), 0u) << e;
}

TEST(Config, UnreadableFile) {
  try {
    load_config_file("/nonexistent/ipsnat.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/ipsnat.toml: expected a readable file: No such file or directory");
  }
}

TEST(Config, TypoIsReportedAsTypoNotAsMissingKey) {
  EXPECT_EQ(error_of("[[device]]\nnme = \"eth0\"\n"),
            "ipsnat.toml:2: device[0].nme: unknown key; expected one of: name, mode, masquerade, binat");
}

// The shipped example must stay valid (docs point users to it).
TEST(Config, ShippedExampleIsValid) {
  Config c = load_config_file(std::string(IPSNAT_SOURCE_DIR) + "/deploy/ipsnat.toml.example");
  EXPECT_EQ(c.devices.size(), 1u);
  ASSERT_EQ(c.nat.size(), 3u);
  EXPECT_TRUE(c.nat[2].ipv6);
  EXPECT_EQ(c.forwards.size(), 1u);
}

// The ConfigMap's embedded ipsnat.toml (a YAML block scalar indented by four spaces) too.
TEST(Config, KubernetesConfigMapIsValid) {
  std::ifstream in(std::string(IPSNAT_SOURCE_DIR) + "/deploy/kubernetes/configmap.yaml");
  ASSERT_TRUE(in);
  std::string line, toml;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.find("ipsnat.toml: |") != std::string::npos) {
      inside = true;
      continue;
    }
    if (!inside) continue;
    if (!line.empty() && line.rfind("    ", 0) != 0) break;
    toml += (line.size() >= 4 ? line.substr(4) : "") + "\n";
  }
  ASSERT_FALSE(toml.empty());
  Config c = parse_config(toml, "configmap.yaml:ipsnat.toml");
  EXPECT_EQ(c.devices.size(), 1u);
  EXPECT_EQ(c.log_format, LogFormat::kJson);
}
