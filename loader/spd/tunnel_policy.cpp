#include "spd/tunnel_policy.h"

#include <linux/xfrm.h>
#include <netinet/in.h>

namespace ipsnat::spd {

Policy tunnel_policy(Dir dir, const Prefix& src, const Prefix& dst, std::optional<uint32_t> reqid) {
  Policy p;
  p.sel.family = src.addr.family;
  p.sel.src = src;
  p.sel.dst = dst;
  p.dir = dir;
  if (reqid) {
    Template t;
    t.mode = XFRM_MODE_TUNNEL;
    t.proto = IPPROTO_ESP;
    t.reqid = *reqid;
    t.family = p.sel.family;
    p.tmpls.push_back(t);
  }
  return p;
}

}  // namespace ipsnat::spd
