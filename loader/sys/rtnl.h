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
// A route of some table, not one of ipsnat's own: every nexthop's device, the first nexthop's
// gateway.
struct TableRoute {
  uint32_t table = 0;
  uint8_t type = 0;  // RTN_UNICAST, RTN_BLACKHOLE, RTN_LOCAL, ...
  Prefix dst;
  uint32_t metric = 0;
  uint32_t mtu = 0;  // the route's mtu metric (0: none: the device's)
  std::vector<int> oifs;
  std::optional<Address> gateway;
};

// One dump of a family's routes, every table, ipsnat's own left out (they may be in the main
// table too: docs/attach.md "Where the routes go"; never their own nexthop, nor another tool's
// route). Every question attach asks of the routing tables is answered from it, so gathering the
// host's facts reads each family's routes once.
class RouteTables {
 public:
  explicit RouteTables(uint16_t family);  // SysError; a kernel without the family: no routes
  // The main table's route for dst (longest prefix, then lowest metric), empty when it has none.
  std::optional<Nexthop> route_get(const Prefix& dst) const;
  // The devices of the main table's default route(s), multipath nexthops included.
  std::vector<int> default_oifs() const;
  // The destinations of table's routes, of any type.
  std::vector<Prefix> prefixes(uint32_t table) const;

 private:
  std::vector<TableRoute> routes_;
};

// Whether the namespace holds a routing rule of family (AF_INET, AF_INET6) other than the
// kernel's own (0 lookup local, 32766 lookup main, 32767 lookup default) and ipsnat's: while it
// holds none, the kernel looks a route up without walking rules (docs/attach.md, "Where the
// routes go").
bool has_foreign_rules(uint16_t family);

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
