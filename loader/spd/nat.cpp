#include "spd/nat.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>

#include <algorithm>
#include <cstring>

#include "spd/model.h"
#include "spd/npt6.h"

namespace ipsnat::spd {

namespace {
Prefix any_v4() {
  Prefix p;
  p.addr = Address::v4(0);
  p.len = 0;
  return p;
}
}  // namespace

std::pair<uint32_t, uint32_t> longest_free_run(uint32_t count, std::vector<uint32_t> taken) {
  std::sort(taken.begin(), taken.end());
  uint32_t best_at = 0, best = 0, start = 0;
  taken.push_back(count);  // the end closes the last run
  for (uint32_t cut : taken) {
    if (cut > start && cut - start > best) {
      best_at = start;
      best = cut - start;
    }
    start = std::max(start, cut + 1);
  }
  return best ? std::pair(best_at, best) : std::pair(0u, count);
}

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
  t.dst_mask = htonl(v4_mask(dst.len));
  t.dst_net = dst.addr.v4_be() & t.dst_mask;
  if (!inside_set.empty()) t.flags = SPD_NAT_INSIDE_SET;
  if (kind == SPD_NAT_NAPT && nat_count > 1) t.nat_span = static_cast<__u16>(std::min<uint32_t>(nat_count, SPD_NAT_MAX_POOL) - 1);
  return t;
}

std::string ImpliedNat::nat_str() const {
  if (nat_count <= 1) return nat.addr.str();
  return nat.addr.str() + "-" + Address::v4(htonl(ntohl(nat.addr.v4_be()) + nat_count - 1)).str();
}

std::vector<Prefix> ImpliedNat::nat_blocks() const {
  if (kind != SPD_NAT_NAPT) return {nat};
  std::vector<Prefix> out;
  uint64_t a = ntohl(nat.addr.v4_be()), end = a + nat_count;
  while (a < end) {
    // The largest aligned block at a that ends inside the pool.
    uint8_t len = 32;
    while (len > 0 && (a & ((uint64_t(1) << (33 - len)) - 1)) == 0 && a + (uint64_t(1) << (33 - len)) <= end) len--;
    out.push_back(Prefix{Address::v4(htonl(static_cast<uint32_t>(a))), len});
    a += uint64_t(1) << (32 - len);
  }
  return out;
}

std::string ImpliedNat::inside_str() const {
  if (inside_set.empty()) return inside.str();
  std::string s;
  for (const auto& p : inside_set) s += (s.empty() ? "" : ", ") + p.str();
  return s;
}

std::string ImpliedNat::dst_str() const { return dst.len ? " for " + dst.str() : ""; }

std::string ImpliedNat::str() const {
  switch (kind) {
    case SPD_NAT_NAPT: return "napt " + inside_str() + " -> " + nat_str() + dst_str();
    case SPD_NAT_PREFIX: return "prefix " + inside.str() + " -> " + nat.str() + dst_str();
    default: return "none (" + why + ")";
  }
}

bool tunnel_mode(const Policy& p) {
  for (const Template& t : p.tmpls)
    if (!t.optional && (t.mode == XFRM_MODE_TUNNEL || t.mode == XFRM_MODE_BEET)) return true;
  return false;
}

namespace {
// Why p implies no translation whatever the configuration says (empty why: it may imply one).
ImpliedNat not_translatable(const Policy& p) {
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
  return n;
}

// The translations of the [[nat]] rules that apply to p (an IPv4 tunnel out-policy); an error
// (one element of kind NONE) when a rule's destination overlaps p's without lying inside it.
std::vector<ImpliedNat> configured_nats(const Policy& p, const NatConfig& cfg) {
  std::vector<ImpliedNat> out;
  for (const auto& o : cfg.overrides) {
    if (!o.policy_index && !o.policy_src) continue;
    if (o.inside.addr.family == AF_INET6) continue;  // an IPv6 rule: spd/npt6.h
    if (!o.names(p)) continue;
    ImpliedNat n;
    n.kind = o.kind;
    n.nat = o.nat;
    n.nat_count = o.nat_count;
    n.inside = o.inside;
    Address last = Address::v4(htonl(ntohl(o.nat.addr.v4_be()) + o.nat_count - 1));
    if (o.kind == SPD_NAT_NAPT && !p.sel.src.contains(last)) {
      ImpliedNat bad;
      bad.why = "nat rule" + (o.origin.empty() ? "" : " " + o.origin) + ": pool " + n.nat_str() +
                " is not inside the policy's source selector " + p.sel.src.str() + "; name addresses inside it";
      return {bad};
    }
    n.dst = any_v4();
    n.why = "configured" + (o.origin.empty() ? "" : " (" + o.origin + ")");
    if (o.destinations.empty()) out.push_back(n);
    for (const Prefix& d : o.destinations) {
      if (p.sel.dst.len <= d.len && p.sel.dst.contains(d.addr)) {
        n.dst = d;
        out.push_back(n);
      } else if (d.len < p.sel.dst.len && d.contains(p.sel.dst.addr)) {
        ImpliedNat bad;
        bad.why = "nat rule" + (o.origin.empty() ? "" : " " + o.origin) + ": destination " + d.str() +
                  " is not inside the policy's destination selector " + p.sel.dst.str() +
                  "; name prefixes inside it";
        return {bad};
      }
    }
  }
  return out;
}


// A NAPT pool without the gateway's own IPv4 addresses (implied_nats).
void leave_local_out(ImpliedNat& n, const std::vector<Address>& local) {
  if (n.kind != SPD_NAT_NAPT || n.nat_count <= 1) return;
  uint32_t first = ntohl(n.nat.addr.v4_be());
  std::vector<uint32_t> taken;
  for (const Address& a : local) {
    if (a.family != AF_INET) continue;
    uint32_t at = ntohl(a.v4_be()) - first;
    if (at < n.nat_count) taken.push_back(at);
  }
  auto [at, size] = longest_free_run(n.nat_count, taken);
  n.nat = Prefix{Address::v4(htonl(first + at)), 32};
  n.nat_count = size;
}

// What the SPD implies for p (an IPv4 tunnel out-policy no rule applies to).
ImpliedNat spd_implied_nat(const Policy& p, const NatConfig& cfg) {
  ImpliedNat n;
  n.dst = any_v4();
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
  // A LAN larger than the source block: NAPT over the block's addresses (every inside prefix, as
  // for one address); each LAN host keeps one of them (maps/spd.h spd_nat_pool_pick).
  if (std::none_of(cfg.inside.begin(), cfg.inside.end(), [](const Prefix& in) { return in.addr.family == AF_INET; })) {
    n.why = "no configured inside prefix fits " + src.str();
    return n;
  }
  n.kind = SPD_NAT_NAPT;
  n.nat = Prefix{Address::v4(src.addr.v4_be() & htonl(v4_mask(src.len))), 32};
  n.nat_count = src.len >= 16 ? uint32_t(1) << (32 - src.len) : SPD_NAT_MAX_POOL;
  n.inside = any_v4();
  for (const auto& in : cfg.inside)
    if (in.addr.family == AF_INET) n.inside_set.push_back(in);
  n.why = "inside prefixes larger than the source selector: napt over its addresses";
  return n;
}
}  // namespace

std::optional<std::string> reroute_misses(const Policy& p) {
  const Selector& s = p.sel;
  if ((s.sport & s.sport_mask) == 0 && (s.dport & s.dport_mask) == 0) return std::nullopt;
  return "restricts ports (" + proto_name(s.proto) + ports_text(s) +
         "), which the kernel's lookup after the LWT reroute does not carry";
}

ImpliedNat implied_nat(const Policy& p, const NatConfig& cfg) { return implied_nats(p, cfg).front(); }

std::vector<ImpliedNat> implied_nats(const Policy& p, const NatConfig& cfg) {
  ImpliedNat n = not_translatable(p);
  if (!n.why.empty()) return {n};
  auto out = configured_nats(p, cfg);
  if (out.empty()) out.push_back(spd_implied_nat(p, cfg));
  for (ImpliedNat& m : out) leave_local_out(m, cfg.local);
  return out;
}

bool local_change_moves_nat(const SpdModel& model, const NatConfig& cfg, const std::vector<Address>& local) {
  NatConfig after = cfg;
  after.local = local;
  for (const auto& [index, p] : model.by_index()) {
    if (p.sel.family != AF_INET) continue;
    auto was = implied_nats(p, cfg), is = implied_nats(p, after);
    if (was.size() != is.size()) return true;
    for (size_t i = 0; i < was.size(); i++)
      if (was[i].kind != is[i].kind || was[i].nat != is[i].nat || was[i].nat_count != is[i].nat_count) return true;
  }
  // The inside set's NPT6_KIND_LOCAL entries (the gateway's addresses themselves) translate
  // nothing: the mirror rewrites them without a new SPD version (SpdMirror::set_local).
  auto rules = [&](const std::vector<Address>& l) {
    auto entries = npt6_entries(model, cfg.inside, l, cfg.overrides);
    std::erase_if(entries, [](const auto& e) { return e.second.kind == NPT6_KIND_LOCAL; });
    return entries;
  };
  auto same = [](const auto& a, const auto& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
             return x.first == y.first && std::memcmp(&x.second, &y.second, sizeof(x.second)) == 0;
           });
  };
  return !same(rules(cfg.local), rules(local));
}

bool target_meets_cell(const spd_nat_target& t, uint8_t dlen, uint32_t dnet_host) {
  // Two prefixes meet when the shorter one contains the other.
  uint32_t mask = v4_mask(dlen) & ntohl(t.dst_mask);
  return (dnet_host & mask) == (ntohl(t.dst_net) & mask);
}

bool nat_eligible(const spd_nat_target& t, uint32_t saddr, uint32_t daddr) {
  return (saddr & t.inside_mask) == t.inside_net && (daddr & t.dst_mask) == t.dst_net;
}

uint32_t nat_translate(const spd_nat_target& t, uint32_t saddr) {
  if (t.kind == SPD_NAT_PREFIX) return (t.nat_addr & t.nat_mask) | (saddr & ~t.inside_mask);
  return htonl(ntohl(t.nat_addr) + spd_nat_pool_pick(ntohl(saddr), t.nat_span));
}

}  // namespace ipsnat::spd
