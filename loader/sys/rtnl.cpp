#include "sys/rtnl.h"

#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/if_tunnel.h>
#include <linux/lwtunnel.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/netlink.h"
#include "util/error.h"

namespace ipsnat::sys {
namespace {

void put_table(nlmsghdr* nlh, rtmsg* rtm, uint32_t table) {
  rtm->rtm_table = table < 256 ? table : RT_TABLE_UNSPEC;
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
}

Address v4(const void* p) {
  uint32_t a;
  std::memcpy(&a, p, 4);
  return Address::v4(a);
}

size_t addr_len(const Address& a) { return a.family == AF_INET6 ? 16 : 4; }

void fill_route(NlRequest& req, const Route& r) {
  auto* rtm = req.put_header<rtmsg>();
  rtm->rtm_family = static_cast<unsigned char>(r.dst.addr.family);
  rtm->rtm_dst_len = r.dst.len;
  rtm->rtm_protocol = kRouteProtocol;
  rtm->rtm_type = r.blackhole ? RTN_BLACKHOLE : RTN_UNICAST;
  rtm->rtm_scope = r.blackhole || r.gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  put_table(req.hdr(), rtm, r.table);
  mnl_attr_put(req.hdr(), RTA_DST, addr_len(r.dst.addr), r.dst.addr.bytes.data());
  if (r.metric) mnl_attr_put_u32(req.hdr(), RTA_PRIORITY, r.metric);
}

}  // namespace

LinkFacts link_facts(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    throw UserError("\"" + name + "\" is not a valid device name", "see: ip link");
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETLINK, 0);
  auto* ifm = req.put_header<ifinfomsg>();
  ifm->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(req.hdr(), IFLA_IFNAME, name.c_str());
  LinkFacts f;
  f.name = name;
  bool link_elsewhere = false;  // IFLA_LINK names a device of another namespace (a veth's peer)
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWLINK) return;
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    f.ifindex = ifi->ifi_index;
    f.up = ifi->ifi_flags & IFF_UP;
    for_each_attr(nlh, sizeof(*ifi), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) == IFLA_MTU) f.mtu = mnl_attr_get_u32(a);
      if (mnl_attr_get_type(a) == IFLA_LINK) f.link = static_cast<int>(mnl_attr_get_u32(a));
      if (mnl_attr_get_type(a) == IFLA_LINK_NETNSID) link_elsewhere = true;
      if (mnl_attr_get_type(a) != IFLA_LINKINFO) return;
      for_each_nested(a, [&](const nlattr* li) {
        if (mnl_attr_get_type(li) == IFLA_INFO_KIND) f.kind = mnl_attr_get_str(li);
        if (mnl_attr_get_type(li) != IFLA_INFO_DATA) return;
        for_each_nested(li, [&](const nlattr* d) {
          // IFLA_INFO_DATA's attribute numbers depend on the kind (which the kernel sends first).
          if (f.kind == "xfrm" && mnl_attr_get_type(d) == IFLA_XFRM_IF_ID) f.if_id = mnl_attr_get_u32(d);
          // ip6_vti ("vti6") takes ip_vti's attributes.
          if ((f.kind == "vti" || f.kind == "vti6") && mnl_attr_get_type(d) == IFLA_VTI_OKEY) f.okey = ntohl(mnl_attr_get_u32(d));
        });
      });
    });
  });
  if (err == -ENODEV || f.ifindex == 0) throw UserError("cannot find device \"" + name + "\"", "see: ip link");
  if (link_elsewhere) f.link = 0;
  if (err) throw SysError("reading link " + name, err);
  return f;
}

namespace {

// The addresses of one family: IPv4 by IFA_LOCAL (the host's own, also on point-to-point
// links), IPv6 by IFA_ADDRESS, global scope only.
std::vector<AddrEntry> addresses(uint8_t family) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETADDR, NLM_F_DUMP);
  auto* ifa = req.put_header<ifaddrmsg>();
  ifa->ifa_family = family;
  std::vector<AddrEntry> out;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWADDR) return;
    const auto* m = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    if (m->ifa_family != family || (family == AF_INET6 && m->ifa_scope != RT_SCOPE_UNIVERSE)) return;
    for_each_attr(nlh, sizeof(*m), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) != (family == AF_INET ? IFA_LOCAL : IFA_ADDRESS)) return;
      Prefix p;
      p.len = m->ifa_prefixlen;
      if (family == AF_INET) {
        p.addr = v4(mnl_attr_get_payload(a));
      } else {
        p.addr.family = AF_INET6;
        std::memcpy(p.addr.bytes.data(), mnl_attr_get_payload(a), 16);
      }
      out.push_back({static_cast<int>(m->ifa_index), p});
    });
  });
  if (err) throw SysError(family == AF_INET ? "reading addresses" : "reading IPv6 addresses", err);
  return out;
}

}  // namespace

std::vector<AddrEntry> ipv4_addresses() { return addresses(AF_INET); }

std::vector<AddrEntry> ipv6_addresses() { return addresses(AF_INET6); }

std::vector<Address> local_ipv4_addresses() {
  std::vector<Address> out;
  for (const auto& a : ipv4_addresses()) out.push_back(a.prefix.addr);
  return out;
}

std::vector<Address> local_addresses() {
  std::vector<Address> out = local_ipv4_addresses();
  for (const auto& a : ipv6_addresses()) out.push_back(a.prefix.addr);
  return out;
}

namespace {

Address addr_of(uint16_t family, const void* p) {
  if (family == AF_INET) return v4(p);
  Address a;
  a.family = AF_INET6;
  std::memcpy(a.bytes.data(), p, 16);
  return a;
}

// Every table's routes of family but ipsnat's own.
std::vector<TableRoute> table_routes(uint16_t family) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETROUTE, NLM_F_DUMP);
  auto* rtm = req.put_header<rtmsg>();
  rtm->rtm_family = static_cast<unsigned char>(family);
  std::vector<TableRoute> out;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWROUTE) return;
    const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(nlh));
    if (r->rtm_dst_len > (family == AF_INET ? 32 : 128) || r->rtm_protocol == kRouteProtocol) return;
    TableRoute m;
    m.table = r->rtm_table;
    m.type = r->rtm_type;
    m.dst.addr.family = family;
    m.dst.len = r->rtm_dst_len;
    for_each_attr(nlh, sizeof(*r), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case RTA_TABLE: m.table = mnl_attr_get_u32(a); break;
        case RTA_DST: m.dst.addr = addr_of(family, mnl_attr_get_payload(a)); break;
        case RTA_PRIORITY: m.metric = mnl_attr_get_u32(a); break;
        case RTA_OIF: m.oifs.push_back(static_cast<int>(mnl_attr_get_u32(a))); break;
        case RTA_GATEWAY: m.gateway = addr_of(family, mnl_attr_get_payload(a)); break;
        case RTA_METRICS:  // nested RTAX_* u32 attributes
          for (auto* m2 = static_cast<const nlattr*>(mnl_attr_get_payload(a));
               mnl_attr_ok(m2, static_cast<int>(reinterpret_cast<const char*>(a) + a->nla_len -
                                                reinterpret_cast<const char*>(m2)));
               m2 = mnl_attr_next(m2))
            if (mnl_attr_get_type(m2) == RTAX_MTU && mnl_attr_get_payload_len(m2) >= 4) m.mtu = mnl_attr_get_u32(m2);
          break;
        case RTA_MULTIPATH: {  // struct rtnexthop entries, each followed by its attributes
          const auto* n = static_cast<const rtnexthop*>(mnl_attr_get_payload(a));
          int left = static_cast<int>(mnl_attr_get_payload_len(a));
          while (left >= static_cast<int>(sizeof(rtnexthop)) && n->rtnh_len >= sizeof(rtnexthop) &&
                 n->rtnh_len <= left) {
            m.oifs.push_back(n->rtnh_ifindex);
            int alen = n->rtnh_len - static_cast<int>(sizeof(rtnexthop));
            for (auto* na = reinterpret_cast<const rtattr*>(RTNH_DATA(n)); RTA_OK(na, alen); na = RTA_NEXT(na, alen))
              if (na->rta_type == RTA_GATEWAY && !m.gateway) m.gateway = addr_of(family, RTA_DATA(na));
            left -= RTNH_ALIGN(n->rtnh_len);
            n = RTNH_NEXT(n);
          }
          break;
        }
        default: break;
      }
    });
    out.push_back(std::move(m));
  });
  // A kernel without the family (IPv6 disabled at boot) has no routes of it.
  if (err == -EAFNOSUPPORT) return {};
  if (err) throw SysError("reading the routing tables", err);
  return out;
}

bool main_unicast(const TableRoute& r) { return r.table == RT_TABLE_MAIN && r.type == RTN_UNICAST; }

}  // namespace

RouteTables::RouteTables(uint16_t family) : routes_(table_routes(family)) {}

std::optional<Nexthop> RouteTables::route_get(const Prefix& dst) const {
  // The main table's route, matched here on a dump of it: a kernel lookup (`ip route get`) would
  // follow ipsnat's own rule into its table and return ipsnat's route, so a new default gateway
  // (DHCP, failover) would never be picked up.
  // A host inside the prefix, not its network address (a /8's .0 could be special-cased).
  Address host = dst.addr;
  if (host.family == AF_INET && dst.len < 31) host = Address::v4(htonl(ntohl(host.v4_be()) | 1));
  if (host.family == AF_INET6 && dst.len < 127) host.bytes[15] |= 1;
  const TableRoute* best = nullptr;
  for (const auto& r : routes_) {
    if (!main_unicast(r) || !r.dst.contains(host)) continue;
    if (best && (r.dst.len < best->dst.len || (r.dst.len == best->dst.len && r.metric >= best->metric))) continue;
    best = &r;
  }
  if (!best) return std::nullopt;
  Nexthop nh;
  nh.dst = dst;
  nh.oif = best->oifs.empty() ? 0 : best->oifs.front();
  nh.gateway = best->gateway;
  nh.mtu = best->mtu;
  return nh;
}

bool has_foreign_rules(uint16_t family) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETRULE, NLM_F_DUMP);
  auto* h = req.put_header<fib_rule_hdr>();
  h->family = static_cast<uint8_t>(family);
  bool foreign = false;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWRULE) return;
    const auto* r = static_cast<const fib_rule_hdr*>(mnl_nlmsg_get_payload(nlh));
    uint32_t priority = 0;
    uint32_t table = r->table;
    uint8_t protocol = 0;
    for_each_attr(nlh, sizeof(*r), [&](const nlattr* a) {
      switch (mnl_attr_get_type(a)) {
        case FRA_PRIORITY: priority = mnl_attr_get_u32(a); break;
        case FRA_TABLE: table = mnl_attr_get_u32(a); break;
        case FRA_PROTOCOL: protocol = mnl_attr_get_u8(a); break;
        default: break;
      }
    });
    if (protocol == kRouteProtocol) return;
    bool kernels = r->action == FR_ACT_TO_TBL && ((priority == 0 && table == RT_TABLE_LOCAL) ||
                                                  (priority == 32766 && table == RT_TABLE_MAIN) ||
                                                  (priority == 32767 && table == RT_TABLE_DEFAULT));
    foreign |= !kernels;
  });
  if (err == -EAFNOSUPPORT) return false;  // no such family in this kernel: nothing to route
  if (err) throw SysError("reading the routing rules", err);
  return foreign;
}

std::vector<Prefix> RouteTables::prefixes(uint32_t table) const {
  std::vector<Prefix> out;
  for (const auto& r : routes_)
    if (r.table == table) out.push_back(r.dst);
  return out;
}

std::vector<int> RouteTables::default_oifs() const {
  std::vector<int> out;
  for (const auto& r : routes_)
    if (main_unicast(r) && r.dst.len == 0)
      for (int oif : r.oifs)
        if (oif && std::find(out.begin(), out.end(), oif) == out.end()) out.push_back(oif);
  return out;
}

int add_route(const Route& r, int lwt_prog_fd, bool replace) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_NEWROUTE, NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL));
  fill_route(req, r);
  nlmsghdr* nlh = req.hdr();
  if (!r.blackhole) {
    mnl_attr_put_u32(nlh, RTA_OIF, r.oif);
    if (r.gateway) mnl_attr_put(nlh, RTA_GATEWAY, addr_len(*r.gateway), r.gateway->bytes.data());
    if (r.prefsrc) mnl_attr_put(nlh, RTA_PREFSRC, addr_len(*r.prefsrc), r.prefsrc->bytes.data());
  }
  if (r.mtu) {
    nlattr* m = mnl_attr_nest_start(nlh, RTA_METRICS);
    // IPv6 forwarding honours a route's mtu only when it is locked (ip6_dst_mtu_maybe_forward).
    if (r.dst.addr.family == AF_INET6) mnl_attr_put_u32(nlh, RTAX_LOCK, 1u << RTAX_MTU);
    mnl_attr_put_u32(nlh, RTAX_MTU, r.mtu);
    mnl_attr_nest_end(nlh, m);
  }
  if (!r.lwt_prog.empty()) {
    // As iproute2's `encap bpf xmit obj ...`: RTA_ENCAP { LWT_BPF_XMIT { PROG_FD, PROG_NAME } }.
    nlattr* enc = mnl_attr_nest_start(nlh, RTA_ENCAP);
    nlattr* x = mnl_attr_nest_start(nlh, LWT_BPF_XMIT);
    mnl_attr_put_u32(nlh, LWT_BPF_PROG_FD, lwt_prog_fd);
    mnl_attr_put_strz(nlh, LWT_BPF_PROG_NAME, r.lwt_prog.c_str());
    mnl_attr_nest_end(nlh, x);
    mnl_attr_nest_end(nlh, enc);
    mnl_attr_put_u16(nlh, RTA_ENCAP_TYPE, LWTUNNEL_ENCAP_BPF);
  }
  return nl.request(req);
}

int delete_route(const Route& r) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_DELROUTE, 0);
  fill_route(req, r);
  return nl.request(req);
}

namespace {
void fill_rule(NlRequest& req, const Rule& r) {
  auto* h = req.put_header<fib_rule_hdr>();
  h->family = static_cast<uint8_t>(r.family);
  h->action = FR_ACT_TO_TBL;
  h->table = r.table < 256 ? r.table : RT_TABLE_UNSPEC;
  mnl_attr_put_u32(req.hdr(), FRA_PRIORITY, r.priority);
  mnl_attr_put_u32(req.hdr(), FRA_TABLE, r.table);
  mnl_attr_put_u8(req.hdr(), FRA_PROTOCOL, kRouteProtocol);
}
}  // namespace

int add_rule(const Rule& r) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL);
  fill_rule(req, r);
  return nl.request(req);
}

int delete_rule(const Rule& r) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_DELRULE, 0);
  fill_rule(req, r);
  return nl.request(req);
}

int foreign_tc_filters(int ifindex, uint32_t prio) {
  int count = 0;
  for (uint32_t parent : {TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)}) {
    NlSocket nl(NETLINK_ROUTE);
    NlRequest req(RTM_GETTFILTER, NLM_F_DUMP);
    auto* t = req.put_header<tcmsg>();
    t->tcm_family = AF_UNSPEC;
    t->tcm_ifindex = ifindex;
    t->tcm_parent = parent;
    int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
      if (nlh->nlmsg_type != RTM_NEWTFILTER) return;
      const auto* m = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
      if (TC_H_MAJ(m->tcm_info) >> 16 != prio) ++count;
    });
    if (err == -EINVAL || err == -ENOENT) continue;  // no clsact
    if (err) throw SysError("listing TC filters", err);
  }
  return count;
}

std::vector<TcFilter> tc_filters(int ifindex, bool ingress) {
  std::vector<TcFilter> out;
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETTFILTER, NLM_F_DUMP);
  auto* t = req.put_header<tcmsg>();
  t->tcm_family = AF_UNSPEC;
  t->tcm_ifindex = ifindex;
  t->tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWTFILTER) return;
    const auto* m = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
    if (m->tcm_handle == 0) return;  // the chain's per-priority header, not a filter
    TcFilter f;
    f.prio = TC_H_MAJ(m->tcm_info) >> 16;
    for_each_attr(nlh, sizeof(*m), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) == TCA_KIND) f.kind = mnl_attr_get_str(a);
      if (mnl_attr_get_type(a) != TCA_OPTIONS) return;
      const char* end = static_cast<const char*>(mnl_attr_get_payload(a)) + mnl_attr_get_payload_len(a);
      for (auto* o = static_cast<const nlattr*>(mnl_attr_get_payload(a));
           mnl_attr_ok(o, static_cast<int>(end - reinterpret_cast<const char*>(o))); o = mnl_attr_next(o))
        if (mnl_attr_get_type(o) == TCA_BPF_NAME) f.bpf_name = mnl_attr_get_str(o);
    });
    out.push_back(std::move(f));
  });
  if (err == -EINVAL || err == -ENOENT) return {};  // no clsact
  if (err) throw SysError("listing TC filters", err);
  return out;
}

bool has_clsact(int ifindex) {
  NlSocket nl(NETLINK_ROUTE);
  NlRequest req(RTM_GETQDISC, NLM_F_DUMP);
  auto* t = req.put_header<tcmsg>();
  t->tcm_family = AF_UNSPEC;
  t->tcm_ifindex = ifindex;
  bool found = false;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != RTM_NEWQDISC) return;
    const auto* m = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(nlh));
    if (m->tcm_ifindex != ifindex || m->tcm_parent != TC_H_CLSACT) return;
    for_each_attr(nlh, sizeof(*m), [&](const nlattr* a) {
      if (mnl_attr_get_type(a) == TCA_KIND && std::strcmp(mnl_attr_get_str(a), "clsact") == 0) found = true;
    });
  });
  if (err) throw SysError("listing qdiscs", err);
  return found;
}

}  // namespace ipsnat::sys
