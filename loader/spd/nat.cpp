#include "spd/nat.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>

namespace ipsnat::spd {

namespace {
Prefix any_v4() {
  Prefix p;
  p.addr = Address::v4(0);
  p.len = 0;
  return p;
}
}  // namespace

spd_nat_target ImpliedNat::target(const Policy& p) const {
  spd_nat_target t{};
  t.kind = static_cast<__u8>(kind);
  t.policy_index = p.index;
  t.reqid = p.tmpls.empty() ? 0 : p.tmpls.front().reqid;
  if (kind == SPD_NAT_NONE) return t;
  t.inside_mask = htonl(v4_mask(inside.len));
  t.nat_mask = kind == SPD_NAT_NAPT ? 0xffffffffu : t.inside_mask;
  // Selectors may carry host bits (the kernel keeps them): the datapath ORs host parts in.
  t.nat_addr = nat.addr.v4_be() & t.nat_mask;
  t.inside_net = inside.addr.v4_be() & t.inside_mask;
  if (!inside_set.empty()) t.flags = SPD_NAT_INSIDE_SET;
  return t;
}

std::string ImpliedNat::inside_str() const {
  if (inside_set.empty()) return inside.str();
  std::string s;
  for (const auto& p : inside_set) s += (s.empty() ? "" : ", ") + p.str();
  return s;
}

std::string ImpliedNat::str() const {
  switch (kind) {
    case SPD_NAT_NAPT: return "napt " + inside_str() + " -> " + nat.addr.str();
    case SPD_NAT_PREFIX: return "prefix " + inside.str() + " -> " + nat.str();
    default: return "none (" + why + ")";
  }
}

bool tunnel_mode(const Policy& p) {
  for (const Template& t : p.tmpls)
    if (!t.optional && (t.mode == XFRM_MODE_TUNNEL || t.mode == XFRM_MODE_BEET)) return true;
  return false;
}

ImpliedNat implied_nat(const Policy& p, const NatConfig& cfg) {
  ImpliedNat n;
  if (p.dir != Dir::Out || !p.is_ipsec() || p.sel.family != AF_INET) {
    n.why = "not an IPv4 IPsec out-policy";
    return n;
  }
  // Transport (and other non-tunnel) modes protect this host's own packets, addressed as they
  // are (L2TP or GRE over IPsec): a LAN source translated into such a selector would be the
  // host's address on a packet that is not the host's. Covered all the same (is_ipsec()).
  if (!tunnel_mode(p)) {
    n.why = "transport mode: protects this host's own traffic";
    return n;
  }
  for (const auto& o : cfg.overrides) {
    if ((o.policy_index && *o.policy_index != p.index) || (o.policy_src && *o.policy_src != p.sel.src))
      continue;
    if (!o.policy_index && !o.policy_src) continue;
    n.kind = o.kind;
    n.nat = o.nat;
    n.inside = o.inside;
    n.why = "configured";
    return n;
  }
  const Prefix& src = p.sel.src;
  if (src.len == 32) {
    n.kind = SPD_NAT_NAPT;
    n.nat = src;
    // Every inside prefix, not one: the datapath asks the inside set (maps/inside.h).
    n.inside = any_v4();
    for (const auto& in : cfg.inside)
      if (in.addr.family == AF_INET) n.inside_set.push_back(in);
    n.why = "source selector is one address";
    return n;
  }
  if (src.len == 0) {
    n.why = "source selector is any address: needs explicit configuration";
    return n;
  }
  // A LAN addressed inside the policy's source block (plain site-to-site, or a LAN that holds
  // part of the block) needs no translation, and no other LAN may be mapped onto its hosts'
  // addresses: no NAT for this policy (a 1:1 map would also blackhole the block, docs/attach.md).
  for (const auto& in : cfg.inside) {
    if (in.addr.family != AF_INET || in.len == 32) continue;
    if (src.contains(in.addr) || in.contains(src.addr)) {
      n.why = "source selector " + src.str() + " overlaps the inside prefix " + in.str() +
              ": its hosts are sent as they are";
      return n;
    }
  }
  // A 1:1 map needs an inside prefix no larger than the policy's source block.
  for (const auto& in : cfg.inside) {
    if (in.addr.family != AF_INET || in.len < src.len) continue;
    n.kind = SPD_NAT_PREFIX;
    n.inside = in;
    n.nat = Prefix{src.addr, in.len};
    n.why = "source selector is a prefix";
    return n;
  }
  n.why = "no configured inside prefix fits " + src.str();
  return n;
}

bool nat_eligible(const spd_nat_target& t, uint32_t saddr) {
  return (saddr & t.inside_mask) == t.inside_net;
}

uint32_t nat_translate(const spd_nat_target& t, uint32_t saddr) {
  if (t.kind == SPD_NAT_PREFIX) return (t.nat_addr & t.nat_mask) | (saddr & ~t.inside_mask);
  return t.nat_addr;
}

}  // namespace ipsnat::spd
