#pragma once
// Notifications of the host's links, addresses, routes and routing rules, IPv4 and IPv6
// (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_IFADDR,
// RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE), for an event loop: watch fd(), call drain() when it is
// readable. What attach derives from them (inside prefixes, the uplink, nexthops, the gateway's
// own addresses, where its routes go) is then derived again. ipsnat's own routes and rules
// (protocol sys::kRouteProtocol) added or replaced are not changes of the host: re-planning must
// not wake itself up. One deleted is: the re-plan puts it back (an operator's `ip route del`).
#include <cstdint>

#include "util/fd.h"

namespace ipsnat::sys {

class RtnlWatch {
 public:
  RtnlWatch();  // SysError when the socket cannot be opened
  RtnlWatch(const RtnlWatch&) = delete;
  RtnlWatch& operator=(const RtnlWatch&) = delete;

  int fd() const { return fd_.get(); }
  // Reads every pending notification without blocking. True when one of them changed the host
  // (also after lost notifications, ENOBUFS: the caller must re-read everything anyway).
  bool drain();
  uint64_t changes() const { return changes_; }

 private:
  Fd fd_;
  uint64_t changes_ = 0;
};

}  // namespace ipsnat::sys
