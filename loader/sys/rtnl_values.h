#pragma once
// What rtnetlink tells about a device and a route, and the rule and routes ipsnat adds, as plain
// values: sys/rtnl.h reads and writes them, the attach planner (attach/plan.h) plans with them.
#include <cstdint>
#include <optional>
#include <string>

#include "util/address.h"

namespace ipsnat::sys {

// The device given to attach, as rtnetlink describes it.
struct LinkFacts {
  std::string name;
  int ifindex = 0;
  std::string kind;    // IFLA_INFO_KIND: "xfrm", "vti", "vti6", "veth", "" for a plain NIC...
  uint32_t if_id = 0;  // xfrm interface: IFLA_XFRM_IF_ID
  uint32_t okey = 0;   // VTI (vti, vti6): the mark its policies carry (IFLA_VTI_OKEY)
  uint32_t mtu = 1500;
  bool up = false;
  int link = 0;  // the underlay (IFLA_LINK): an xfrm interface's `dev`; 0 when none or in another netns
};

// The route the main routing decision gives for a destination (RTM_GETROUTE), used as the
// nexthop of ipsnat's LWT route so a packet the program passes untouched goes where it would have.
struct Nexthop {
  Prefix dst;
  int oif = 0;
  std::optional<Address> gateway;
  std::string oif_name;  // for the printed plan; "" when unknown
  uint32_t mtu = 0;      // the route's mtu metric, else its device's MTU (0: not known)
};

// ipsnat's routing rule (policy mode): its priority and the table it looks up.
struct Rule {
  uint32_t priority;
  uint32_t table;
  uint16_t family = 2;  // AF_INET, or AF_INET6 (10): a rule holds one family's lookups
};
// One of ipsnat's routes (protocol kRouteProtocol).
struct Route {
  Prefix dst;
  uint32_t table;
  bool blackhole = false;
  int oif = 0;
  std::string oif_name;  // for the printed plan only (not part of the step's identity)
  std::optional<Address> gateway;
  std::optional<Address> prefsrc;
  uint32_t mtu = 0;
  std::string lwt_prog;  // empty: no encap
  uint32_t metric = 0;   // RTA_PRIORITY; 0: the kernel's default (IPv4 0, IPv6 1024)
};

}  // namespace ipsnat::sys
