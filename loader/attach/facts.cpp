#include "attach/facts.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/rtnetlink.h>
#include <linux/xfrm.h>
#include <net/if.h>

#include <algorithm>
#include <fstream>

#include "sys/features.h"
#include "sys/rtnl.h"
#include "util/error.h"
#include "xfrm/policy_requests.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

namespace ipsnat::attach {
namespace {

const char* cap_name(int cap) {
  switch (cap) {
    case CAP_NET_ADMIN: return "CAP_NET_ADMIN";
    case CAP_BPF: return "CAP_BPF";
    default: return "CAP_SYS_ADMIN";
  }
}

}  // namespace

void require_privileges(bool need_bpf) {
  if (!sys::has_capability(CAP_NET_ADMIN))
    throw UserError(std::string("missing capability ") + cap_name(CAP_NET_ADMIN),
                    "ipsnat needs CAP_NET_ADMIN and CAP_BPF: run as root");
  if (need_bpf && !sys::has_capability(CAP_BPF) && !sys::has_capability(CAP_SYS_ADMIN))
    throw UserError(std::string("missing capability ") + cap_name(CAP_BPF),
                    "ipsnat needs CAP_NET_ADMIN and CAP_BPF: run as root");
}

HostFacts gather_facts(const std::string& dev, const Settings& settings) {
  HostFacts f;
  f.dev = sys::link_facts(dev);
  for (const auto& a : sys::ipv4_addresses()) {
    f.local_addrs.push_back(a.prefix.addr);
    char name[IF_NAMESIZE] = "";
    if_indextoname(static_cast<unsigned>(a.ifindex), name);
    bool loopback = (ntohl(a.prefix.addr.v4_be()) >> 24) == 127 || std::string(name) == "lo";
    f.addresses.push_back({a.prefix, a.ifindex, name, loopback});
  }
  // IPv6 LANs for NPTv6 (spd/npt6.h); not in local_addrs, which the IPv4 NAT reads.
  for (const auto& a : sys::ipv6_addresses()) {
    char name[IF_NAMESIZE] = "";
    if_indextoname(static_cast<unsigned>(a.ifindex), name);
    f.addresses.push_back({a.prefix, a.ifindex, name, std::string(name) == "lo"});
  }
  // Each family's routes read once; the nexthops below are looked up in the same snapshot.
  const sys::RouteTables routes4(AF_INET), routes6(AF_INET6);
  auto routes_of = [&](const Address& a) -> const sys::RouteTables& { return a.family == AF_INET6 ? routes6 : routes4; };
  f.default_oifs = routes4.default_oifs();
  f.foreign_rules4 = sys::has_foreign_rules(AF_INET);
  f.foreign_rules6 = sys::has_foreign_rules(AF_INET6);
  for (const auto* tables : {&routes4, &routes6}) {
    for (const auto& p : tables->prefixes(RT_TABLE_MAIN)) f.main_routes.push_back(p);
    for (const auto& p : tables->prefixes(RT_TABLE_LOCAL)) f.local_routes.push_back(p);
  }
  f.policies = xfrm::dump_policies();
  // This namespace's (/proc/sys/net follows the reader's network namespace).
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> f.local_port_min >> f.local_port_max;
  for (const auto& dst : covered_destinations(f, settings))
    if (auto nh = routes_of(dst.addr).route_get(dst)) {
      char name[IF_NAMESIZE];
      if (nh->oif && if_indextoname(static_cast<unsigned>(nh->oif), name)) nh->oif_name = name;
      f.nexthops.push_back(*nh);
    }
  // The path to each SA's outer peer: its MTU bounds the translated packets' (the LWT route's).
  for (const auto& p : f.policies)
    for (const auto& t : p.tmpls) {
      if (t.mode != XFRM_MODE_TUNNEL || (t.family != AF_INET && t.family != AF_INET6)) continue;
      Prefix peer = host_prefix(t.tunnel_dst);
      if (std::any_of(f.sa_peers.begin(), f.sa_peers.end(), [&](const Nexthop& n) { return n.dst == peer; })) continue;
      auto nh = routes_of(peer.addr).route_get(peer);
      if (!nh) continue;
      char name[IF_NAMESIZE];
      if (nh->oif && if_indextoname(static_cast<unsigned>(nh->oif), name)) {
        nh->oif_name = name;
        if (!nh->mtu) {
          try {
            nh->mtu = sys::link_facts(name).mtu;
          } catch (const std::exception&) {
            // gone meanwhile: the next re-plan sees the host as it is then
          }
        }
      }
      f.sa_peers.push_back(*nh);
    }
  return f;
}

}  // namespace ipsnat::attach
