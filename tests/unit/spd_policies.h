#pragma once
// What the unit tests of the SPD model and its NAT share: an IPv4 out-policy as an IKE daemon
// installs it and a UDP flow.
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spd/policy.h"
#include "spd/tunnel_policy.h"

namespace ipsnat::spd::test {

// src -> dst out, priority 100, one ESP template in `mode` (reqid = index).
inline Policy out_policy(const char* src, const char* dst, uint32_t index, uint8_t mode = XFRM_MODE_TUNNEL) {
  Policy p = tunnel_policy(Dir::Out, parse_prefix(src), parse_prefix(dst), index);
  p.tmpls[0].mode = mode;
  p.priority = 100;
  p.index = index;
  return p;
}

inline Flow4 flow4(const char* s, const char* d) {
  Flow4 f;
  f.saddr = parse_address(s).v4_be();
  f.daddr = parse_address(d).v4_be();
  f.proto = IPPROTO_UDP;
  return f;
}

}  // namespace ipsnat::spd::test
