#pragma once
// rtnetlink requests ipsnat needs: link facts, addresses, route lookup, its own routes and rule,
// and a census of a device's TC filters. Errors are returned as -errno where the caller decides.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sys/rtnl_values.h"
#include "util/address.h"

namespace ipsnat::sys {

// Protocol number on ipsnat's routes and rule ("proto 165" in ip route/rule): identifies them
// so deletes never match another tool's entries.
inline constexpr uint8_t kRouteProtocol = 165;

LinkFacts link_facts(const std::string& name);  // UserError when the device is unknown
struct AddrEntry {
  int ifindex;
  Prefix prefix;  // the address with its prefix length
};
std::vector<AddrEntry> ipv4_addresses();
// Global-scope IPv6 addresses (link-local and host-scope ones name no LAN).
std::vector<AddrEntry> ipv6_addresses();
std::vector<Address> local_ipv4_addresses();  // the addresses of ipv4_addresses()
std::vector<Address> local_addresses();       // those of ipv4_addresses() and ipv6_addresses()
// The main table's route for dst (longest prefix, then lowest metric; never one of ipsnat's own
// routes, in its table or in main), empty when it has none.
std::optional<Nexthop> route_get(const Prefix& dst);

// Whether the namespace holds a routing rule of family (AF_INET, AF_INET6) other than the
// kernel's own (0 lookup local, 32766 lookup main, 32767 lookup default) and ipsnat's: while it
// holds none, the kernel looks a route up without walking rules (docs/attach.md, "Where the
// routes go").
bool has_foreign_rules(uint16_t family);
// The destinations of the main and the local table's routes (any type) that are not ipsnat's,
// from one dump of family's routes.
struct MainAndLocal {
  std::vector<Prefix> main;
  std::vector<Prefix> local;
};
MainAndLocal main_and_local_prefixes(uint16_t family);

// The devices of the main table's IPv4 default route(s), multipath nexthops included.
std::vector<int> default_route_oifs();

// replace: the route is ipsnat's already (recorded): swap it in place (a new program).
int add_route(const Route& r, int lwt_prog_fd, bool replace = false);
int delete_route(const Route& r);
int add_rule(const Rule& r);
int delete_rule(const Rule& r);

// TC filters on the clsact hook of a device whose priority is not `prio` (other tools').
int foreign_tc_filters(int ifindex, uint32_t prio);
bool has_clsact(int ifindex);
// The filters on one clsact direction of a device, in the kernel's dump order.
struct TcFilter {
  uint32_t prio = 0;
  std::string kind;     // "bpf", "matchall", "u32", ...
  std::string bpf_name; // for "bpf": the program's section/file name as tc shows it
};
std::vector<TcFilter> tc_filters(int ifindex, bool ingress);

}  // namespace ipsnat::sys
