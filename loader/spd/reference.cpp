#include "spd/reference.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <set>

namespace ipsnat::spd {

namespace {

Address source_of(const Flow4& f) { return Address::v4(f.saddr); }
Address source_of(const Flow6& f) { return f.saddr; }
Address destination_of(const Flow4& f) { return Address::v4(f.daddr); }
Address destination_of(const Flow6& f) { return f.daddr; }
uint16_t family_of(const Flow4&) { return AF_INET; }
uint16_t family_of(const Flow6&) { return AF_INET6; }

// The first selector condition a flow fails, in the order the text names them.
enum class Miss : uint8_t { None, Family, IfId, Mark, Destination, Source, Protocol, SourcePort, DestinationPort, Device };

template <class Flow>
Miss first_miss(const Policy& p, const Flow& f) {
  const Selector& s = p.sel;
  if (s.family != family_of(f)) return Miss::Family;
  if (p.if_id != f.if_id) return Miss::IfId;
  if ((f.mark & p.mark_m) != p.mark_v) return Miss::Mark;
  if (!s.dst.contains(destination_of(f))) return Miss::Destination;
  if (!s.src.contains(source_of(f))) return Miss::Source;
  if (s.proto && s.proto != f.proto) return Miss::Protocol;
  if (((f.sport ^ s.sport) & s.sport_mask) != 0) return Miss::SourcePort;
  if (((f.dport ^ s.dport) & s.dport_mask) != 0) return Miss::DestinationPort;
  if (s.ifindex) return Miss::Device;
  return Miss::None;
}

template <class Flow>
std::string mismatch(const Policy& p, const Flow& f) {
  switch (first_miss(p, f)) {
    case Miss::None: return "";
    case Miss::Family: return "another address family";
    case Miss::IfId: return "if_id " + std::to_string(p.if_id) + " != " + std::to_string(f.if_id);
    case Miss::Mark: return "mark does not match";
    case Miss::Destination: return "destination not in " + p.sel.dst.str();
    case Miss::Source: return "source not in " + p.sel.src.str();
    case Miss::Protocol: return "protocol " + proto_name(p.sel.proto);
    case Miss::SourcePort: return "source port";
    case Miss::DestinationPort: return "destination port";
    case Miss::Device: return "bound to a device";
  }
  return "";
}

template <class Flow>
bool matches(const Policy& p, const Flow& f, Dir dir) {
  return p.dir == dir && p.type == PolicyType::Main && first_miss(p, f) == Miss::None;
}

template <class Flow>
const Policy* lookup(const std::vector<const Policy*>& pols, const Flow& f, Dir dir) {
  // The first match of each kernel list (lists are sorted by priority, then place), then of
  // those the lowest priority, then the oldest.
  std::array<const Policy*, 5> first{};
  for (const Policy* p : pols) {
    if (!matches(*p, f, dir)) continue;
    const Policy*& head = first[static_cast<size_t>(kernel_list(*p))];
    if (!head || p->priority < head->priority || (p->priority == head->priority && p->list_place() < head->list_place()))
      head = p;
  }
  const Policy* best = nullptr;
  for (const Policy* p : first)
    if (p && (!best || p->priority < best->priority || (p->priority == best->priority && p->seq < best->seq)))
      best = p;
  return best;
}

bool nat66_translates(uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_ICMPV6;
}

}  // namespace

bool reference_matches(const Policy& p, const Flow4& f, Dir dir) { return matches(p, f, dir); }
bool reference_matches(const Policy& p, const Flow6& f, Dir dir) { return matches(p, f, dir); }
const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow4& f, Dir dir) {
  return lookup(pols, f, dir);
}
const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow6& f, Dir dir) {
  return lookup(pols, f, dir);
}
std::string reference_mismatch(const Policy& p, const Flow4& f) { return mismatch(p, f); }
std::string reference_mismatch(const Policy& p, const Flow6& f) { return mismatch(p, f); }

Nat6Outcome reference_nat6(const std::vector<const Policy*>& pols, const std::vector<Prefix>& inside, bool binat,
                           const Flow6& f, const std::vector<Address>& local, const std::vector<NatOverride>& rules) {
  Nat6Outcome out;
  auto candidate = [&](const Policy& p) {
    return p.dir == Dir::Out && p.type == PolicyType::Main && p.is_ipsec() && p.sel.family == AF_INET6 &&
           p.if_id == f.if_id && npt6_key_mark(p) == f.mark && p.sel.dst.contains(f.daddr);
  };
  if (f.if_id == 0 && f.mark == 0) {  // policy mode: the LWT route first
    const Policy* first = nullptr;
    bool routed = false;
    for (const Policy* p : pols) {
      if (!candidate(*p)) continue;
      routed = routed || npt6_applied(*p, inside, binat, pols, local, rules).ok;
      if (!first || std::pair(p->priority, p->index) < std::pair(first->priority, first->index)) first = p;
    }
    if (first && !routed) {
      out.why = "no LWT route in policy mode for " + f.daddr.str() + ": policy " + std::to_string(first->index) + ": " +
                npt6_applied(*first, inside, binat, pols, local, rules).str();
      return out;
    }
  }
  for (const Policy* p : pols) {
    if (!candidate(*p)) continue;
    auto m = npt6_mapped(*p, inside, pols, local, rules);
    if (!m.ok) continue;
    const Policy* r = out.policy;
    if (!r || p->sel.dst.len > r->sel.dst.len ||
        (p->sel.dst.len == r->sel.dst.len && std::pair(p->priority, p->index) < std::pair(r->priority, r->index))) {
      out.policy = p;
      out.mapping = m.for_source(f.saddr);
    }
  }
  const Npt6Mapping& m = out.mapping;
  if (!out.policy) {
    out.why = "no IPv6 IPsec out-policy for this destination implies a translation";
    // One would but for the others (npt6_refusal): the first by priority says why.
    const Policy* refused = nullptr;
    for (const Policy* p : pols)
      if (candidate(*p) && npt6_of(*p, inside, {}, rules).ok &&
          (!refused || std::pair(p->priority, p->index) < std::pair(refused->priority, refused->index)))
        refused = p;
    if (refused)
      out.why += ": policy " + std::to_string(refused->index) + ": " + npt6_mapped(*refused, inside, pols, {}, rules).str();
  } else if (m.nat66 && m.pool_holds(f.saddr))
    out.why = m.pool > 1 ? "the source is an address of the policy's pool already" : "the source is the policy's address already";
  else if (!m.from_inside(f.saddr))
    out.why = m.nat66 && m.rule.empty() ? "source not in an IPv6 inside prefix"
                                        : "source not in the inside prefix " + m.inside.front().str();
  else if (m.nat66 && !nat66_translates(f.proto))
    out.why = "nat66 translates tcp, udp and ICMPv6 echo only";
  else if (!m.nat66 && !binat)
    out.why = "nptv6 is stateless both ways: --binat allows it";
  else if (m.nat66)
    out.to = m.nat66_address(f.saddr);
  else if (!(out.to = npt6_map_address(m, f.saddr)))
    out.why = "RFC 6296 leaves it unmapped (the word to adjust is 0xffff)";
  return out;
}

std::optional<spd_nat_target> reference_nat_target(const std::vector<const Policy*>& pols,
                                                   const NatConfig& cfg, const Flow4& f) {
  std::vector<const Policy*> cands;
  for (const Policy* p : pols)
    if (p->dir == Dir::Out && p->type == PolicyType::Main && p->is_ipsec() &&
        p->sel.family == AF_INET && p->if_id == f.if_id && p->sel.dst.contains(Address::v4(f.daddr)))
      cands.push_back(p);
  std::sort(cands.begin(), cands.end(), [](const Policy* a, const Policy* b) {
    return a->priority != b->priority ? a->priority < b->priority : a->seq < b->seq;
  });
  for (const Policy* p : cands)
    for (const ImpliedNat& n : implied_nats(*p, cfg)) {
      if (n.kind == SPD_NAT_NONE) continue;
      spd_nat_target t = n.target(*p);
      if (!nat_eligible(t, f.saddr, f.daddr)) continue;
      Flow4 x = f;
      x.saddr = nat_translate(t, f.saddr);
      if (reference_lookup(pols, x) == p) return t;
    }
  return std::nullopt;
}

bool reference_out_covered(const std::vector<const Policy*>& pols, const Flow4& f) {
  // The lookup depends on the source only through which source prefixes contain it; every
  // region of that partition starts at 0, at a prefix's first address or right after its last.
  // A selector may carry host bits (the kernel matches under the prefix length only): its first
  // address is the masked one.
  std::set<uint32_t> reps{0};
  for (const Policy* p : pols) {
    if (p->sel.family != AF_INET) continue;
    uint32_t net = p->sel.src.addr.v4_host() & v4_mask(p->sel.src.len);
    reps.insert(net);
    uint32_t last = net | ~v4_mask(p->sel.src.len);
    if (last != 0xffffffffu) reps.insert(last + 1);
  }
  for (uint32_t s : reps) {
    Flow4 x = f;
    x.saddr = htonl(s);
    const Policy* p = reference_lookup(pols, x);
    if (p && p->is_ipsec()) return true;
  }
  return false;
}

}  // namespace ipsnat::spd
