#include "spd/reference.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <set>

namespace ipsnat::spd {

bool reference_matches(const Policy& p, const Flow4& f, Dir dir) {
  const Selector& s = p.sel;
  return p.dir == dir && p.type == PolicyType::Main && s.family == AF_INET && p.if_id == f.if_id &&
         (f.mark & p.mark_m) == p.mark_v && s.dst.contains(Address::v4(f.daddr)) &&
         s.src.contains(Address::v4(f.saddr)) && ((f.dport ^ s.dport) & s.dport_mask) == 0 &&
         ((f.sport ^ s.sport) & s.sport_mask) == 0 && (s.proto == 0 || s.proto == f.proto) &&
         s.ifindex == 0;
}

const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow4& f, Dir dir) {
  // The first match of each kernel list (lists are sorted by priority, then place), then of
  // those the lowest priority, then the oldest.
  std::array<const Policy*, 5> first{};
  for (const Policy* p : pols) {
    if (!reference_matches(*p, f, dir)) continue;
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
  std::set<uint32_t> reps{0};
  for (const Policy* p : pols) {
    if (p->sel.family != AF_INET) continue;
    uint32_t net = p->sel.src.addr.v4_host();
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
