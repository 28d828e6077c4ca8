#pragma once
// What `ipsnat attach DEV` will do, decided from facts about the host without changing anything:
// the tunnel style, the hooks and programs, and for policy-based IPsec the routes, rule,
// blackhole routes and companion XFRM policies the LWT path needs (docs/attach.md).
// Pure: the facts come from attach/facts.*, the changes are made by attach/applier.*.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "attach/forward.h"
#include "maps/config.h"
#include "spd/nat.h"
#include "spd/policy.h"
#include "sys/rtnl_values.h"

namespace ipsnat::attach {

enum class Mode { Route, Policy };
enum class ModeRequest { Auto, Route, Policy };
const char* to_string(Mode m);
ModeRequest parse_mode_request(const std::string& text);

// The planner reads and plans in rtnetlink's own values (sys/rtnl_values.h).
using sys::LinkFacts;
using sys::Nexthop;

// An IPv4 address of the host, with its prefix length and device.
struct HostAddress {
  Prefix prefix;  // 192.168.1.1/24
  int ifindex = 0;
  std::string dev;
  bool loopback = false;  // on a loopback device
};

struct HostFacts {
  LinkFacts dev;
  std::vector<Address> local_addrs;          // every local IPv4 address of the namespace
  std::vector<HostAddress> addresses;             // the same, with their devices
  std::vector<int> default_oifs;                  // devices of the main table's default route(s)
  std::vector<spd::Policy> policies;              // the SPD (not per-socket policies)
  std::vector<Nexthop> nexthops;                  // for the destinations of covered out-policies
  std::vector<Nexthop> sa_peers;                  // for the tunnel endpoints of their templates (/32)
  uint32_t local_port_min = 32768;                // net.ipv4.ip_local_port_range: the host's own
  uint32_t local_port_max = 60999;                // ephemeral ports, which masquerade never uses
  // Where policy mode's routes may go (docs/attach.md, "Where the routes go"): whether the
  // namespace holds another tool's routing rule, per family, and the destinations of the main
  // and local tables' routes (not ipsnat's), both families.
  bool foreign_rules4 = true;
  bool foreign_rules6 = true;
  std::vector<Prefix> main_routes;
  std::vector<Prefix> local_routes;
};

struct Settings {
  ModeRequest mode = ModeRequest::Auto;
  std::vector<Prefix> inside;  // empty: the LAN prefixes (choose_inside)
  uint32_t table = 421;             // ipsnat's routing table (policy mode)
  uint32_t rule_priority = 210;     // ahead of strongSwan's 220
  // --table or --rule-priority given: the routes always go to `table`, behind the rule.
  bool own_table = false;
  // A host process re-plans the device on the host's changes (attach without --no-daemon,
  // `ipsnat run`). Only then may the routes go to the main table: a rule another tool adds later
  // (strongSwan's 220) must move them behind ipsnat's rule again.
  bool replanned = false;
  uint32_t route_mtu = 0;           // 0: device MTU minus kEspOverhead
  bool allow_empty = false;         // attach although no IPsec out-policy concerns the device
  std::vector<ForwardRule> forwards;  // port-forwards into the LAN (attach/forward.h)
  // --masquerade [ADDRESS]: inside sources of what leaves the uplink uncovered by any IPsec
  // out-policy are translated to ADDRESS, else to the uplink's primary IPv4 address.
  bool masquerade = false;
  std::optional<Address> masquerade_addr;
  bool xdp_prefilter = false;       // the XDP pre-filter on the uplink (policy mode)
  // --binat: the far side may open connections, through a policy's SA, to the addresses of the
  // policy's 1:1 map, which reach the LAN hosts mapped to them (IPSNAT_DEV_BINAT).
  bool binat = false;
  // The configuration's [[nat]] rules (`ipsnat run`): its IPv6 ones decide the IPv6 policies' plan
  // lines and policy mode's routes as the mirror's rules (spd/npt6.h npt6_of).
  std::vector<spd::NatOverride> nat_rules;
};

// A 1:1 map the far side reaches with --binat (an IPv4 block's, or an NPTv6 prefix's): policy
// policy_index's block nat stands for the LAN inside, for senders in remote.
struct BinatMap {
  uint32_t policy_index = 0;
  Prefix nat;
  Prefix inside;
  Prefix remote;
  std::string str() const;  // "binat 10.20.40.0/24 = 172.31.7.0/24 from 10.99.0.0/16 (policy 9)"
};

// The masquerade the datapath applies on the uplink (ipsnat_dev_cfg.masq_*, maps/config.h).
struct Masquerade {
  Address addr;     // unset (family 0) while the uplink has no IPv4 address: off
  std::string source;    // "configured" or "the address of eth0"
  uint16_t port_min = 0;  // NAPT ports, outside the host's ip_local_port_range
  uint16_t port_max = 0;
};

// NAPT ports for masquerade: above the host's ephemeral range (ip_local_port_range) when at
// least kMasqueradeMinPorts fit there, else below it down to 1024; none when neither fits.
inline constexpr uint32_t kMasqueradeMinPorts = 1024;
std::optional<std::pair<uint16_t, uint16_t>> masquerade_ports(uint32_t local_min, uint32_t local_max);

// Worst-case ESP tunnel overhead over IPv4 (outer IP 20, ESP 8, IV 16, pad 15, trailer 2,
// ICV 16, NAT-T UDP 8, rounded): packets up to MTU-overhead are encrypted without fragmentation.
inline constexpr uint32_t kEspOverhead = 88;
// An IPv6 outer header is 20 bytes longer than IPv4's; no IPv6 link is below 1280 (RFC 8200).
inline constexpr uint32_t kEspOuterIpv6Extra = 20;
inline constexpr uint32_t kIpv6MinMtu = 1280;

// Xdp: native XDP of the device (the pre-filter); generic XDP is never used, it would see the
// packets the kernel decrypted and re-injected on the device (docs/datapath.md).
enum class Hook { TcIngress, TcEgress, Xdp };

struct TcStep {
  Hook hook;
  std::string prog;  // program name in the BPF object
  std::string dev;   // "": the attached device; else the device by name (kLoopback)
};
// The loopback device: route mode's hook for the kernel's errors to a local NAT address.
inline constexpr const char* kLoopback = "lo";
using RuleStep = sys::Rule;
using RouteStep = sys::Route;
struct XfrmPolicyStep {
  spd::Policy policy;
  std::string why;
};
using Step = std::variant<TcStep, RuleStep, RouteStep, XfrmPolicyStep>;

// A stable identity of a step: two plans share a step when the keys are equal (used to
// reconcile a new plan with what an earlier attach added).
std::string step_key(const Step& s);
std::string describe(const Step& s);  // one line, ip/tc-like
nlohmann::json step_to_json(const Step& s);
Step step_from_json(const nlohmann::json& j);

struct Translation {
  uint32_t policy_index;
  std::string policy;  // "10.20.30.2/32 -> 10.0.0.0/8"
  std::string nat;     // "NAPT to 10.20.30.2 from 192.168.1.0/24"
  uint32_t napt_addr_be = 0;  // the NAPT address (network order); 0: not a single-address NAPT
};

// One connected prefix and whether it is inside (translated), with the reason.
struct InsideChoice {
  Prefix prefix;
  std::string dev;  // "" for a configured prefix
  bool inside = false;
  std::string why;  // for an excluded prefix: "the uplink: carries the SAs' outer address 200.2.2.2"
};

struct AttachPlan {
  std::vector<InsideChoice> inside;  // what choose_inside decided, printed with the plan
  std::string dev;
  int ifindex = 0;
  std::string kind;
  Mode mode = Mode::Route;
  std::vector<Step> steps;  // in application order; detach reverses it
  std::vector<Translation> translations;
  std::vector<ForwardRule> forwards;  // resolved (NAT address filled in)
  std::optional<Masquerade> masquerade;
  bool binat = false;             // --binat (whether or not a 1:1 map exists now)
  std::vector<BinatMap> binat_maps;
  std::vector<std::string> warnings;
};

Mode choose_mode(const LinkFacts& dev, ModeRequest req);
// The NAT inside prefixes: the configured ones, else the connected prefixes of the LAN devices.
// Never inside: the attached device, its underlay, the device carrying the SAs' outer addresses
// (the uplink), the default route's devices and loopback (docs/attach.md "Inside prefixes").
std::vector<InsideChoice> choose_inside(const HostFacts& facts, const Settings& settings);
// The chosen inside prefixes. The SPD mirror must be given the same list as the plan.
std::vector<Prefix> inside_prefixes(const HostFacts& facts, const Settings& settings);
// Throws UserError when the plan would be empty or unsafe (no policy for the device, ...).
AttachPlan make_plan(const HostFacts& facts, const Settings& settings);
// The table a family's routes go to (policy mode): the main table when the settings allow it,
// the namespace has no other rule of the family and no route of the main or local table would
// decide a destination of routes differently there (docs/attach.md, "Where the routes go");
// else settings.table, behind ipsnat's rule.
uint32_t routes_table(const HostFacts& facts, const Settings& settings, const std::vector<sys::Route>& routes,
                      uint16_t family);
// The metric of ipsnat's routes in the main table: above every metric an operator or a network
// manager gives, so an operator's `ip route add` of the same prefix is another route, not EEXIST
// (the host process then moves ipsnat's behind its rule, as for any route of that prefix), and
// `ip route del PREFIX` takes the operator's route first.
inline constexpr uint32_t kMainTableMetric = 65535;
// The destinations whose main-table nexthop the plan needs (policy mode): call before make_plan.
std::vector<Prefix> covered_destinations(const HostFacts& facts, const Settings& settings);

// How the datapath treats the device (ipsnat_dev[ifindex], maps/config.h). Written on every
// attach, re-attach, adoption and re-plan, so a changed device (another VTI okey, if_id, mode)
// never keeps the values of an earlier attach.
ipsnat_dev_cfg device_config(const LinkFacts& dev, Mode mode, const std::optional<Masquerade>& masq = std::nullopt,
                             bool binat = false);

nlohmann::json plan_to_json(const AttachPlan& p);
// The plan in the ip/tc family's terse style, one line per hook, route, rule, policy,
// translation and forward (what --dry-run prints, and attach after doing it). Warnings are
// included only when asked (attach prints them on stderr instead).
std::string plan_to_text(const AttachPlan& p, bool with_warnings = true);

}  // namespace ipsnat::attach
