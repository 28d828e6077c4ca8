#include "sys/rtnl_watch.h"

#include <libmnl/libmnl.h>

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "sys/netlink.h"
#include "sys/rtnl.h"
#include "util/error.h"

namespace ipsnat::sys {

RtnlWatch::RtnlWatch() {
  fd_.reset(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
  if (!fd_) throw SysError("opening an rtnetlink socket", errno);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE | RTMGRP_IPV6_IFADDR |
                 RTMGRP_IPV6_ROUTE;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    throw SysError("subscribing to link, address, route and rule changes", errno);
  // RTNLGRP_IPV6_RULE (19) has no RTMGRP_ bit: joined as a group.
  int group = RTNLGRP_IPV6_RULE;
  if (setsockopt(fd_.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) != 0)
    throw SysError("subscribing to IPv6 rule changes", errno);
}

namespace {
// A notification that changes what attach derives from the host.
bool is_host_change(const nlmsghdr* h) {
  switch (h->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      // Every link gets an IPv6 link-local address: attach never reads those (no LAN, no NAT address).
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return false;
      const auto* a = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      return !(a->ifa_family == AF_INET6 && a->ifa_scope == RT_SCOPE_LINK);
    }
    // ipsnat's own routes and rules (proto 165) change the host only when one is deleted: by
    // an operator (`ip route del 10.0.0.0/8`), or by a re-plan that moved it, whose next re-plan
    // then finds everything in place and re-sends only what it owns (NLM_F_REPLACE: no deletion).
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return false;
      const auto* r = static_cast<const rtmsg*>(NLMSG_DATA(h));
      return r->rtm_protocol != kRouteProtocol || h->nlmsg_type == RTM_DELROUTE;
    }
    case RTM_NEWRULE:
    case RTM_DELRULE: {  // another tool's rule decides where ipsnat's routes go (docs/attach.md)
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(fib_rule_hdr))) return false;
      bool ours = false;
      for_each_attr(h, sizeof(fib_rule_hdr), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == FRA_PROTOCOL && mnl_attr_get_payload_len(a) >= 1)
          ours = mnl_attr_get_u8(a) == kRouteProtocol;
      });
      return !ours || h->nlmsg_type == RTM_DELRULE;
    }
    default:
      return false;
  }
}
}  // namespace

bool RtnlWatch::drain() {
  std::vector<char> buf(1 << 16);
  bool changed = false;
  // Bounded: a storm of notifications is handled in several turns of the event loop.
  for (int i = 0; i < 64; ++i) {
    ssize_t n = recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // notifications were lost: everything may have changed
        changed = true;
        continue;
      }
      break;  // EAGAIN: nothing more
    }
    int len = static_cast<int>(n);
    for (auto* h = static_cast<const nlmsghdr*>(static_cast<const void*>(buf.data())); mnl_nlmsg_ok(h, len);
         h = mnl_nlmsg_next(h, &len))
      changed |= is_host_change(h);
  }
  if (changed) ++changes_;
  return changed;
}

}  // namespace ipsnat::sys
