// AttachPlan: what `ipsnat attach` decides from host facts, without touching the kernel.
#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "attach/plan.h"
#include "attach/state.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/npt6.h"
#include "spd/tunnel_policy.h"
#include "util/error.h"

namespace ipsnat::attach {
namespace {

spd::Policy ipsec(const std::string& src, const std::string& dst, spd::Dir dir, const std::string& tsrc,
                  const std::string& tdst, uint32_t reqid, uint32_t if_id = 0) {
  spd::Policy p = spd::tunnel_policy(dir, ipsnat::parse_prefix(src), ipsnat::parse_prefix(dst), reqid);
  p.priority = 379519;
  p.index = dir == spd::Dir::Out ? 9 : 16;
  p.if_id = if_id;
  p.tmpls[0].tunnel_src = ipsnat::parse_address(tsrc);
  p.tmpls[0].tunnel_dst = ipsnat::parse_address(tdst);
  return p;
}

// An address as the kernel reports it: the host's own address (host bits set) and its length.
HostAddress host_address(const std::string& addr, uint8_t len, int ifindex, const std::string& dev,
                         bool loopback = false) {
  return {Prefix{ipsnat::parse_address(addr), len}, ifindex, dev, loopback};
}

// The seed's gateway: uplink eth0 200.2.2.2, LAN 192.168.1.0/24, strongSwan-like policies.
HostFacts gateway(bool vip_local) {
  HostFacts f;
  f.dev = {"eth0", 3, "", 0, 0, 1500, true};
  f.local_addrs = {ipsnat::parse_address("200.2.2.2"), ipsnat::parse_address("192.168.1.1")};
  if (vip_local) f.local_addrs.push_back(ipsnat::parse_address("10.20.30.2"));
  f.addresses = {host_address("200.2.2.2", 24, 3, "eth0"), host_address("192.168.1.1", 24, 4, "lan0")};
  f.default_oifs = {3};
  f.policies = {ipsec("10.20.30.2/32", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1),
                ipsec("10.0.0.0/8", "10.20.30.2/32", spd::Dir::In, "100.1.1.1", "200.2.2.2", 1)};
  f.nexthops = {{ipsnat::parse_prefix("10.0.0.0/8"), 3, ipsnat::parse_address("200.2.2.1"), "eth0"}};
  return f;
}

template <typename T>
std::vector<T> steps_of(const AttachPlan& p) {
  std::vector<T> out;
  for (const auto& s : p.steps)
    if (auto* v = std::get_if<T>(&s)) out.push_back(*v);
  return out;
}

TEST(AttachMode, FollowsTheDeviceKindUnlessOverridden) {
  LinkFacts xfrm{"ipsec0", 5, "xfrm", 42, 0, 1500, true};
  LinkFacts vti{"vti0", 6, "vti", 0, 5, 1500, true};
  LinkFacts nic{"eth0", 3, "", 0, 0, 1500, true};
  EXPECT_EQ(choose_mode(xfrm, ModeRequest::Auto), Mode::Route);
  EXPECT_EQ(choose_mode(vti, ModeRequest::Auto), Mode::Route);
  EXPECT_EQ(choose_mode(nic, ModeRequest::Auto), Mode::Policy);
  EXPECT_EQ(choose_mode(nic, ModeRequest::Route), Mode::Route);
  EXPECT_THROW(choose_mode(xfrm, ModeRequest::Policy), UserError);
  EXPECT_THROW(parse_mode_request("tunnel"), UserError);
}

TEST(AttachPlan, PolicyModeHasGuardReverseRoutesRuleAndCompanions) {
  auto plan = make_plan(gateway(false), Settings{});
  EXPECT_EQ(plan.mode, Mode::Policy);
  auto tc = steps_of<TcStep>(plan);
  ASSERT_EQ(tc.size(), 2u);
  EXPECT_EQ(tc[0].hook, Hook::TcEgress);  // the guard comes first: no leak window
  EXPECT_EQ(tc[0].prog, "tc_guard_egress");
  EXPECT_EQ(tc[1].prog, "tc_rev_ingress");
  auto routes = steps_of<RouteStep>(plan);
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_TRUE(routes[0].blackhole);  // 10.20.30.2 is not local here
  EXPECT_EQ(routes[0].dst.str(), "10.20.30.2/32");
  EXPECT_EQ(routes[1].dst.str(), "10.0.0.0/8");
  EXPECT_EQ(routes[1].lwt_prog, "lwt_snat_xmit");
  EXPECT_EQ(routes[1].gateway->str(), "200.2.2.1");
  EXPECT_EQ(routes[1].mtu, 1500 - kEspOverhead);
  EXPECT_FALSE(routes[1].prefsrc);
  auto rules = steps_of<RuleStep>(plan);
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_LT(rules[0].priority, 220u);
  EXPECT_TRUE(std::holds_alternative<RuleStep>(plan.steps.back()));  // rule last: table complete
  auto comp = steps_of<XfrmPolicyStep>(plan);
  ASSERT_EQ(comp.size(), 3u);
  // For the LAN (fwd, in), and fwd for the uplink's address: a LAN flow netfilter masqueraded
  // to it is judged by that address at the fwd check (nf_nat_decode_session).
  for (const auto& c : comp) {
    EXPECT_EQ(c.policy.sel.src.str(), "10.0.0.0/8");
    EXPECT_EQ(c.policy.sel.dst.str(), &c == &comp[2] ? "200.2.2.2/32" : "192.168.1.0/24");
    ASSERT_EQ(c.policy.tmpls.size(), 1u);
    // The inbound SA's template: from the company gateway to us, same reqid.
    EXPECT_EQ(c.policy.tmpls[0].tunnel_src.str(), "100.1.1.1");
    EXPECT_EQ(c.policy.tmpls[0].tunnel_dst.str(), "200.2.2.2");
    EXPECT_EQ(c.policy.tmpls[0].reqid, 1u);
  }
  EXPECT_EQ(comp[0].policy.dir, spd::Dir::Fwd);
  EXPECT_EQ(comp[1].policy.dir, spd::Dir::In);
  EXPECT_EQ(comp[2].policy.dir, spd::Dir::Fwd);
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_NE(plan.translations[0].nat.find("napt 192.168.1.0/24 -> 10.20.30.2"), std::string::npos);
}

// The seed's gateway as a namespace without routing rules would report it: the kernel's main
// table (the uplink's subnet, the LAN's, the default route) and local table (its addresses).
HostFacts gateway_without_rules() {
  HostFacts f = gateway(false);
  f.foreign_rules4 = false;
  f.foreign_rules6 = false;
  for (const char* p : {"0.0.0.0/0", "200.2.2.0/24", "192.168.1.0/24"}) f.main_routes.push_back(ipsnat::parse_prefix(p));
  for (const char* p : {"127.0.0.0/8", "127.0.0.1/32", "200.2.2.2/32", "200.2.2.255/32", "192.168.1.1/32"})
    f.local_routes.push_back(ipsnat::parse_prefix(p));
  return f;
}

Settings replanned() {
  Settings s;
  s.replanned = true;
  return s;
}

// Where no rule but the kernel's exists, a host process's plan puts the routes in the main table
// and adds no rule: any rule would send every route lookup of the gateway through the rules
// (docs/attach.md, "Where the routes go").
TEST(AttachRoutesTable, WithoutRulesAndWithAHostProcessTheRoutesGoToTheMainTableWithoutARule) {
  auto plan = make_plan(gateway_without_rules(), replanned());
  auto routes = steps_of<RouteStep>(plan);
  ASSERT_EQ(routes.size(), 2u);
  for (const auto& r : routes) {
    EXPECT_EQ(r.table, RT_TABLE_MAIN) << r.dst.str();
    EXPECT_EQ(r.metric, kMainTableMetric) << r.dst.str();
  }
  EXPECT_TRUE(steps_of<RuleStep>(plan).empty());
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find("  route blackhole 10.20.30.2/32 table main metric 65535\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route 10.0.0.0/8 table main via 200.2.2.1 dev eth0 metric 65535 mtu 1412 encap bpf xmit "
                      "lwt_snat_xmit\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("rule"), std::string::npos) << text;
  // Its identity differs from the table-421 route's, so a re-plan moves it.
  auto in_421 = steps_of<RouteStep>(make_plan(gateway(false), Settings{}))[1];
  EXPECT_NE(step_key(routes[1]), step_key(in_421));
  EXPECT_EQ(in_421.metric, 0u) << "behind rule 210 nobody else's route shares the table";
  // The metric is part of its identity (the kernel tells routes apart by it) and of the state: a
  // main-table route recorded without it (metric 0) is another route, replaced by a re-plan.
  RouteStep unmetered = routes[1];
  unmetered.metric = 0;
  EXPECT_NE(step_key(routes[1]), step_key(unmetered));
  EXPECT_EQ(std::get<RouteStep>(step_from_json(step_to_json(routes[1]))).metric, kMainTableMetric);
  EXPECT_EQ(std::get<RouteStep>(step_from_json(step_to_json(unmetered))).metric, 0u);
}

TEST(AttachRoutesTable, AnotherRuleNoHostProcessOrAChosenTableKeepTheTableAndTheRule) {
  auto expect_table = [](const HostFacts& f, const Settings& s, uint32_t table, const char* why) {
    auto plan = make_plan(f, s);
    for (const auto& r : steps_of<RouteStep>(plan)) EXPECT_EQ(r.table, table) << why << ": " << r.dst.str();
    auto rules = steps_of<RuleStep>(plan);
    ASSERT_EQ(rules.size(), 1u) << why;
    EXPECT_EQ(rules[0].table, table) << why;
    EXPECT_TRUE(std::holds_alternative<RuleStep>(plan.steps.back())) << why;
  };
  auto f = gateway_without_rules();
  f.foreign_rules4 = true;
  expect_table(f, replanned(), 421, "strongSwan's rule 220 (or any other IPv4 rule)");
  expect_table(gateway_without_rules(), Settings{}, 421, "no host process: nobody would move the routes later");
  Settings chosen = replanned();
  chosen.table = 430;
  chosen.own_table = true;
  expect_table(gateway_without_rules(), chosen, 430, "--table or --rule-priority given");
  // The rule's identity names its table: re-attached with another one, the old rule is stale.
  EXPECT_NE(step_key(RuleStep{210, 430}), step_key(RuleStep{210, 421}));
  f = gateway_without_rules();
  f.foreign_rules6 = true;
  f.foreign_rules4 = false;
  auto plan = make_plan(f, replanned());
  EXPECT_TRUE(steps_of<RuleStep>(plan).empty()) << "an IPv6 rule does not decide the IPv4 routes";
}

// A rule in front of an empty table would only make every route lookup walk the rules: a plan
// without routes (a gateway that only masquerades, policies not there yet) has none, wherever its
// routes would go.
TEST(AttachRoutesTable, NoRoutesNoRule) {
  auto f = gateway_without_rules();
  f.policies.clear();
  Settings s;  // no host process: routes would go to table 421
  s.masquerade = true;
  auto plan = make_plan(f, s);
  EXPECT_TRUE(steps_of<RouteStep>(plan).empty());
  EXPECT_TRUE(steps_of<RuleStep>(plan).empty()) << plan_to_text(plan);
  f.foreign_rules4 = true;
  EXPECT_TRUE(steps_of<RuleStep>(make_plan(f, s)).empty());
}

// Without rules the kernel answers with the longest prefix of the local and main tables
// together; behind rule 210 ipsnat's table answered before main. The main table is taken only
// where both give the same answer for every destination.
TEST(AttachRoutesTable, ARouteThatWouldDecideADestinationDifferentlyKeepsTheTable) {
  auto table_with = [](const char* main_route, const char* local_route) {
    auto f = gateway_without_rules();
    if (*main_route) f.main_routes.push_back(ipsnat::parse_prefix(main_route));
    if (*local_route) f.local_routes.push_back(ipsnat::parse_prefix(local_route));
    return steps_of<RouteStep>(make_plan(f, replanned())).back().table;
  };
  EXPECT_EQ(table_with("10.0.0.0/8", ""), 421u) << "the same prefix in main";
  EXPECT_EQ(table_with("10.9.0.0/16", ""), 421u) << "a longer prefix inside ipsnat's";
  EXPECT_EQ(table_with("10.20.30.2/32", ""), 421u) << "the blackhole's own prefix";
  EXPECT_EQ(table_with("", "10.0.0.0/8"), 421u) << "a local route around it (AnyIP)";
  EXPECT_EQ(table_with("8.0.0.0/6", ""), RT_TABLE_MAIN) << "a shorter main route around it: ipsnat's is longer";
  EXPECT_EQ(table_with("172.16.0.0/12", ""), RT_TABLE_MAIN) << "elsewhere";
  EXPECT_EQ(table_with("", "10.1.1.1/32"), RT_TABLE_MAIN) << "a local address inside: local answers either way";
  // The other family's routes are not compared.
  EXPECT_EQ(table_with("::/0", "::1/128"), RT_TABLE_MAIN);
}

// Unequal sizes: the seed's /24 LAN behind a /27 selector is NAPT over the /27 (it was refused:
// "no configured inside prefix fits"); the pool's addresses are blackholed as one block, and no
// port-forward defaults to a pool.
TEST(AttachPlan, APoolIsBlackholedPerBlock) {
  auto f = gateway(false);
  f.policies = {ipsec("10.20.30.0/27", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1)};
  auto plan = make_plan(f, Settings{});
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_EQ(plan.translations[0].nat, "napt 192.168.1.0/24 -> 10.20.30.0-10.20.30.31");
  EXPECT_EQ(plan.translations[0].napt_addr_be, 0u);
  auto routes = steps_of<RouteStep>(plan);
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_TRUE(routes[0].blackhole);
  EXPECT_EQ(routes[0].dst.str(), "10.20.30.0/27");

  spd::ImpliedNat range;
  range.kind = SPD_NAT_NAPT;
  range.nat = ipsnat::parse_prefix("10.20.30.3");
  range.nat_count = 6;  // .3-.8
  std::string blocks;
  for (const auto& b : range.nat_blocks()) blocks += b.str() + " ";
  EXPECT_EQ(blocks, "10.20.30.3/32 10.20.30.4/30 10.20.30.8/32 ");
}

// A gateway address inside an IPv4 pool (a virtual IP in the policy's /27) is left out of it, as
// IPv6 pools leave theirs: the pool is the longest run of the block's addresses no local one
// interrupts; the plan line, `ipsnat policies -j` and the datapath's target take it from the same
// decision (spd::implied_nats), the blackholes cover that run per aligned block and not the local
// address, and the gateway's own connections take that address as their source (prefsrc).
TEST(AttachPlan, AGatewayAddressInsideTheIpv4PoolIsLeftOutOfIt) {
  auto f = gateway(false);
  f.policies = {ipsec("10.20.30.0/27", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1)};
  f.local_addrs.push_back(ipsnat::parse_address("10.20.30.3"));
  auto plan = make_plan(f, Settings{});
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_EQ(plan.translations[0].nat, "napt 192.168.1.0/24 -> 10.20.30.4-10.20.30.31");
  auto text = plan_to_text(plan);
  for (const char* block : {"10.20.30.4/30", "10.20.30.8/29", "10.20.30.16/28"})
    EXPECT_NE(text.find(std::string("  route blackhole ") + block + " table 421\n"), std::string::npos) << block << "\n" << text;
  EXPECT_EQ(text.find("blackhole 10.20.30.0"), std::string::npos) << text;
  EXPECT_EQ(text.find("blackhole 10.20.30.3"), std::string::npos) << text;
  auto routes = steps_of<RouteStep>(plan);
  ASSERT_FALSE(routes.empty());
  EXPECT_EQ(routes.back().lwt_prog, "lwt_snat_xmit");
  ASSERT_TRUE(routes.back().prefsrc);
  EXPECT_EQ(routes.back().prefsrc->str(), "10.20.30.3");

  // Two local addresses: the longer run between them.
  f.local_addrs.push_back(ipsnat::parse_address("10.20.30.20"));
  EXPECT_EQ(make_plan(f, Settings{}).translations[0].nat, "napt 192.168.1.0/24 -> 10.20.30.4-10.20.30.19");
  // A one-address policy on the gateway's virtual IP stays that address (LocalVirtualIpGetsPrefsrcAndNoBlackhole).
  EXPECT_NE(make_plan(gateway(true), Settings{}).translations[0].nat.find("napt 192.168.1.0/24 -> 10.20.30.2"),
            std::string::npos);
}

// A policy bound to a device (strongSwan's interface=) is never translated by the datapath
// (docs/spd.md, SPD_V_UNKNOWN): attach's line says so rather than promising the NAT.
TEST(AttachPlan, ADeviceBoundPolicyIsPrintedAsNotTranslated) {
  auto f = gateway(false);
  f.policies[0].sel.ifindex = 3;
  auto plan = make_plan(f, Settings{});
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_NE(plan.translations[0].nat.find("(not applied: a selector bound to a device"), std::string::npos)
      << plan.translations[0].nat;
}

TEST(AttachPlan, LocalVirtualIpGetsPrefsrcAndNoBlackhole) {
  auto plan = make_plan(gateway(true), Settings{});
  auto routes = steps_of<RouteStep>(plan);
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_FALSE(routes[0].blackhole);
  ASSERT_TRUE(routes[0].prefsrc);
  EXPECT_EQ(routes[0].prefsrc->str(), "10.20.30.2");
}

TEST(AttachPlan, ConfiguredInsideAndTableAreUsed) {
  Settings s;
  s.inside = {ipsnat::parse_prefix("172.16.5.0/24")};
  s.table = 77;
  s.rule_priority = 150;
  s.route_mtu = 1400;
  auto plan = make_plan(gateway(false), s);
  for (const auto& c : steps_of<XfrmPolicyStep>(plan))
    if (c.policy.sel.dst.len < 32) {
      EXPECT_EQ(c.policy.sel.dst.str(), "172.16.5.0/24");
    }
  for (const auto& r : steps_of<RouteStep>(plan)) EXPECT_EQ(r.table, 77u);
  EXPECT_EQ(steps_of<RouteStep>(plan).back().mtu, 1400u);
  EXPECT_EQ(steps_of<RuleStep>(plan)[0].priority, 150u);
}

TEST(AttachPlan, TheSasPathMtuBoundsTheRouteMtuBelowTheDevices) {
  HostFacts f = gateway(false);
  Nexthop peer{ipsnat::parse_prefix("100.1.1.1/32"), 3, ipsnat::parse_address("200.2.2.1"), "eth0", 1280};
  f.sa_peers = {peer};
  EXPECT_EQ(steps_of<RouteStep>(make_plan(f, Settings{})).back().mtu, 1280 - kEspOverhead);
  // A larger path than the device's: the device's MTU counts.
  f.sa_peers[0].mtu = 9000;
  EXPECT_EQ(steps_of<RouteStep>(make_plan(f, Settings{})).back().mtu, 1500 - kEspOverhead);
  // Another policy's peer does not bound this one.
  f.sa_peers[0] = {ipsnat::parse_prefix("100.9.9.9/32"), 3, std::nullopt, "eth0", 1280};
  EXPECT_EQ(steps_of<RouteStep>(make_plan(f, Settings{})).back().mtu, 1500 - kEspOverhead);
}

TEST(AttachPlan, ExistingCompanionSelectorIsNotTouched) {
  auto f = gateway(false);
  f.policies.push_back(ipsec("10.0.0.0/8", "192.168.1.0/24", spd::Dir::Fwd, "100.1.1.1", "200.2.2.2", 1));
  auto plan = make_plan(f, Settings{});
  auto comp = steps_of<XfrmPolicyStep>(plan);
  ASSERT_EQ(comp.size(), 2u);  // the LAN's in, the uplink address's fwd
  EXPECT_EQ(comp[0].policy.dir, spd::Dir::In);
  EXPECT_EQ(comp[1].policy.sel.dst.str(), "200.2.2.2/32");
  EXPECT_FALSE(plan.warnings.empty());
}

void restrict_to_https(spd::Policy& p) {
  p.sel.proto = IPPROTO_TCP;
  p.sel.dport = 443;
  p.sel.dport_mask = 0xffff;
}

// The seed's gateway with its policy restricted to tcp/443, and a port-less one to 172.16.0.0/12.
HostFacts gateway_with_https_policy() {
  auto f = gateway(false);
  restrict_to_https(f.policies[0]);
  auto other = ipsec("10.20.30.2/32", "172.16.0.0/12", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 2);
  other.index = 17;
  f.policies.push_back(other);
  f.nexthops.push_back({ipsnat::parse_prefix("172.16.0.0/12"), 3, ipsnat::parse_address("200.2.2.1"), "eth0"});
  return f;
}

TEST(AttachPlan, PortRestrictedPolicyIsNotTranslatedInPolicyMode) {
  auto f = gateway_with_https_policy();
  auto plan = make_plan(f, Settings{});
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_EQ(plan.warnings[0].find('\n'), std::string::npos);
  EXPECT_EQ(plan.warnings[0].rfind("policy 9 (10.20.30.2/32 -> 10.0.0.0/8 tcp dport 443) is not translated in policy "
                                   "mode: it restricts ports",
                                   0),
            0u)
      << plan.warnings[0];
  // Nothing planned for its destination: no LWT route, no companion for its replies.
  for (const auto& r : steps_of<RouteStep>(plan)) EXPECT_NE(r.dst.str(), "10.0.0.0/8");
  for (const auto& c : steps_of<XfrmPolicyStep>(plan)) EXPECT_NE(c.policy.sel.src.str(), "10.0.0.0/8");
  EXPECT_EQ(covered_destinations(f, Settings{}), std::vector<Prefix>{ipsnat::parse_prefix("172.16.0.0/12")});
  ASSERT_EQ(plan.translations.size(), 2u);
  EXPECT_EQ(plan.translations[0].nat.rfind("none (not translated in policy mode: restricts ports", 0), 0u);
  EXPECT_EQ(plan.translations[0].napt_addr_be, 0u);
  // The port-less policy keeps its route.
  auto routes = steps_of<RouteStep>(plan);
  EXPECT_TRUE(std::any_of(routes.begin(), routes.end(), [](const RouteStep& r) {
    return r.dst.str() == "172.16.0.0/12" && r.lwt_prog == "lwt_snat_xmit";
  }));
  EXPECT_TRUE(make_plan(gateway(false), Settings{}).warnings.empty());
}

TEST(AttachPlan, OnlyPortRestrictedPoliciesRefuseTheAttachNamingThePolicy) {
  auto f = gateway(false);
  restrict_to_https(f.policies[0]);
  try {
    make_plan(f, Settings{});
    FAIL() << "attach planned a translation the LWT reroute would lose";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("policy 9 (10.20.30.2/32 -> 10.0.0.0/8 tcp dport 443) is not translated"),
              std::string::npos)
        << e.what();
  }
}

TEST(AttachPlan, PortConditionsPortZeroMeetsAreTranslatedInPolicyMode) {
  auto f = gateway(false);
  f.policies[0].sel.proto = IPPROTO_TCP;
  f.policies[0].sel.dport = 0;  // ports 0-255: the reroute's port 0 meets it
  f.policies[0].sel.dport_mask = 0xff00;
  auto plan = make_plan(f, Settings{});
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_EQ(plan.translations[0].nat.rfind("napt", 0), 0u);
}

TEST(AttachPlan, RouteModeTranslatesPortRestrictedPolicies) {
  auto f = gateway(false);
  f.dev = {"ipsec0", 7, "xfrm", 42, 0, 1500, true};
  f.policies = {ipsec("10.20.30.2/32", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1, 42)};
  restrict_to_https(f.policies[0]);
  auto plan = make_plan(f, Settings{});
  EXPECT_TRUE(plan.warnings.empty());
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_EQ(plan.translations[0].nat.rfind("napt", 0), 0u);
}

TEST(AttachPlan, RouteModeHooksTheTunnelDeviceWithCompanionsForXfrmOnly) {
  auto f = gateway(false);
  f.dev = {"ipsec0", 7, "xfrm", 42, 0, 1500, true};
  f.policies = {ipsec("10.20.30.2/32", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1, 42)};
  auto plan = make_plan(f, Settings{});
  EXPECT_EQ(plan.mode, Mode::Route);
  // xfrm interface: the fwd/in check sees the flow translated back, with the device's if_id.
  auto comps = steps_of<XfrmPolicyStep>(plan);
  ASSERT_EQ(comps.size(), 2u);
  for (const auto& c : comps) {
    EXPECT_EQ(c.policy.sel.src.str(), "10.0.0.0/8");
    EXPECT_EQ(c.policy.sel.dst.str(), "192.168.1.0/24");
    EXPECT_EQ(c.policy.if_id, 42u);
  }
  EXPECT_EQ(comps[0].policy.dir, spd::Dir::Fwd);
  EXPECT_EQ(comps[1].policy.dir, spd::Dir::In);
  auto tc = steps_of<TcStep>(plan);
  ASSERT_EQ(tc.size(), 3u);
  EXPECT_EQ(tc[0].prog, "tc_rev_ingress");
  EXPECT_EQ(tc[1].prog, "tc_snat_egress");
  EXPECT_TRUE(tc[0].dev.empty() && tc[1].dev.empty());  // the attached device
  // The device's "fragmentation needed" to a local NAT address arrives over lo.
  EXPECT_EQ(tc[2].prog, "tc_lo_egress");
  EXPECT_EQ(tc[2].hook, Hook::TcEgress);
  EXPECT_EQ(tc[2].dev, "lo");
  EXPECT_NE(step_key(tc[2]), step_key(tc[1]));
  EXPECT_EQ(plan.steps.size(), 5u);

  // VTI: the in-check runs before TC ingress and the secpath is gone after it: no companions.
  f.dev = {"vti0", 8, "vti", 0, 42, 1500, true};
  f.policies[0].if_id = 0;
  f.policies[0].mark_v = 42;
  f.policies[0].mark_m = 0xffffffff;
  auto vti = make_plan(f, Settings{});
  EXPECT_TRUE(steps_of<XfrmPolicyStep>(vti).empty());
  EXPECT_EQ(vti.steps.size(), 3u);
}

TEST(AttachPlan, NoPolicyForTheDeviceIsAnError) {
  auto f = gateway(false);
  f.dev = {"ipsec0", 7, "xfrm", 43, 0, 1500, true};
  f.policies[0].if_id = 42;
  try {
    make_plan(f, Settings{});
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("if_id 43"), std::string::npos) << e.what();
  }
  Settings s;
  s.allow_empty = true;
  EXPECT_EQ(make_plan(f, s).steps.size(), 3u);
  auto g = gateway(false);
  g.policies.clear();
  EXPECT_THROW(make_plan(g, Settings{}), UserError);
}

TEST(AttachPlan, ForeignPoliciesOfOtherInterfacesAreIgnoredInPolicyMode) {
  auto f = gateway(false);
  f.policies[0].if_id = 42;  // belongs to an xfrm interface
  EXPECT_THROW(make_plan(f, Settings{}), UserError);
}

TEST(AttachPlan, DeviceConfigFollowsTheDeviceAsItIsNow) {
  LinkFacts vti{"vti0", 6, "vti", 0, 5, 1500, true};
  auto c = device_config(vti, Mode::Route);
  EXPECT_EQ(c.mode, uint32_t{IPSNAT_DEV_ROUTE});
  EXPECT_EQ(c.mark, 5u);  // the okey is the flow mark of the VTI's own lookup
  vti.okey = 7;           // `ip link set vti0 type vti okey 7`
  EXPECT_EQ(device_config(vti, Mode::Route).mark, 7u);
  LinkFacts xfrm{"ipsec0", 5, "xfrm", 43, 0, 1500, true};
  c = device_config(xfrm, Mode::Route);
  EXPECT_EQ(c.if_id, 43u);
  EXPECT_EQ(c.mark, 0u);
  LinkFacts nic{"eth0", 3, "", 0, 0, 1500, true};
  c = device_config(nic, Mode::Policy);
  EXPECT_EQ(c.mode, uint32_t{IPSNAT_DEV_POLICY});
  EXPECT_EQ(c.if_id, 0u);
  EXPECT_EQ(c.mark, 0u);
}

TEST(AttachPlan, TextNamesEveryStepTranslationAndForward) {
  auto plan = make_plan(gateway(false), Settings{});
  plan.forwards = {parse_forward_spec("tcp:10.20.30.2:8080=192.168.1.10:80")};
  auto text = plan_to_text(plan, false);
  EXPECT_EQ(text.rfind("attach eth0 mode policy\n", 0), 0u) << text;
  for (const auto& s : plan.steps) EXPECT_NE(text.find("  " + describe(s) + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("route 10.0.0.0/8 table 421 via 200.2.2.1 dev eth0 mtu 1412 encap bpf xmit lwt_snat_xmit"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xfrm policy src 10.0.0.0/8 dst 192.168.1.0/24 dir fwd priority"), std::string::npos) << text;
  EXPECT_EQ(text.find("index 0"), std::string::npos) << text;
  EXPECT_NE(text.find("  translate policy "), std::string::npos) << text;
  EXPECT_NE(text.find("  forward tcp 10.20.30.2:8080 -> 192.168.1.10:80\n"), std::string::npos) << text;
  plan.warnings = {"something"};
  EXPECT_EQ(plan_to_text(plan, false).find("warning"), std::string::npos);
  EXPECT_NE(plan_to_text(plan, true).find("  warning: something\n"), std::string::npos);
}

// --masquerade: the uplink's primary address (or the one given) and ports above the host's
// ephemeral range, written into the device's datapath entry and printed; never on a tunnel device.
TEST(AttachPlan, MasqueradeTakesTheUplinksAddressAndPortsOutsideTheEphemeralRange) {
  auto facts = gateway(false);
  facts.addresses.push_back(host_address("200.2.2.9", 24, 3, "eth0"));  // a secondary
  facts.local_port_min = 32768;
  facts.local_port_max = 60999;
  Settings s;
  s.masquerade = true;
  auto plan = make_plan(facts, s);
  ASSERT_TRUE(plan.masquerade);
  EXPECT_EQ(plan.masquerade->addr.str(), "200.2.2.2");
  EXPECT_EQ(plan.masquerade->port_min, 61000);
  EXPECT_EQ(plan.masquerade->port_max, 65535);
  EXPECT_NE(plan_to_text(plan).find("  masquerade 192.168.1.0/24 -> 200.2.2.2 (the address of eth0) ports 61000-65535\n"),
            std::string::npos)
      << plan_to_text(plan);
  auto c = device_config(facts.dev, plan.mode, plan.masquerade);
  EXPECT_EQ(c.masq_addr, ipsnat::parse_address("200.2.2.2").v4_be());
  EXPECT_EQ(c.masq_port_min, 61000);
  EXPECT_EQ(device_config(facts.dev, plan.mode).masq_addr, 0u);  // without: off

  s.masquerade_addr = ipsnat::parse_address("198.18.0.5");
  EXPECT_EQ(make_plan(facts, s).masquerade->addr.str(), "198.18.0.5");
  // A gateway whose policies are all gone still masquerades.
  facts.policies.clear();
  EXPECT_NO_THROW(make_plan(facts, s));
  s.mode = ModeRequest::Route;
  EXPECT_THROW(make_plan(facts, s), UserError);
}

// --binat: each 1:1 map the far side then reaches is printed, the device's entry carries the
// flag; a policy with a one-address source (NAPT) is no 1:1 map: a warning says nothing is reachable.
TEST(AttachPlan, BinatNamesEveryOneToOneMapAndSetsTheDevicesFlag) {
  auto facts = gateway(false);
  Settings s;
  s.binat = true;
  auto napt_only = make_plan(facts, s);
  EXPECT_TRUE(napt_only.binat_maps.empty());
  ASSERT_EQ(napt_only.warnings.size(), 1u);
  EXPECT_NE(napt_only.warnings[0].find("--binat: no out-policy of \"eth0\" implies a 1:1 map"), std::string::npos);

  facts.policies = {ipsec("10.20.40.0/24", "10.99.0.0/16", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1)};
  facts.nexthops = {{ipsnat::parse_prefix("10.99.0.0/16"), 3, ipsnat::parse_address("200.2.2.1"), "eth0"}};
  auto plan = make_plan(facts, s);
  ASSERT_EQ(plan.binat_maps.size(), 1u);
  EXPECT_NE(plan_to_text(plan).find("  binat 10.20.40.0/24 = 192.168.1.0/24 from 10.99.0.0/16 (policy 9)\n"),
            std::string::npos)
      << plan_to_text(plan);
  EXPECT_EQ(plan_to_json(plan)["binat"][0]["inside"], "192.168.1.0/24");
  EXPECT_EQ(device_config(facts.dev, plan.mode, plan.masquerade, plan.binat).flags, unsigned(IPSNAT_DEV_BINAT));
  // Without the flag: no line, no flag.
  auto off = make_plan(facts, Settings{});
  EXPECT_EQ(plan_to_text(off).find("binat"), std::string::npos);
  EXPECT_EQ(device_config(facts.dev, off.mode, off.masquerade, off.binat).flags, 0u);
}

TEST(AttachPlan, MasqueradePortsAvoidTheHostsEphemeralPorts) {
  EXPECT_EQ(masquerade_ports(32768, 60999), (std::pair<uint16_t, uint16_t>(61000, 65535)));
  EXPECT_EQ(masquerade_ports(10000, 65000), (std::pair<uint16_t, uint16_t>(1024, 9999)));
  EXPECT_EQ(masquerade_ports(1024, 65535), std::nullopt);
  EXPECT_EQ(masquerade_ports(2000, 65000), std::nullopt);  // 976 below, 535 above: too few
}

// Route mode on an xfrm interface next to its uplink, two LANs (one on a bridge), loopback and a
// host address: only the LANs are inside, each excluded prefix with its reason.
HostFacts xfrm_gateway() {
  HostFacts f;
  f.dev = {"ipsec0", 7, "xfrm", 42, 0, 1500, true, 3};
  f.addresses = {host_address("127.0.0.1", 8, 1, "lo", true), host_address("200.2.2.2", 24, 3, "eth0"),
                 host_address("10.20.30.2", 32, 3, "eth0"), host_address("192.168.1.1", 24, 5, "br0"),
                 host_address("172.16.9.1", 20, 6, "lan2")};
  for (const auto& a : f.addresses) f.local_addrs.push_back(a.prefix.addr);
  f.default_oifs = {3};
  f.policies = {ipsec("10.20.30.2/32", "10.0.0.0/8", spd::Dir::Out, "200.2.2.2", "100.1.1.1", 1, 42),
                ipsec("10.0.0.0/8", "10.20.30.2/32", spd::Dir::In, "100.1.1.1", "200.2.2.2", 1, 42)};
  return f;
}

std::vector<std::string> inside_of(const HostFacts& f, const Settings& s = {}) {
  std::vector<std::string> out;
  for (const auto& p : inside_prefixes(f, s)) out.push_back(p.str());
  return out;
}

std::string why_not(const HostFacts& f, const std::string& prefix) {
  for (const auto& c : choose_inside(f, Settings{}))
    if (c.prefix.str() == prefix) return c.inside ? "inside" : c.why;
  return "absent";
}

TEST(InsidePrefixes, XfrmInterfaceUplinkIsNeverALanAndEveryLanIs) {
  auto f = xfrm_gateway();
  EXPECT_EQ(inside_of(f), (std::vector<std::string>{"192.168.1.0/24", "172.16.0.0/20"}));
  EXPECT_EQ(why_not(f, "200.2.2.0/24"), "the uplink: the underlay of ipsec0");
  EXPECT_EQ(why_not(f, "127.0.0.0/8"), "loopback");
  EXPECT_EQ(why_not(f, "10.20.30.2/32"), "absent");  // a host address names no LAN
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find("  inside 192.168.1.0/24 (br0)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  inside 172.16.0.0/20 (lan2)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  not inside 200.2.2.0/24 (eth0): the uplink: the underlay of ipsec0\n"), std::string::npos)
      << text;
  ASSERT_EQ(plan.translations.size(), 1u);
  EXPECT_NE(plan.translations[0].nat.find("napt 192.168.1.0/24, 172.16.0.0/20 -> 10.20.30.2"), std::string::npos)
      << plan.translations[0].nat;
  // Companion fwd/in policies for both LANs, none for the uplink's prefix.
  std::vector<std::string> dsts;
  for (const auto& c : steps_of<XfrmPolicyStep>(plan)) dsts.push_back(c.policy.sel.dst.str());
  EXPECT_EQ(dsts, (std::vector<std::string>{"192.168.1.0/24", "192.168.1.0/24", "172.16.0.0/20", "172.16.0.0/20"}));
  EXPECT_EQ(plan_to_json(plan)["inside"].size(), 4u);
}

spd::Policy ipsec6(const std::string& src, const std::string& dst, uint32_t if_id) {
  spd::Policy p = ipsec(src, dst, spd::Dir::Out, "2001:db8:ff::2", "2001:db8:ff::1", 2, if_id);
  p.sel.family = AF_INET6;
  p.tmpls[0].family = AF_INET6;
  p.index = 17;
  return p;
}

// Dual stack on the xfrm interface: the IPv6 LAN of the policy's length is NPTv6's, with its own
// companions; the IPv4 NAPT and its companions keep to the IPv4 LANs.
TEST(AttachPlan, AnIpv6PrefixPolicyImpliesNptv6InRouteModeBesideTheIpv4Nat) {
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:9:9:9::1", 64, 5, "br0"));
  f.addresses.push_back(host_address("2001:db8:ff::2", 64, 3, "eth0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 42));
  Settings binat;
  binat.binat = true;
  auto plan = make_plan(f, binat);
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find("  inside fd00:9:9:9::/64 (br0)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  not inside 2001:db8:ff::/64 (eth0): the uplink: the underlay of ipsec0\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  translate policy 17 2001:db8:b:7::/64 -> 2001:db8:f00::/40: nptv6 fd00:9:9:9::/64 -> "
                      "2001:db8:b:7::/64\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(": napt 192.168.1.0/24, 172.16.0.0/20 -> 10.20.30.2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  binat 2001:db8:b:7::/64 = fd00:9:9:9::/64 from 2001:db8:f00::/40 (policy 17)\n"),
            std::string::npos)
      << text;
  std::vector<std::string> comps;
  for (const auto& c : steps_of<XfrmPolicyStep>(plan))
    comps.push_back(std::string(spd::to_string(c.policy.dir)) + " " + c.policy.sel.src.str() + " -> " +
                    c.policy.sel.dst.str() + " if_id " + std::to_string(c.policy.if_id));
  EXPECT_EQ(comps, (std::vector<std::string>{"fwd 10.0.0.0/8 -> 192.168.1.0/24 if_id 42",
                                             "in 10.0.0.0/8 -> 192.168.1.0/24 if_id 42",
                                             "fwd 10.0.0.0/8 -> 172.16.0.0/20 if_id 42",
                                             "in 10.0.0.0/8 -> 172.16.0.0/20 if_id 42",
                                             "fwd 2001:db8:f00::/40 -> fd00:9:9:9::/64 if_id 42",
                                             "in 2001:db8:f00::/40 -> fd00:9:9:9::/64 if_id 42"}));
}

// Without --binat the IPv6 LAN is not translated (NPTv6 would open it to the far side), the plan
// line says so, and no companion lets decrypted IPv6 to the LAN pass; the IPv4 NAT is as before.
TEST(AttachPlan, Nptv6NeedsBinat) {
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:9:9:9::1", 64, 5, "br0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 42));
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find("  translate policy 17 2001:db8:b:7::/64 -> 2001:db8:f00::/40: none (nptv6 is stateless both "
                      "ways: --binat allows it)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(": napt 192.168.1.0/24, 172.16.0.0/20 -> 10.20.30.2\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("\n  binat "), std::string::npos) << text;
  for (const auto& c : steps_of<XfrmPolicyStep>(plan)) EXPECT_NE(c.policy.sel.family, AF_INET6) << text;
  f.policies = {ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 42)};
  try {
    make_plan(f, Settings{});
    ADD_FAILURE() << "planned with only an IPv6 policy and no --binat";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("--binat allows it"), std::string::npos) << e.what();
  }
}

// A route-mode device without an if_id (a VTI) reads the IPv6 rules of if_id 0, which are policy
// mode's too: the SPD mirror writes none for a port-restricted policy there (its LWT reroute
// carries no ports), and the plan says so instead of promising NAT66 the map does not hold.
// A VTI's own xfrm lookup (vti_xmit) carries the ports and its okey as the flow mark: its
// port-restricted IPv6 policy is translated, with rules kept for that mark (maps/npt6.h), which
// policy mode's LWT xmit (mark 0, no ports) never asks for.
TEST(AttachPlan, AVtisPortRestrictedIpv6PolicyIsTranslatedWithRulesKeptForItsOkey) {
  auto f = gateway(false);
  f.dev = {"vti0", 8, "vti", 0, 42, 1500, true};
  f.addresses.push_back(host_address("fd00:9:9:9::1", 64, 4, "lan0"));
  auto p = ipsec6("2001:db8:b:7::5/128", "2001:db8:f00::/40", 0);
  p.mark_v = 42;
  p.mark_m = 0xffffffff;
  restrict_to_https(p);
  f.policies = {p};
  Settings s;
  s.allow_empty = true;
  auto plan = make_plan(f, s);
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find("translate policy 17 2001:db8:b:7::5/128 -> 2001:db8:f00::/40: nat66 fd00:9:9:9::/64 -> "
                      "2001:db8:b:7::5 (ports)"),
            std::string::npos)
      << text;
  EXPECT_TRUE(plan.warnings.empty()) << text;
  spd::SpdModel model;
  model.apply(spd::PolicyUpsert{p});
  int nat66 = 0;
  for (const auto& [key, rule] : spd::npt6_entries(model, {ipsnat::parse_prefix("fd00:9:9:9::/64")})) {
    npt6_key k{};
    std::memcpy(&k, key.data(), sizeof(k));
    if (rule.kind != NPT6_KIND_NAT66) continue;
    ++nat66;
    EXPECT_EQ(k.mark, 42u) << "kept for the VTI's okey";
    EXPECT_EQ(k.if_id, 0u);
  }
  EXPECT_EQ(nat66, 1);
}

// One IPv6 destination covered by a VTI's marked policy and by the uplink's unmarked one: each has
// its own NPT6_OUT rule (mark 42 and mark 0), whichever the kernel holds first; the VTI's plan
// translates its policy, the uplink's plan (policy mode) its own and leaves the VTI's alone (no
// LWT route to its destination for it: the VTI's traffic is not rerouted to the uplink).
TEST(AttachPlan, AVtisMarkedIpv6PolicyAndTheUplinksUnmarkedOneKeepTheirOwnRules) {
  auto vti_pol = ipsec6("2001:db8:6e::5/128", "2001:db8:e6e::/48", 0);
  vti_pol.mark_v = 42;
  vti_pol.mark_m = 0xffffffff;
  auto uplink_pol = ipsec6("2001:db8:6f::5/128", "2001:db8:e6e::/48", 0);
  uplink_pol.index = 18;
  auto lan = ipsnat::parse_prefix("fd00:6e:1::/64");
  for (uint32_t vti_first : {0u, 1u}) {
    vti_pol.priority = vti_first ? 100 : 200;
    uplink_pol.priority = vti_first ? 200 : 100;
    spd::SpdModel model;
    model.apply(spd::PolicyUpsert{vti_pol});
    model.apply(spd::PolicyUpsert{uplink_pol});
    std::map<uint32_t, std::string> to_by_mark;
    for (const auto& [key, rule] : spd::npt6_entries(model, {lan})) {
      npt6_key k{};
      std::memcpy(&k, key.data(), sizeof(k));
      if (k.dir != NPT6_OUT) continue;
      ipsnat::Address a;
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), rule.to, 16);
      to_by_mark[k.mark] = a.str();
    }
    EXPECT_EQ(to_by_mark, (std::map<uint32_t, std::string>{{0, "2001:db8:6f::5"}, {42, "2001:db8:6e::5"}}))
        << "VTI's policy first: " << vti_first;

    auto f = gateway(false);
    f.addresses.push_back(host_address("fd00:6e:1::1", 64, 4, "lan0"));
    f.policies = {vti_pol, uplink_pol};
    f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:e6e::/48"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
    auto uplink = plan_to_text(make_plan(f, Settings{}));
    EXPECT_NE(uplink.find("translate policy 18 2001:db8:6f::5/128 -> 2001:db8:e6e::/48: nat66 fd00:6e:1::/64 -> "
                          "2001:db8:6f::5 (ports)"),
              std::string::npos)
        << uplink;
    EXPECT_EQ(uplink.find("2001:db8:6e::5"), std::string::npos) << uplink;
    f.dev = {"vti0", 8, "vti", 0, 42, 1500, true};
    auto vti = plan_to_text(make_plan(f, Settings{}));
    EXPECT_NE(vti.find("translate policy 17 2001:db8:6e::5/128 -> 2001:db8:e6e::/48: nat66 fd00:6e:1::/64 -> "
                       "2001:db8:6e::5 (ports)"),
              std::string::npos)
        << vti;
    EXPECT_EQ(vti.find("2001:db8:6f::5"), std::string::npos) << vti;
  }
}

// The uplink's plan takes only the policies its own lookups meet (flow mark 0; the kernel matches
// when (mark & mask) == value): a VTI's marked IPv4 policy (42/0xffffffff) gets no LWT route,
// blackhole or companion there (its route at rule 210 would take the VTI's destination from the
// VTI), while one whose value is 0 under a mask, and the unmarked one, keep theirs.
TEST(AttachPlan, TheUplinkLeavesAVtisMarkedIpv4PolicyToTheVti) {
  auto f = gateway(false);
  auto vti_out = ipsec("10.20.40.2/32", "172.30.0.0/16", spd::Dir::Out, "200.2.2.2", "100.1.1.7", 7);
  vti_out.index = 17;
  auto vti_in = ipsec("172.30.0.0/16", "10.20.40.2/32", spd::Dir::In, "100.1.1.7", "200.2.2.2", 7);
  auto zero_under_mask = ipsec("10.20.50.2/32", "172.31.0.0/16", spd::Dir::Out, "200.2.2.2", "100.1.1.8", 8);
  zero_under_mask.index = 25;
  zero_under_mask.mark_m = 0xff;
  for (auto* p : {&vti_out, &vti_in}) {
    p->mark_v = 42;
    p->mark_m = 0xffffffff;
  }
  f.policies.insert(f.policies.end(), {vti_out, vti_in, zero_under_mask});
  f.nexthops.push_back({ipsnat::parse_prefix("172.30.0.0/16"), 3, ipsnat::parse_address("200.2.2.1"), "eth0"});
  f.nexthops.push_back({ipsnat::parse_prefix("172.31.0.0/16"), 3, ipsnat::parse_address("200.2.2.1"), "eth0"});
  auto plan = make_plan(f, Settings{});
  std::vector<std::string> routes;
  for (const auto& r : steps_of<RouteStep>(plan)) routes.push_back(r.dst.str());
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "172.30.0.0/16"), 0) << plan_to_text(plan);
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "10.20.40.2/32"), 0) << plan_to_text(plan);
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "10.0.0.0/8"), 1) << plan_to_text(plan);
  EXPECT_EQ(std::count(routes.begin(), routes.end(), "172.31.0.0/16"), 1) << plan_to_text(plan);
  for (const auto& c : steps_of<XfrmPolicyStep>(plan)) EXPECT_EQ(c.policy.mark_v, 0u) << c.policy.describe();
  auto text = plan_to_text(plan);
  EXPECT_EQ(text.find("172.30."), std::string::npos) << text;
  EXPECT_NE(text.find("translate policy 25 10.20.50.2/32 -> 172.31.0.0/16"), std::string::npos) << text;
}

// A VTI's refusals name the VTI and its okey, not policy mode; a mark mask that is neither 0 nor
// full matches several flow marks and takes no rule, said in one line.
TEST(AttachPlan, AVtisIpv6RefusalsAreWordedForTheVti) {
  auto f = gateway(false);
  f.dev = {"vti0", 8, "vti", 0, 42, 1500, true};
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  auto wide = ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 0);
  auto https = ipsec6("2001:db8:b:7::3/128", "2001:db8:f00:1::/64", 0);
  https.index = 18;
  restrict_to_https(https);
  for (auto* p : {&wide, &https}) {
    p->mark_v = 42;
    p->mark_m = 0xffffffff;
  }
  f.policies = {wide, https};
  auto plan = make_plan(f, Settings{});
  ASSERT_EQ(plan.warnings.size(), 1u) << plan_to_text(plan);
  EXPECT_EQ(plan.warnings[0].rfind("policy 18 (2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64) is not translated through "
                                   "\"vti0\" (okey 42): it restricts ports (tcp dport 443) on a destination the "
                                   "port-less policy 17",
                                   0),
            0u)
      << plan.warnings[0];
  EXPECT_EQ(plan.warnings[0].find("policy mode"), std::string::npos) << plan.warnings[0];

  wide.mark_v = 0x2a;
  wide.mark_m = 0xff;
  f.policies = {wide};
  Settings s;
  s.allow_empty = true;
  plan = make_plan(f, s);
  ASSERT_EQ(plan.warnings.size(), 1u) << plan_to_text(plan);
  EXPECT_EQ(plan.warnings[0],
            "policy 17 (2001:db8:b:7::2/128 -> 2001:db8:f00::/40) is not translated through \"vti0\" (okey 42): mark "
            "0x2a/0xff matches more than one flow mark: IPv6 rules are kept for one mark (a VTI's okey)");
}

// ip6_vti ("vti6") is a VTI as ip_vti is: route mode by default, its okey the flow mark.
TEST(AttachPlan, AVti6IsATunnelDeviceWithItsOkeyAsTheFlowMark) {
  LinkFacts vti6{"vti6a", 9, "vti6", 0, 43, 1500, true};
  EXPECT_EQ(choose_mode(vti6, ModeRequest::Auto), Mode::Route);
  EXPECT_THROW(choose_mode(vti6, ModeRequest::Policy), UserError);
  EXPECT_EQ(device_config(vti6, Mode::Route).mark, 43u);
}

// What NPTv6 and NAT66 do not do is said, never half done: NPTv6 without --binat in policy mode
// too (the guard keeps the IPv6 cleartext in), a one-address source inside an IPv6 LAN (its hosts
// are sent as they are), no IPv6 LAN of the policy's length.
TEST(AttachPlan, Ipv6WithoutNptv6IsNotTranslatedAndSaysWhy) {
  auto why = [](const HostFacts& f) {
    try {
      make_plan(f, Settings{});
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("planned");
  };
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.policies = {ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 0)};
  EXPECT_NE(why(f).find("implies a translation: policy 17 2001:db8:b:7::/64 -> 2001:db8:f00::/40: none (nptv6 is "
                        "stateless both ways: --binat allows it)"),
            std::string::npos)
      << why(f);
  auto x = xfrm_gateway();
  x.addresses.push_back(host_address("fd00:71::1", 64, 5, "br0"));
  x.policies = {ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 42)};
  auto within = x;
  within.addresses.push_back(host_address("2001:db8:b:7::1", 64, 5, "br0"));
  EXPECT_NE(why(within).find("none (the address 2001:db8:b:7::2 is in the inside prefix 2001:db8:b:7::/64"),
            std::string::npos)
      << why(within);
  auto no_lan = xfrm_gateway();
  no_lan.policies = {ipsec6("2001:db8:b:7:8::/80", "2001:db8:f00::/40", 42)};
  EXPECT_NE(why(no_lan).find("no IPv6 inside prefix /80 or longer (up to /112) to map onto 2001:db8:b:7:8::/80"),
            std::string::npos)
      << why(no_lan);
}

// NAT66 takes every IPv6 inside prefix (a second LAN, a bridge's second prefix) to the policy's
// address, as IPv4 NAPT does for several LANs: the plan names them all, warns of nothing, and in
// policy mode plans the fwd/in companions of each; one --inside prefix covering them is one.
TEST(AttachPlan, Nat66TranslatesEveryIpv6InsidePrefix) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.addresses.push_back(host_address("fd00:72::1", 64, 4, "lan0"));
  f.addresses.push_back(host_address("fd00:73:1::1", 56, 5, "lan1"));
  f.policies.push_back(ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 0));
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  EXPECT_TRUE(plan.warnings.empty()) << plan.warnings.front();
  EXPECT_NE(text.find(": nat66 fd00:71::/64, fd00:72::/64, fd00:73:1::/56 -> 2001:db8:b:7::2 (ports)\n"),
            std::string::npos)
      << text;
  for (const char* lan : {"fd00:71::/64", "fd00:72::/64", "fd00:73:1::/56"})
    for (const char* dir : {"fwd", "in"})
      EXPECT_NE(text.find(std::string("xfrm policy src 2001:db8:f00::/40 dst ") + lan + " dir " + dir), std::string::npos)
          << lan << " " << dir << "\n"
          << text;
  Settings covering;
  covering.inside = {ipsnat::parse_prefix("192.168.1.0/24"), ipsnat::parse_prefix("fd00:70::/30")};
  plan = make_plan(f, covering);
  EXPECT_TRUE(plan.warnings.empty()) << plan.warnings.front();
  EXPECT_NE(plan_to_text(plan).find(": nat66 fd00:70::/30 -> 2001:db8:b:7::2 (ports)\n"), std::string::npos)
      << plan_to_text(plan);
}

// An IPv6 [[nat]] rule (Settings::nat_rules, as `ipsnat run --config` passes them) decides the
// plan of the policies it applies to: two /64 LANs under a /64 source selector, which the SPD
// alone takes with NAT66 over the selector's pool, become the rule's NAT66 of its LAN to exactly
// its address, with the plan line naming the rule, that address alone blackholed and the LWT
// route that brings the LAN's packets to the datapath in policy mode; the companions are the
// rule's LAN's alone.
TEST(AttachPlan, AnIpv6NatRuleDecidesThePlanLineAndRoute) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.addresses.push_back(host_address("fd00:72::1", 64, 4, "lan0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 0));
  f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:f00::/40"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
  auto text = plan_to_text(make_plan(f, Settings{}));
  EXPECT_NE(text.find(": nat66 fd00:71::/64, fd00:72::/64 -> 2001:db8:b:7::1-2001:db8:b:7::1:0 (ports)\n"),
            std::string::npos)
      << text;
  Settings s;
  ipsnat::spd::NatOverride o;
  o.inside = ipsnat::parse_prefix("fd00:72::/64");
  o.nat = ipsnat::parse_prefix("2001:db8:b:7::9");
  o.policy_src = o.nat;
  o.kind = SPD_NAT_NAPT;
  o.origin = "ipsnat.toml:4";
  s.nat_rules = {o};
  text = plan_to_text(make_plan(f, s));
  EXPECT_NE(text.find(": nat66 fd00:72::/64 -> 2001:db8:b:7::9 (ports); nat rule ipsnat.toml:4\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:b:7::9/128 table 421\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("route blackhole 2001:db8:b:7::1/128"), std::string::npos) << "no pool\n" << text;
  EXPECT_NE(text.find("  route 2001:db8:f00::/40 table 421 via fe80::1 dev eth0 mtu lock "), std::string::npos) << text;
  EXPECT_NE(text.find("xfrm policy src 2001:db8:f00::/40 dst fd00:72::/64 dir fwd"), std::string::npos) << text;
  EXPECT_EQ(text.find("xfrm policy src 2001:db8:f00::/40 dst fd00:71::/64 dir fwd"), std::string::npos) << text;
}

// Policy mode translates IPv6 as it does IPv4 (docs/attach.md, "IPv6 in policy mode"): NAT66 for
// a one-address source with the fwd/in companions of the IPv6 LAN, the address blackholed in the
// table while it is not local (else the route's preferred source), an LWT route per destination
// through the main table's IPv6 nexthop with a locked MTU (an IPv6 outer header costs 20 bytes
// more, never below 1280), and the IPv6 rule last; NPTv6 with --binat, its prefix blackholed; a
// port-restricted policy is left alone as for IPv4. Nothing of IPv6 without an IPv6 policy.
// A reply to a LAN flow that netfilter's masquerade rewrote to the uplink's IPv6 address (taken by
// NAT66 in LWT xmit) is translated back to that address; the kernel's fwd check judges it as it
// arrived (nf_nat_decode_session), so the uplink's IPv6 address gets a fwd companion as the IPv4
// one does: not a link-local address, not the NAT66 address itself, and no `in` companion.
TEST(AttachPlan, TheUplinksIpv6AddressesGetAFwdCompanionForMasqueradedReplies) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.addresses.push_back(host_address("2001:db8:200::2", 64, 3, "eth0"));
  f.addresses.push_back(host_address("fe80::2", 64, 3, "eth0"));
  f.addresses.push_back(host_address("2001:db8:b:7::2", 128, 3, "eth0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 0));
  auto text = plan_to_text(make_plan(f, Settings{}));
  EXPECT_NE(text.find("xfrm policy src 2001:db8:f00::/40 dst 2001:db8:200::2/128 dir fwd"), std::string::npos) << text;
  EXPECT_EQ(text.find("dst 2001:db8:200::2/128 dir in"), std::string::npos) << text;
  EXPECT_EQ(text.find("dst fe80::2/128"), std::string::npos) << text;
  EXPECT_EQ(text.find("dst 2001:db8:b:7::2/128 dir"), std::string::npos) << text;
}

TEST(AttachPlan, PolicyModeRoutesIpv6ThroughLwtLikeIpv4) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 0));
  f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:f00::/40"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find(": nat66 fd00:71::/64 -> 2001:db8:b:7::2 (ports)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:b:7::2/128 table 421\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route 2001:db8:f00::/40 table 421 via fe80::1 dev eth0 mtu lock 1392 encap bpf xmit "
                      "lwt_snat_xmit\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xfrm policy src 2001:db8:f00::/40 dst fd00:71::/64 dir fwd"), std::string::npos) << text;
  EXPECT_NE(text.find("xfrm policy src 2001:db8:f00::/40 dst fd00:71::/64 dir in"), std::string::npos) << text;
  auto rules = steps_of<RuleStep>(plan);
  ASSERT_EQ(rules.size(), 2u) << text;
  EXPECT_EQ(rules[0].family, AF_INET);
  EXPECT_EQ(rules[1].family, AF_INET6);
  EXPECT_TRUE(std::holds_alternative<RuleStep>(plan.steps.back())) << "the IPv6 rule comes last";
  EXPECT_NE(step_key(plan.steps[plan.steps.size() - 2]), step_key(plan.steps.back()));
  // The state keeps the family: detach from a fresh process removes the IPv6 rule.
  EXPECT_EQ(std::get<RuleStep>(step_from_json(step_to_json(plan.steps.back()))).family, AF_INET6);

  Settings small;
  small.route_mtu = 0;
  f.dev.mtu = 1300;
  f.addresses.push_back(host_address("2001:db8:b:7::2", 128, 1, "lo"));
  plan = make_plan(f, small);
  text = plan_to_text(plan);
  EXPECT_NE(text.find("lwt_snat_xmit"), std::string::npos);
  EXPECT_EQ(text.find("blackhole 2001:db8:b:7::2"), std::string::npos) << "a local address is no blackhole\n" << text;
  EXPECT_NE(text.find("  route 2001:db8:f00::/40 table 421 via fe80::1 dev eth0 src 2001:db8:b:7::2 mtu lock 1280 "),
            std::string::npos)
      << text;

  f = gateway(false);
  f.addresses.push_back(host_address("fd00:71::1", 64, 4, "lan0"));
  f.policies.push_back(ipsec6("2001:db8:b:7::/64", "2001:db8:f00::/40", 0));
  Settings binat;
  binat.binat = true;
  text = plan_to_text(make_plan(f, binat));
  EXPECT_NE(text.find(": nptv6 fd00:71::/64 -> 2001:db8:b:7::/64\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:b:7::/64 table 421\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  rule -6 priority 210 lookup 421\n"), std::string::npos) << text;

  auto port = ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 0);
  port.sel.proto = 6;
  port.sel.dport = 443;
  port.sel.dport_mask = 0xffff;
  f.policies.back() = port;
  auto port_plan = make_plan(f, Settings{});
  text = plan_to_text(port_plan);
  EXPECT_NE(text.find("2001:db8:f00::/40: none (not translated in policy mode: restricts ports"), std::string::npos)
      << text;
  // One line names it, as an IPv4 one.
  ASSERT_EQ(port_plan.warnings.size(), 1u) << text;
  EXPECT_NE(port_plan.warnings[0].find("(2001:db8:b:7::2/128 -> 2001:db8:f00::/40 tcp dport 443) is not translated in "
                                       "policy mode: it restricts ports (tcp dport 443)"),
            std::string::npos)
      << port_plan.warnings[0];
  EXPECT_EQ(text.find("rule -6"), std::string::npos) << text;
  EXPECT_EQ(text.find("2001:db8:f00::/40 table"), std::string::npos) << text;
}

// NPTv6 takes prefixes up to /112 (RFC 6296 section 3.7: the adjustment goes into a 16-bit word of
// the interface identifier that the prefix does not touch); a longer one leaves no such word and
// is refused with that reason.
TEST(AttachPlan, Nptv6UpToSlash112AndWhyNotLonger) {
  auto plan_text = [](const HostFacts& f) {
    Settings binat;
    binat.binat = true;
    try {
      return plan_to_text(make_plan(f, binat));
    } catch (const UserError& e) {
      return std::string(e.what());
    }
  };
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:5:5:5:7::1", 80, 5, "br0"));
  f.policies.push_back(ipsec6("2001:db8:c:8:9::/80", "2001:db8:d00::/40", 42));
  EXPECT_NE(plan_text(f).find(": nptv6 fd00:5:5:5:7::/80 -> 2001:db8:c:8:9::/80\n"), std::string::npos)
      << plan_text(f);
  auto g = xfrm_gateway();
  g.addresses.push_back(host_address("fd00:5:5:5:7:8:9:100", 120, 5, "br0"));
  g.policies.push_back(ipsec6("2001:db8:c:8:9:a:b:c00/120", "2001:db8:d00::/40", 42));
  EXPECT_NE(plan_text(g).find("none (source selector 2001:db8:c:8:9:a:b:c00/120 is longer than /112: no 16-bit word "
                              "of its interface identifier is left for RFC 6296's checksum-neutral adjustment)"),
            std::string::npos)
      << plan_text(g);
}

// A LAN smaller than the policy's source prefix maps 1:1 onto the selector's first block of the LAN's
// size, as IPv4's smaller LANs do (the far side reaches that block only).
TEST(AttachPlan, Nptv6MapsASmallerLanOntoTheSelectorsFirstBlock) {
  Settings binat;
  binat.binat = true;
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:5:5:5::1", 64, 5, "br0"));
  f.policies.push_back(ipsec6("2001:db8:c:800::/56", "2001:db8:d00::/40", 42));
  auto text = plan_to_text(make_plan(f, binat));
  EXPECT_NE(text.find(": nptv6 fd00:5:5:5::/64 -> 2001:db8:c:800::/64\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n  binat 2001:db8:c:800::/64 = fd00:5:5:5::/64 from 2001:db8:d00::/40"), std::string::npos)
      << text;
  f.addresses.push_back(host_address("fd00:6:6::1", 56, 5, "br0"));
  text = plan_to_text(make_plan(f, binat));
  EXPECT_NE(text.find(": nptv6 fd00:6:6::/56 -> 2001:db8:c:800::/56; fd00:5:5:5::/64 not translated: the 1:1 map of "
                      "fd00:6:6::/56 takes the whole selector 2001:db8:c:800::/56, no address of it is left for NAT66\n"),
            std::string::npos)
      << "a LAN of the selector's own length is the mapping beside a smaller one, which is named as left out\n"
      << text;
}

// LANs no 1:1 map holds (one larger than the policy's source prefix, or several that do not fit one
// by one) take a pool of the selector's addresses from the first after the Subnet-Router anycast
// one (RFC 4291 2.6.1) with ports, as IPv4 NAPT takes an inside set larger than a block: NAT66,
// stateful, so without --binat and with no binat line; in policy mode with the companions of each
// LAN and the pool blackholed per aligned block, as IPv4's pools.
TEST(AttachPlan, ALanLargerThanTheIpv6SelectorIsNat66OverItsPool) {
  struct Case {
    std::vector<std::string> lans;  // each ends in "::", its host the gateway's "::1"
    uint8_t lan_len;
    const char* selector;
    std::string pool;
    std::vector<std::string> blackholes;  // some of the pool's blocks
  };
  const std::vector<Case> cases{
      {{"fd00:5:5::"}, 48, "2001:db8:c:800::/56", "2001:db8:c:800::1-2001:db8:c:800::1:0",
       {"2001:db8:c:800::1/128", "2001:db8:c:800::8000/113", "2001:db8:c:800::1:0/128"}},
      {{"fd00:5:5::"}, 48, "2001:db8:c:8::/64", "2001:db8:c:8::1-2001:db8:c:8::1:0", {"2001:db8:c:8::1/128"}},
      {{"fd00:5:5:5::"}, 64, "2001:db8:c:8::1:0/112", "2001:db8:c:8::1:1-2001:db8:c:8::1:ffff",
       {"2001:db8:c:8::1:1/128", "2001:db8:c:8::1:8000/113"}},
      {{"fd00:5:5:5::"}, 64, "2001:db8:c:8::100/120", "2001:db8:c:8::101-2001:db8:c:8::1ff",
       {"2001:db8:c:8::101/128", "2001:db8:c:8::102/127", "2001:db8:c:8::180/121"}},
      {{"fd00:5:5:5::", "fd00:5:5:6::"}, 64, "2001:db8:c:8::/64", "2001:db8:c:8::1-2001:db8:c:8::1:0",
       {"2001:db8:c:8::1/128"}},
  };
  for (const auto& c : cases) {
    auto f = gateway(false);
    std::string lans;
    for (const auto& lan : c.lans) {
      f.addresses.push_back(host_address(lan + "1", c.lan_len, 4, "lan0"));
      lans += (lans.empty() ? "" : ", ") + lan + "/" + std::to_string(c.lan_len);
    }
    f.policies.push_back(ipsec6(c.selector, "2001:db8:f00::/40", 0));
    f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:f00::/40"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
    auto plan = make_plan(f, Settings{});
    auto text = plan_to_text(plan);
    EXPECT_NE(text.find(std::string(" -> 2001:db8:f00::/40: nat66 ") + lans + " -> " + c.pool + " (ports)\n"),
              std::string::npos)
        << c.selector << "\n"
        << text;
    EXPECT_EQ(text.find("binat "), std::string::npos) << text;
    for (const auto& b : c.blackholes)
      EXPECT_NE(text.find("  route blackhole " + b + " table 421\n"), std::string::npos) << b << "\n" << text;
    EXPECT_EQ(text.find("  route blackhole " + ipsnat::parse_prefix(c.selector).str() + " table 421\n"), std::string::npos)
        << "not the selector's anycast address:\n"
        << text;
    for (const auto& lan : c.lans)
      for (const char* dir : {"fwd", "in"})
        EXPECT_NE(text.find("xfrm policy src 2001:db8:f00::/40 dst " + lan + "/" + std::to_string(c.lan_len) +
                            " dir " + dir),
                  std::string::npos)
            << text;
  }
}

// A gateway address inside the pool (a virtual IP in the policy's /120) is left out of it: its
// sockets would collide with NAT ports. The pool is the longest run of addresses no local one
// interrupts; the gateway's own connections take that address as their source (prefsrc), and no
// blackhole covers it.
TEST(AttachPlan, AGatewayAddressInsideTheIpv6PoolIsLeftOutOfIt) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("fd00:5:5:5::1", 64, 4, "lan0"));
  f.addresses.push_back(host_address("2001:db8:c:8::101", 128, 3, "eth0"));
  f.policies.push_back(ipsec6("2001:db8:c:8::100/120", "2001:db8:f00::/40", 0));
  f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:f00::/40"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find(" -> 2001:db8:f00::/40: nat66 fd00:5:5:5::/64 -> 2001:db8:c:8::102-2001:db8:c:8::1ff (ports)\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("route blackhole 2001:db8:c:8::101/128"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:c:8::102/127 table 421\n"), std::string::npos) << text;
  EXPECT_NE(text.find("2001:db8:f00::/40 table 421 via fe80::1 dev eth0"), std::string::npos) << text;
  EXPECT_NE(text.find(" src 2001:db8:c:8::101"), std::string::npos) << text;

  // In the middle: the longer side is the pool.
  f.addresses.back() = host_address("2001:db8:c:8::140", 128, 3, "eth0");
  text = plan_to_text(make_plan(f, Settings{}));
  EXPECT_NE(text.find("nat66 fd00:5:5:5::/64 -> 2001:db8:c:8::141-2001:db8:c:8::1ff (ports)\n"), std::string::npos) << text;
}

// Beside a LAN that fits 1:1 under a selector with room for more (a /64 under a /56), NPTv6 maps
// that one onto the selector's first /64 and the larger LAN is NAT66 with ports over the next
// /64's pool after its Subnet-Router anycast one, with its own companions and blackholes; without
// --binat only that NAT66 is applied and the plan names the /64 left out. Where the fitting LAN
// takes the whole selector (a /64 under a /64) no address is left: the line and a warning name the
// larger LAN and why.
TEST(AttachPlan, BesideAOneToOneMapTheLargerIpv6LanIsNat66OverTheNextBlocksPool) {
  auto mixed = [](const char* selector) {
    auto f = gateway(false);
    f.addresses.push_back(host_address("fd00:5:5::1", 48, 4, "lan0"));
    f.addresses.push_back(host_address("fd00:6:6:6::1", 64, 4, "lan0"));
    f.policies.push_back(ipsec6(selector, "2001:db8:f00::/40", 0));
    f.nexthops.push_back({ipsnat::parse_prefix("2001:db8:f00::/40"), 3, ipsnat::parse_address("fe80::1"), "eth0"});
    return f;
  };
  Settings binat;
  binat.binat = true;
  auto plan = make_plan(mixed("2001:db8:c:800::/56"), binat);
  auto text = plan_to_text(plan);
  EXPECT_NE(text.find(": nptv6 fd00:6:6:6::/64 -> 2001:db8:c:800::/64; nat66 fd00:5:5::/48 -> "
                      "2001:db8:c:801::1-2001:db8:c:801::1:0 (ports)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  binat 2001:db8:c:800::/64 = fd00:6:6:6::/64 from 2001:db8:f00::/40"), std::string::npos) << text;
  EXPECT_EQ(text.find("binat 2001:db8:c:801"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:c:800::/64 table 421\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:c:801::1/128 table 421\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  route blackhole 2001:db8:c:801::8000/113 table 421\n"), std::string::npos) << text;
  for (const char* lan : {"fd00:5:5::/48", "fd00:6:6:6::/64"})
    for (const char* dir : {"fwd", "in"})
      EXPECT_NE(text.find(std::string("xfrm policy src 2001:db8:f00::/40 dst ") + lan + " dir " + dir), std::string::npos)
          << text;
  EXPECT_EQ(text.find("not translated"), std::string::npos) << text;

  text = plan_to_text(make_plan(mixed("2001:db8:c:800::/56"), Settings{}));
  EXPECT_NE(text.find(": nat66 fd00:5:5::/48 -> 2001:db8:c:801::1-2001:db8:c:801::1:0 (ports); fd00:6:6:6::/64 not "
                      "translated: nptv6 is "
                      "stateless both ways: --binat allows it\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("binat 2001:db8:c:800"), std::string::npos) << text;
  EXPECT_NE(text.find("warning: policy 17 (2001:db8:c:800::/56 -> 2001:db8:f00::/40): fd00:6:6:6::/64 not translated"),
            std::string::npos)
      << text;

  const std::string left = "fd00:5:5::/48 not translated: the 1:1 map of fd00:6:6:6::/64 takes the whole selector "
                           "2001:db8:c:8::/64, no address of it is left for NAT66";
  plan = make_plan(mixed("2001:db8:c:8::/64"), binat);
  text = plan_to_text(plan);
  EXPECT_NE(text.find(": nptv6 fd00:6:6:6::/64 -> 2001:db8:c:8::/64; " + left + "\n"), std::string::npos) << text;
  ASSERT_EQ(plan.warnings.size(), 1u) << text;
  EXPECT_EQ(plan.warnings.front(), "policy 17 (2001:db8:c:8::/64 -> 2001:db8:f00::/40): " + left);
  EXPECT_EQ(text.find("2001:db8:c:8::1/128"), std::string::npos) << text;
}

// A policy whose source is one address (strongSwan's virtual IPv6) implies NAT66 with ports in
// route mode without --binat (stateful: only replies come back, so nothing is opened), with the
// fwd/in companions of the inside prefix on an xfrm interface; it is no 1:1 map even with --binat.
TEST(AttachPlan, AnIpv6OneAddressPolicyImpliesNat66WithoutBinat) {
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:71::1", 64, 5, "br0"));
  f.policies = {ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 42)};
  for (bool binat : {false, true}) {
    Settings s;
    s.binat = binat;
    auto plan = make_plan(f, s);
    auto text = plan_to_text(plan);
    EXPECT_NE(text.find("  translate policy 17 2001:db8:b:7::2/128 -> 2001:db8:f00::/40: nat66 fd00:71::/64 -> "
                        "2001:db8:b:7::2 (ports)\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("\n  binat 2001:db8:b:7::2"), std::string::npos) << text;
    std::vector<std::string> comps;
    for (const auto& c : steps_of<XfrmPolicyStep>(plan))
      comps.push_back(std::string(spd::to_string(c.policy.dir)) + " " + c.policy.sel.src.str() + " -> " +
                      c.policy.sel.dst.str());
    EXPECT_EQ(comps, (std::vector<std::string>{"fwd 2001:db8:f00::/40 -> fd00:71::/64",
                                               "in 2001:db8:f00::/40 -> fd00:71::/64"}));
  }
}

// ipsec6 as policy `index`, restricted to `proto` and (unless 0) that destination port.
spd::Policy restricted6(const std::string& src, const std::string& dst, uint32_t index, uint8_t proto,
                        uint16_t dport = 0) {
  auto p = ipsec6(src, dst, 42);
  p.index = index;
  p.sel.proto = proto;
  p.sel.dport = dport;
  p.sel.dport_mask = dport ? 0xffff : 0;
  return p;
}

// Through the xfrm interface (if_id 42) a port-restricted IPv6 policy whose destination a
// port-less one of the interface also covers takes no rule (spd/npt6.h npt6_mapped): attach says
// so in one line naming both; alone on its destination it is translated, as IPv4's route mode does.
TEST(AttachPlan, RouteModeRefusesAPortRestrictedIpv6PolicyOnAPortlessOnesDestination) {
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:71::1", 64, 5, "br0"));
  auto https = restricted6("2001:db8:b:7::3/128", "2001:db8:f00:1::/64", 18, IPPROTO_TCP, 443);
  f.policies = {ipsec6("2001:db8:b:7::2/128", "2001:db8:f00::/40", 42), https};
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  ASSERT_EQ(plan.warnings.size(), 1u) << text;
  EXPECT_EQ(plan.warnings[0],
            "policy 18 (2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64) is not translated through \"ipsec0\" (if_id 42): it "
            "restricts ports (tcp dport 443) on a destination the port-less policy 17 (2001:db8:b:7::2/128 -> "
            "2001:db8:f00::/40) also covers: rules are chosen by destination alone, and its rule would take that "
            "policy's flows on other ports to an address no policy covers");
  EXPECT_NE(text.find("  translate policy 18 2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64: none (restricts ports"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  translate policy 17 2001:db8:b:7::2/128 -> 2001:db8:f00::/40: nat66 fd00:71::/64"),
            std::string::npos)
      << text;

  f.policies = {https};
  plan = make_plan(f, Settings{});
  text = plan_to_text(plan);
  EXPECT_TRUE(plan.warnings.empty()) << text;
  EXPECT_NE(text.find("  translate policy 18 2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64: nat66 fd00:71::/64 -> "
                      "2001:db8:b:7::3 (ports)"),
            std::string::npos)
      << text;
}

// Two restricted IPv6 policies of the interface's if_id on one destination that need different
// translations (tcp/443 leaves as 2001:db8:b:7::3, udp/53 as 2001:db8:b:7::4): neither takes a rule,
// and attach says so for each in one line naming the other; a policy restricted to a protocol
// alone (tcp to 2001:db8:f00:2::/64) is refused on a destination an unrestricted policy covers.
TEST(AttachPlan, RouteModeRefusesRestrictedIpv6PoliciesThatNeedDifferentTranslations) {
  auto f = xfrm_gateway();
  f.addresses.push_back(host_address("fd00:71::1", 64, 5, "br0"));
  auto https = restricted6("2001:db8:b:7::3/128", "2001:db8:f00:1::/64", 18, IPPROTO_TCP, 443);
  auto dns = restricted6("2001:db8:b:7::4/128", "2001:db8:f00:1::/64", 19, IPPROTO_UDP, 53);
  auto tcp = restricted6("2001:db8:b:7::5/128", "2001:db8:f00:2::/64", 20, IPPROTO_TCP);
  auto any = ipsec6("2001:db8:b:7::2/128", "2001:db8:f00:2::/64", 42);
  any.priority = 200;
  f.policies = {https, dns, tcp, any};
  auto plan = make_plan(f, Settings{});
  auto text = plan_to_text(plan);
  ASSERT_EQ(plan.warnings.size(), 3u) << text;
  EXPECT_EQ(plan.warnings[0],
            "policy 18 (2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64) is not translated through \"ipsec0\" (if_id 42): it "
            "restricts ports (tcp dport 443) on a destination the restricted policy 19 (2001:db8:b:7::4/128 -> "
            "2001:db8:f00:1::/64 udp dport 53) also covers with another translation: rules are chosen by destination "
            "alone, and either one's rule would take the other's flows to an address no policy covers");
  EXPECT_NE(plan.warnings[1].find("policy 19 (2001:db8:b:7::4/128 -> 2001:db8:f00:1::/64) is not translated through "
                                  "\"ipsec0\" (if_id 42): it restricts ports (udp dport 53) on a destination the "
                                  "restricted policy 18 "),
            std::string::npos)
      << plan.warnings[1];
  EXPECT_EQ(plan.warnings[2],
            "policy 20 (2001:db8:b:7::5/128 -> 2001:db8:f00:2::/64) is not translated through \"ipsec0\" (if_id 42): it "
            "restricts the protocol (tcp) on a destination the unrestricted policy 17 (2001:db8:b:7::2/128 -> "
            "2001:db8:f00:2::/64) also covers: rules are chosen by destination alone, and its rule would take that "
            "policy's flows of other protocols to an address no policy covers");
  EXPECT_NE(text.find("  translate policy 19 2001:db8:b:7::4/128 -> 2001:db8:f00:1::/64: none (restricts ports"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  translate policy 17 2001:db8:b:7::2/128 -> 2001:db8:f00:2::/64: nat66 fd00:71::/64"),
            std::string::npos)
      << text;

  dns.sel.src = https.sel.src;  // the same translation: they share the rule
  dns.tmpls = https.tmpls;
  f.policies = {https, dns};
  plan = make_plan(f, Settings{});
  text = plan_to_text(plan);
  EXPECT_TRUE(plan.warnings.empty()) << text;
  EXPECT_NE(text.find("  translate policy 19 2001:db8:b:7::3/128 -> 2001:db8:f00:1::/64: nat66 fd00:71::/64 -> "
                      "2001:db8:b:7::3 (ports)"),
            std::string::npos)
      << text;
}

TEST(InsidePrefixes, UplinkFoundByTheSasOuterAddressWithoutALink) {
  auto f = xfrm_gateway();
  f.dev.link = 0;     // an xfrm interface created without `dev`
  f.default_oifs = {};  // and no default route
  EXPECT_EQ(why_not(f, "200.2.2.0/24"), "the uplink: carries the SAs' outer address 200.2.2.2");
  EXPECT_EQ(inside_of(f), (std::vector<std::string>{"192.168.1.0/24", "172.16.0.0/20"}));
}

TEST(InsidePrefixes, DefaultRouteDeviceIsNeverALan) {
  auto f = xfrm_gateway();
  f.dev.link = 0;
  f.policies.clear();          // no SA names an address of ours yet
  f.default_oifs = {3, 6};     // multipath default over eth0 and lan2
  EXPECT_EQ(why_not(f, "200.2.2.0/24"), "carries the default route");
  EXPECT_EQ(why_not(f, "172.16.0.0/20"), "carries the default route");
  EXPECT_EQ(inside_of(f), (std::vector<std::string>{"192.168.1.0/24"}));
}

TEST(InsidePrefixes, PolicyModeAttachedDeviceAndAPrefixSharedWithTheUplink) {
  auto f = gateway(false);
  f.addresses.push_back(host_address("192.168.7.1", 24, 4, "lan0"));
  f.addresses.push_back(host_address("192.168.7.2", 24, 3, "eth0"));  // also on the uplink
  EXPECT_EQ(why_not(f, "200.2.2.0/24"), "the attached device (the uplink)");
  EXPECT_EQ(why_not(f, "192.168.7.0/24"), "the attached device (the uplink)");
  EXPECT_EQ(inside_of(f), (std::vector<std::string>{"192.168.1.0/24"}));
}

TEST(InsidePrefixes, ConfiguredPrefixesReplaceTheChoice) {
  Settings s;
  s.inside = {ipsnat::parse_prefix("10.99.0.0/16")};
  EXPECT_EQ(inside_of(xfrm_gateway(), s), (std::vector<std::string>{"10.99.0.0/16"}));
  auto text = plan_to_text(make_plan(xfrm_gateway(), s));
  EXPECT_NE(text.find("  inside 10.99.0.0/16: configured\n"), std::string::npos) << text;
}

TEST(InsidePrefixes, OnlyTheUplinkMeansNoLanInPolicyMode) {
  auto f = gateway(false);
  f.addresses.pop_back();  // no LAN device
  EXPECT_TRUE(inside_of(f).empty());
  EXPECT_THROW(make_plan(f, Settings{}), UserError);
}

TEST(AttachState, StepsSurviveAJsonRoundTrip) {
  auto plan = make_plan(gateway(false), Settings{});
  AttachState st;
  st.dev = "eth0";
  st.ifindex = 3;
  st.netns = 4026531840;
  st.mode = "policy";
  st.pin_root = "/sys/fs/bpf/ipsnat";
  st.clsact_created = true;
  st.steps = plan.steps;
  auto back = AttachState::from_json(nlohmann::json::parse(st.to_json().dump()));
  ASSERT_EQ(back.steps.size(), plan.steps.size());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    EXPECT_EQ(step_key(back.steps[i]), step_key(plan.steps[i]));
    EXPECT_EQ(describe(back.steps[i]), describe(plan.steps[i]));
  }
  EXPECT_TRUE(back.clsact_created);
  // Route mode: the hook on lo keeps its device, and who created lo's qdisc is remembered.
  auto f = gateway(false);
  f.dev = {"ipsec0", 7, "xfrm", 42, 0, 1500, true};
  f.policies[0].if_id = 42;
  st.steps = make_plan(f, Settings{}).steps;
  st.lo_clsact_created = true;
  back = AttachState::from_json(nlohmann::json::parse(st.to_json().dump()));
  ASSERT_EQ(back.steps.size(), st.steps.size());
  EXPECT_EQ(describe(back.steps.back()), "tc egress program tc_lo_egress dev lo");
  EXPECT_TRUE(back.lo_clsact_created);
  auto bad = st.to_json();
  bad["format"] = 99;
  EXPECT_THROW(AttachState::from_json(bad), UserError);
}

}  // namespace
}  // namespace ipsnat::attach
