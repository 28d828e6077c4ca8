#pragma once
// What the unit tests of the SPD model and its NAT share: an IPv4 out-policy as an IKE daemon
// installs it and a UDP flow.
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "spd/policy.h"

namespace ipsnat::spd::test {

// src -> dst out, priority 100, one ESP template in `mode` (reqid = index).
inline Policy out_policy(const char* src, const char* dst, uint32_t index, uint8_t mode = XFRM_MODE_TUNNEL) {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.src = parse_prefix(src);
  p.sel.dst = parse_prefix(dst);
  p.priority = 100;
  p.index = index;
  Template t;
  t.mode = mode;
  t.proto = IPPROTO_ESP;
  t.reqid = index;
  p.tmpls.push_back(t);
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
