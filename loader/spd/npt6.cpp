#include "spd/npt6.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "spd/nat.h"

namespace ipsnat::spd {

namespace {

Prefix network(const Prefix& p) {
  Prefix n = p;
  for (int i = 0; i < 16; ++i) {
    int bits = int(p.len) - 8 * i;
    uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : uint8_t(0xff << (8 - bits));
    n.addr.bytes[i] &= m;
  }
  return n;
}

uint32_t sum16(const Prefix& p) {
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2) s += uint32_t(p.addr.bytes[i]) << 8 | p.addr.bytes[i + 1];
  return s;
}

uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

// The 16-bit word RFC 6296 adjusts for a prefix of len bits (section 3.7): up to /48 the subnet
// word, else the first word the prefix leaves whole (the datapath takes the first of it and the
// words after it that is not 0xffff).
uint8_t adjusted_word(uint8_t len) { return len <= 48 ? 3 : uint8_t((len + 15) / 16); }

// The block's first address after the all-zeros host part, as a /128.
Prefix first_address(const Prefix& block) {
  Prefix a = network(block);
  a.addr.bytes[15] |= 1;
  a.len = 128;
  return a;
}

// The NAT66 pool of a block: its addresses after the Subnet-Router anycast one, at most
// IPSNAT_NPT6_MAX_POOL (a /128 is its one address).
uint32_t pool_size(const Prefix& block) {
  if (block.len == 128) return 1;
  int host = 128 - block.len;
  if (host > 16) return IPSNAT_NPT6_MAX_POOL;
  return std::min<uint32_t>((uint32_t(1) << host) - 1, IPSNAT_NPT6_MAX_POOL);
}

// addr with n added to its last 32 bits (a pool never carries beyond them: at most 2^16
// addresses after a block's first, and a block of 32 host bits or fewer holds them all).
Address plus(const Address& addr, uint32_t n) {
  Address a = addr;
  uint32_t w = npt6_word32(a.bytes.data(), 12) + n;
  for (int i = 0; i < 4; ++i) a.bytes[12 + i] = uint8_t(w >> (24 - 8 * i));
  return a;
}

// The block of block.len bits that follows block (carrying into the bits before it).
Prefix next_block(const Prefix& block) {
  Prefix n = network(block);
  for (int bit = int(block.len) - 1; bit >= 0; --bit) {
    uint8_t& byte = n.addr.bytes[bit / 8];
    uint8_t mask = uint8_t(0x80 >> (bit % 8));
    byte ^= mask;
    if (byte & mask) break;  // 0 became 1: no carry
  }
  return n;
}

// "fd00:9::/64, fd00:a::/64"
std::string prefixes_str(const std::vector<Prefix>& prefixes) {
  std::string s;
  for (const auto& p : prefixes) s += (s.empty() ? "" : ", ") + p.str();
  return s;
}

bool overlaps(const Prefix& a, const Prefix& b) { return a.contains(b.addr) || b.contains(a.addr); }

// The reqid of the policy's SAs (its first template's, as the IPv4 NAT target's): the datapath
// compares it with the reqid of the SA that decrypted a reply on a policy-mode uplink.
uint32_t reqid_of(const Policy& p) { return p.tmpls.empty() ? 0 : p.tmpls.front().reqid; }

// sources: a [[nat]] rule's inside prefix, the only LAN its NAT66 takes (from/len); none (len 0):
// the IPv6 inside set's.
npt6_rule nat66_rule_of(const Policy& p, const Prefix& addr, uint32_t pool, const Prefix* sources = nullptr) {
  npt6_rule r{};
  std::memcpy(r.to, addr.addr.bytes.data(), 16);
  if (sources) {
    std::memcpy(r.from, network(*sources).addr.bytes.data(), 16);
    r.len = sources->len;
  }
  r.span = static_cast<__u16>(pool - 1);
  r.kind = NPT6_KIND_NAT66;
  r.policy_index = p.index;
  r.reqid = reqid_of(p);
  return r;
}

npt6_rule rule_of(const Policy& p, const Prefix& from, const Prefix& to) {
  npt6_rule r{};
  std::memcpy(r.from, network(from).addr.bytes.data(), 16);
  std::memcpy(r.to, network(to).addr.bytes.data(), 16);
  r.len = from.len;
  r.word = adjusted_word(from.len);
  r.adjust = npt6_adjustment(from, to);
  r.policy_index = p.index;
  r.reqid = reqid_of(p);
  return r;
}

// The NPT6_OUT rule of an NPTv6 mapping: its LAN onto its block, flagged when the mapping has a
// rest (the NPT6_OUT_REST rule's address follows from the mapping, the flag tells it is there).
npt6_rule out_rule_of(const Policy& p, const Npt6Mapping& m) {
  npt6_rule r = rule_of(p, m.inside.front(), m.outside);
  if (!m.rest.empty()) r.flags = NPT6_FLAG_REST;
  return r;
}

npt6_rule inside_rule_of(const Prefix& inside) {
  npt6_rule r{};
  std::memcpy(r.from, network(inside).addr.bytes.data(), 16);
  r.len = inside.len;
  r.kind = NPT6_KIND_INSIDE;
  return r;
}

// An entry for one of the gateway's own IPv6 addresses a netfilter masquerade or SNAT rule may give
// a LAN packet before LWT xmit.
npt6_rule local_rule_of(const Address& a) {
  npt6_rule r{};
  std::memcpy(r.from, a.bytes.data(), 16);
  r.len = 128;
  r.kind = NPT6_KIND_LOCAL;
  return r;
}

std::vector<uint8_t> key_bytes(uint32_t if_id, uint32_t mark, npt6_dir dir, const Prefix& p) {
  npt6_key k{};
  k.prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + p.len;
  k.if_id = if_id;
  k.mark = mark;
  k.dir = dir;
  std::memcpy(k.addr, network(p).addr.bytes.data(), 16);
  auto* b = reinterpret_cast<const uint8_t*>(&k);
  return {b, b + sizeof(k)};
}

std::vector<Prefix> ipv6_inside(const std::vector<Prefix>& inside) {
  std::vector<Prefix> six;
  for (const auto& in : inside)
    if (in.addr.family == AF_INET6 && std::find(six.begin(), six.end(), network(in)) == six.end())
      six.push_back(network(in));
  return six;
}

// The pool of `count` addresses from `first` without the gateway's own addresses (npt6_of): the
// place of its first address and its size.
std::pair<uint32_t, uint32_t> pool_without_local(const Address& first, uint32_t count, const std::vector<Address>& local) {
  uint32_t base = npt6_word32(first.bytes.data(), 12);
  std::vector<uint32_t> taken;
  for (const Address& a : local) {
    if (a.family != AF_INET6 || std::memcmp(a.bytes.data(), first.bytes.data(), 12) != 0) continue;
    uint32_t at = npt6_word32(a.bytes.data(), 12) - base;
    if (at < count) taken.push_back(at);
  }
  return longest_free_run(count, std::move(taken));
}

// NAT66: every IPv6 inside prefix (any length) to the policy's address, or a pool of `pool` from
// it without the gateway's own addresses.
Npt6Mapping nat66_of(const Prefix& addr, uint32_t pool, const std::vector<Prefix>& inside,
                     const std::vector<Address>& local) {
  Npt6Mapping m;
  m.nat66 = true;
  auto six = ipv6_inside(inside);
  if (six.empty()) {
    m.why = "no IPv6 inside prefix to translate to " + addr.addr.str();
    return m;
  }
  for (const auto& in : six)
    if (in.contains(addr.addr)) {
      m.why = "the address " + addr.addr.str() + " is in the inside prefix " + in.str() +
              ": its hosts are sent as they are";
      return m;
    }
  auto [at, size] = pool_without_local(addr.addr, pool, local);
  m.ok = true;
  m.inside = six;
  m.outside = Prefix{plus(addr.addr, at), 128};
  m.pool = size;
  return m;
}

// The NAT66 rule of a NAT66 mapping: a [[nat]] rule's takes its inside prefix alone.
npt6_rule nat66_rule_of_mapping(const Policy& p, const Npt6Mapping& m) {
  return nat66_rule_of(p, m.outside, m.pool, m.rule.empty() ? nullptr : &m.inside.front());
}

// The IPv6 [[nat]] rules that apply to p: those whose `to` lies in its source selector.
std::vector<const NatOverride*> rules_for(const Policy& p, const std::vector<NatOverride>& rules) {
  std::vector<const NatOverride*> out;
  for (const auto& o : rules) {
    if (o.inside.addr.family != AF_INET6 || !o.policy_src) continue;
    if (o.names(p)) out.push_back(&o);
  }
  return out;
}

// What the [[nat]] rule o makes of p: NAT66 of its inside prefix to its address or pool (a prefix:
// its addresses after the all-zeros one, as the automatic pool), which must lie inside p's source
// selector; or NPTv6 of its inside prefix onto its prefix.
Npt6Mapping configured_of(const Policy& p, const NatOverride& o, const std::vector<Address>& local) {
  std::string rule = "nat rule" + (o.origin.empty() ? "" : " " + o.origin);
  Npt6Mapping m;
  if (overlaps(o.inside, o.nat)) {
    m.why = rule + ": inside " + network(o.inside).str() + " and to " + o.nat.str() + " overlap";
    return m;
  }
  if (o.kind == SPD_NAT_PREFIX) {
    m.ok = true;
    m.inside = {network(o.inside)};
    m.outside = network(o.nat);
  } else {
    Prefix first = o.nat.len == 128 ? o.nat : first_address(o.nat);
    uint32_t count = o.nat.len == 128 ? o.nat_count : pool_size(o.nat);
    Address last = plus(first.addr, count - 1);
    if (!p.sel.src.contains(last)) {
      m.why = rule + ": pool " + first.addr.str() + "-" + last.str() + " is not inside the policy's source selector " +
              p.sel.src.str() + "; name addresses inside it";
      return m;
    }
    m = nat66_of(first, count, {o.inside}, local);
    if (!m.ok) {
      m.why = rule + ": " + m.why;
      return m;
    }
  }
  m.rule = o.origin;
  m.why = "configured" + (o.origin.empty() ? "" : " (" + o.origin + ")");
  return m;
}

// Whether the kernel's lookup after the translation tells p's flows apart from other flows to its
// destination: by protocol, and by ports through an xfrm interface (if_id). The lookup after policy
// mode's LWT reroute (if_id 0) carries port 0: there only a port condition port 0 fails restricts,
// and reroute_misses refuses such a policy.
bool restricts_ports(const Policy& p) {
  const Selector& s = p.sel;
  return !npt6_policy_mode_rule(p) ? (s.sport_mask | s.dport_mask) != 0
                                   : ((s.sport & s.sport_mask) | (s.dport & s.dport_mask)) != 0;
}

bool restricts_flows(const Policy& p) { return p.sel.proto != 0 || restricts_ports(p); }

// "ports (tcp dport 443)" or "the protocol (tcp)".
std::string restriction_text(const Policy& p) {
  if (restricts_ports(p)) return "ports (" + proto_name(p.sel.proto) + ports_text(p.sel) + ")";
  return "the protocol (" + proto_name(p.sel.proto) + ")";
}

// Another IPv6 IPsec out-policy of p's if_id and mark: its rule and p's are chosen among by
// destination.
bool rival(const Policy& p, const Policy& q) {
  return q.index != p.index && q.dir == Dir::Out && q.type == PolicyType::Main && q.is_ipsec() &&
         q.sel.family == AF_INET6 && q.if_id == p.if_id && npt6_key_mark(q) == npt6_key_mark(p);
}

// "mark 0x2a/0xff00ff00"
std::string mark_text(const Policy& p) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "mark 0x%x/0x%x", p.mark_v, p.mark_m);
  return buf;
}

// Why p takes no rule whatever the other restricted policies are: policy mode's reroute misses it,
// or an unrestricted policy of its if_id covers its destination.
std::optional<std::string> refusal_alone(const Policy& p, const std::vector<const Policy*>& spd) {
  if (!npt6_key_mark(p))
    return mark_text(p) + " matches more than one flow mark: IPv6 rules are kept for one mark (a VTI's okey)";
  if (npt6_policy_mode_rule(p))
    if (auto misses = reroute_misses(p)) return "not translated in policy mode: " + *misses;
  const Policy* q = npt6_unrestricted_cover(p, spd);
  if (!q) return std::nullopt;
  bool ports = restricts_ports(p);
  return "restricts " + restriction_text(p) + " on a destination the " + (ports ? "port-less" : "unrestricted") +
         " policy " + std::to_string(q->index) + " (" + q->sel.src.str() + " -> " + q->sel.dst.str() +
         ") also covers: rules are chosen by destination alone, and its rule would take that policy's flows " +
         (ports ? "on other ports" : "of other protocols") + " to an address no policy covers";
}

// The NPT6_OUT rule p would take were it the only restricted policy on its destination, without
// its index (equal ones translate alike); nullopt when it would take none.
std::optional<npt6_rule> lone_rule(const Policy& p, const std::vector<Prefix>& inside,
                                   const std::vector<const Policy*>& spd, const std::vector<NatOverride>& rules) {
  auto m = npt6_of(p, inside, {}, rules);
  if (!m.ok || refusal_alone(p, spd)) return std::nullopt;
  npt6_rule r = m.nat66 ? nat66_rule_of_mapping(p, m) : out_rule_of(p, m);
  r.policy_index = 0;
  return r;
}

}  // namespace

std::optional<uint32_t> npt6_key_mark(const Policy& p) {
  if (p.mark_m == 0) return 0u;
  if (p.mark_m == 0xffffffffu) return p.mark_v;
  return std::nullopt;
}

bool npt6_policy_mode_rule(const Policy& p) { return p.if_id == 0 && npt6_key_mark(p) == 0u; }

Npt6Mapping npt6_of(const Policy& p, const std::vector<Prefix>& inside, const std::vector<Address>& local,
                    const std::vector<NatOverride>& rules) {
  Npt6Mapping m;
  if (p.dir != Dir::Out || !p.is_ipsec() || p.sel.family != AF_INET6 || p.type != PolicyType::Main) {
    m.why = "not an IPv6 IPsec out-policy";
    return m;
  }
  if (!tunnel_mode(p)) {
    m.why = "transport mode: protects this host's own traffic";
    return m;
  }
  auto applying = rules_for(p, rules);
  if (applying.size() > 1) {
    m.why = "nat rules " + applying[0]->origin + " and " + applying[1]->origin + " both name an address of " +
            p.sel.src.str() + ": an IPv6 policy's translation is kept per destination, one rule per policy";
    return m;
  }
  if (applying.size() == 1) return configured_of(p, *applying.front(), local);
  const Prefix& src = p.sel.src;
  if (src.len == 128) return nat66_of(src, 1, inside, local);
  if (src.len == 0) {
    m.why = "source selector " + src.str() + " is no prefix";
    return m;
  }
  std::vector<Prefix> fit;
  bool larger = false;  // a LAN larger than the selector (a shorter prefix)
  for (const auto& in : inside) {
    if (in.addr.family != AF_INET6) continue;
    if (overlaps(in, src)) {
      m.why = "source selector " + src.str() + " overlaps the inside prefix " + in.str() +
              ": its hosts are sent as they are";
      return m;
    }
    // A LAN smaller than the selector (a longer prefix) maps 1:1 onto the selector's first part of
    // its own size, as IPv4's smaller LANs do.
    if (in.len >= src.len && in.len <= IPSNAT_NPT6_MAX_LEN) fit.push_back(network(in));
    larger = larger || in.len < src.len;
  }
  // A LAN of the selector's own length is the mapping even beside smaller ones.
  std::vector<Prefix> exact;
  for (const auto& in : fit)
    if (in.len == src.len) exact.push_back(in);
  if (exact.size() == 1) fit = exact;
  // LANs that no 1:1 map holds (one larger than the selector, or several of which only one could
  // be mapped) take the selector's addresses with ports, as IPv4 NAPT takes the inside set over
  // a block smaller than it; the all-zeros host part is skipped (the Subnet-Router anycast
  // address, RFC 4291 section 2.6.1).
  if (fit.size() > 1 || (fit.empty() && larger)) return nat66_of(first_address(src), pool_size(src), inside, local);
  if (src.len > IPSNAT_NPT6_MAX_LEN) {
    m.why = "source selector " + src.str() + " is longer than /" + std::to_string(IPSNAT_NPT6_MAX_LEN) +
            ": no 16-bit word of its interface identifier is left for RFC 6296's checksum-neutral adjustment";
    return m;
  }
  if (fit.empty()) {
    m.why = "no IPv6 inside prefix /" + std::to_string(src.len) + " or longer (up to /" +
            std::to_string(IPSNAT_NPT6_MAX_LEN) + ") to map onto " + src.str();
    return m;
  }
  m.ok = true;
  m.inside = {fit.front()};
  m.outside = network(Prefix{src.addr, fit.front().len});
  for (const auto& in : ipv6_inside(inside))
    if (!(in.len >= fit.front().len && fit.front().contains(in.addr))) m.rest.push_back(in);
  if (m.rest.empty()) return m;
  if (fit.front().len == src.len) {
    m.left_out = prefixes_str(m.rest) + " not translated: the 1:1 map of " + fit.front().str() +
                 " takes the whole selector " + network(src).str() + ", no address of it is left for NAT66";
    m.rest.clear();
    return m;
  }
  auto [at, size] = pool_without_local(first_address(next_block(m.outside)).addr, pool_size(m.outside), local);
  m.rest_to = Prefix{plus(first_address(next_block(m.outside)).addr, at), 128};
  m.rest_pool = size;
  return m;
}

std::string Npt6Mapping::str() const {
  std::string tail = left_out.empty() ? "" : "; " + left_out;
  if (!rule.empty()) tail += "; nat rule " + rule;
  if (!ok) return "none (" + why + ")" + tail;
  if (nat66) return "nat66 " + inside_str() + " -> " + to_str() + " (ports)" + tail;
  std::string s = "nptv6 " + inside_str() + " -> " + outside.str();
  if (!rest.empty()) s += "; " + rest_nat66().str();
  return s + tail;
}

std::string Npt6Mapping::inside_str() const { return prefixes_str(inside); }

std::string Npt6Mapping::to_str() const {
  if (!nat66) return outside.str();
  return pool > 1 ? outside.addr.str() + "-" + pool_last().str() : outside.addr.str();
}

Address Npt6Mapping::pool_last() const { return plus(outside.addr, pool - 1); }

bool Npt6Mapping::pool_holds(const Address& a) const {
  if (a.family != AF_INET6 || std::memcmp(a.bytes.data(), outside.addr.bytes.data(), 12) != 0) return false;
  return npt6_word32(a.bytes.data(), 12) - npt6_word32(outside.addr.bytes.data(), 12) < pool;
}

Address Npt6Mapping::nat66_address(const Address& src) const {
  return plus(outside.addr, npt6_pool_pick(src.bytes.data(), pool - 1));
}

std::vector<Prefix> Npt6Mapping::to_blocks() const {
  if (!nat66) return {outside};
  // The largest aligned block at each address that ends inside the pool, as IPv4's nat_blocks.
  std::vector<Prefix> out;
  uint32_t first = npt6_word32(outside.addr.bytes.data(), 12), left = pool;
  while (left) {
    uint32_t size = 1;
    uint8_t len = 128;
    while (len > 96 && (first & (size * 2 - 1)) == 0 && size * 2 <= left) {
      size *= 2;
      --len;
    }
    out.push_back(Prefix{plus(outside.addr, first - npt6_word32(outside.addr.bytes.data(), 12)), len});
    first += size;
    left -= size;
  }
  return out;
}

bool Npt6Mapping::from_inside(const Address& a) const {
  auto in = [&](const std::vector<Prefix>& set) {
    return std::any_of(set.begin(), set.end(), [&](const Prefix& p) { return p.contains(a); });
  };
  return in(inside) || in(rest);
}

Npt6Mapping Npt6Mapping::for_source(const Address& a) const {
  if (nat66 || rest.empty() || inside.front().contains(a)) return *this;
  return rest_nat66();
}

Npt6Mapping Npt6Mapping::rest_nat66() const {
  Npt6Mapping m;
  m.ok = true;
  m.nat66 = true;
  m.inside = rest;
  m.outside = rest_to;
  m.pool = rest_pool;
  return m;
}

Npt6Mapping npt6_applied(const Policy& p, const std::vector<Prefix>& inside, bool binat,
                         const std::vector<const Policy*>& spd, const std::vector<Address>& local,
                         const std::vector<NatOverride>& rules) {
  auto m = npt6_mapped(p, inside, spd, local, rules);
  if (m.ok && !m.nat66 && !binat) {
    std::string why = "nptv6 is stateless both ways: --binat allows it";
    if (m.rest.empty()) {
      m.ok = false;
      m.why = why;
      return m;
    }
    auto rest = m.rest_nat66();
    rest.left_out = m.inside_str() + " not translated: " + why;
    return rest;
  }
  return m;
}

Npt6Mapping npt6_mapped(const Policy& p, const std::vector<Prefix>& inside, const std::vector<const Policy*>& spd,
                        const std::vector<Address>& local, const std::vector<NatOverride>& rules) {
  auto m = npt6_of(p, inside, local, rules);
  if (!m.ok) return m;
  if (auto why = npt6_refusal(p, inside, spd, rules)) {
    m.ok = false;
    m.why = *why;
  }
  return m;
}

std::optional<std::string> npt6_refusal(const Policy& p, const std::vector<Prefix>& inside,
                                        const std::vector<const Policy*>& spd, const std::vector<NatOverride>& rules) {
  if (auto why = refusal_alone(p, spd)) return why;
  const Policy* q = npt6_disagreeing(p, inside, spd, rules);
  if (!q) return std::nullopt;
  return "restricts " + restriction_text(p) + " on a destination the restricted policy " + std::to_string(q->index) +
         " (" + q->sel.src.str() + " -> " + q->sel.dst.str() + " " + proto_name(q->sel.proto) + ports_text(q->sel) +
         ") also covers with another translation: rules are chosen by destination alone, and either one's rule would "
         "take the other's flows to an address no policy covers";
}

const Policy* npt6_unrestricted_cover(const Policy& p, const std::vector<const Policy*>& spd) {
  if (!restricts_flows(p)) return nullptr;
  for (const Policy* q : spd)
    if (rival(p, *q) && !restricts_flows(*q) && q->sel.dst.len <= p.sel.dst.len && q->sel.dst.contains(p.sel.dst.addr))
      return q;
  return nullptr;
}

const Policy* npt6_disagreeing(const Policy& p, const std::vector<Prefix>& inside, const std::vector<const Policy*>& spd,
                               const std::vector<NatOverride>& rules) {
  if (!restricts_flows(p)) return nullptr;
  auto rule = lone_rule(p, inside, spd, rules);
  if (!rule) return nullptr;
  for (const Policy* q : spd) {
    if (!rival(p, *q) || !restricts_flows(*q) || !overlaps(p.sel.dst, q->sel.dst)) continue;
    auto other = lone_rule(*q, inside, spd, rules);
    if (other && std::memcmp(&*rule, &*other, sizeof(npt6_rule)) != 0) return q;
  }
  return nullptr;
}

std::optional<Address> npt6_map_address(const Npt6Mapping& m, const Address& a) {
  Address out = a;
  const Prefix& to = m.outside;
  for (int i = 0; i < 16; ++i) {
    int bits = int(to.len) - 8 * i;
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : uint8_t(0xff << (8 - bits));
    out.bytes[i] = uint8_t((a.bytes[i] & ~mask) | (to.addr.bytes[i] & mask));
  }
  uint16_t adjust = npt6_adjustment(m.inside.front(), m.outside);
  uint8_t first = adjusted_word(m.inside.front().len);
  for (int w = first; w < (first == 3 ? 4 : 8); ++w) {
    uint16_t word = uint16_t(out.bytes[2 * w] << 8 | out.bytes[2 * w + 1]);
    if (word == 0xffff) continue;
    uint16_t sum = fold(uint32_t(word) + adjust);
    if (sum == 0xffff) sum = 0;  // negative zero (RFC 6296 section 3.5)
    out.bytes[2 * w] = uint8_t(sum >> 8);
    out.bytes[2 * w + 1] = uint8_t(sum);
    return out;
  }
  return std::nullopt;
}

uint16_t npt6_adjustment(const Prefix& from, const Prefix& to) {
  return fold(sum16(network(from)) + (0xffff - fold(sum16(network(to)))));
}

std::map<std::vector<uint8_t>, npt6_rule> npt6_entries(const SpdModel& model, const std::vector<Prefix>& inside,
                                                       const std::vector<Address>& local,
                                                       const std::vector<NatOverride>& rules) {
  std::vector<const Policy*> order;
  for (const auto& [index, p] : model.by_index()) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(), [](const Policy* a, const Policy* b) {
    return a->priority != b->priority ? a->priority < b->priority : a->index < b->index;
  });
  std::map<std::vector<uint8_t>, npt6_rule> out;
  auto six = ipv6_inside(inside);
  for (const Prefix& in : six) out.emplace(key_bytes(0, 0, NPT6_INSIDE, in), inside_rule_of(in));
  // Global and unique-local ones outside every inside prefix (one inside is translated as such
  // already); link-local and loopback addresses never reach a policy's peer.
  if (!six.empty())
    for (const Address& a : local)
      if (a.family == AF_INET6 && !is_link_scoped6(a) &&
          std::none_of(six.begin(), six.end(), [&](const Prefix& in) { return in.contains(a); }))
        out.emplace(key_bytes(0, 0, NPT6_INSIDE, host_prefix(a)), local_rule_of(a));
  for (const Policy* p : order) {
    auto m = npt6_mapped(*p, inside, order, local, rules);
    if (!m.ok) continue;
    uint32_t mark = *npt6_key_mark(*p);  // npt6_mapped refuses a policy without one
    if (m.nat66) {
      out.emplace(key_bytes(p->if_id, mark, NPT6_OUT, p->sel.dst), nat66_rule_of_mapping(*p, m));
      continue;
    }
    bool first = out.emplace(key_bytes(p->if_id, mark, NPT6_OUT, p->sel.dst), out_rule_of(*p, m)).second;
    if (first && !m.rest.empty())
      out.emplace(key_bytes(p->if_id, mark, NPT6_OUT_REST, p->sel.dst), nat66_rule_of(*p, m.rest_to, m.rest_pool));
    out.emplace(key_bytes(p->if_id, mark, NPT6_IN, m.outside), rule_of(*p, m.outside, m.inside.front()));
  }
  return out;
}

}  // namespace ipsnat::spd
