#include "spd/compiler.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace ipsnat::spd {

namespace {

uint64_t pkey(uint8_t len, uint32_t host_net) { return (uint64_t(len) << 32) | host_net; }

bool kernel_order(const Policy* a, const Policy* b) {
  return a->priority != b->priority ? a->priority < b->priority : a->seq < b->seq;
}

spd_cand make_cand(const Policy& p) {
  spd_cand c{};
  bool unknown = unknown_condition(p).has_value();
  c.policy_index = p.index;
  c.mark_v = p.mark_v;
  c.mark_m = p.mark_m;
  c.reqid = p.tmpls.empty() ? 0 : p.tmpls.front().reqid;
  c.sport = p.sel.sport & p.sel.sport_mask;
  c.sport_mask = p.sel.sport_mask;
  c.dport = p.sel.dport & p.sel.dport_mask;
  c.dport_mask = p.sel.dport_mask;
  c.proto = p.sel.proto;
  c.verdict = p.action == Action::Block ? SPD_V_BLOCK : p.is_ipsec() ? SPD_V_IPSEC : SPD_V_BYPASS;
  if (unknown) {
    // Only the conditions the datapath can evaluate: the candidate matches at least every flow
    // the kernel might give this policy.
    c.verdict = SPD_V_UNKNOWN;
    c.reqid = 0;
    if (!proto_has_ports(p.sel.proto)) c.sport = c.sport_mask = c.dport = c.dport_mask = 0;
  }
  return c;
}

// An SPD_V_UNKNOWN candidate without conditions ends the list too: every flow stops there.
bool unconditional(const spd_cand& c) {
  return c.proto == 0 && c.sport_mask == 0 && c.dport_mask == 0 && c.mark_m == 0 && c.mark_v == 0;
}
bool unconditional(const Policy& p) { return unconditional(make_cand(p)); }

// Puts the candidates of one (source, destination) class in an order whose first match is the
// kernel's choice for every flow of the class, or says why there is none. The kernel takes the
// first match of each candidate list and of those the lowest priority, then the oldest
// (xfrm_policy_lookup_bytype(), xfrm_policy_eval_candidates()). Ages order the lists too, except
// where an update kept its place: there the order between two policies that can match one flow
// is kernel_before(), and a first-match list needs it free of cycles (a kept place in one list
// against a tie in another can make one). Where a place is unknown (a dump, a tree merge) the
// order the model holds is taken: a dump's ages are the kernel's list order unless an update kept
// a place before the mirror started, and refusing would fail every tie of a restarted gateway
// closed (docs/spd.md).
std::optional<std::string> kernel_sequence(std::vector<const Policy*>& cands) {
  std::sort(cands.begin(), cands.end(), kernel_order);
  bool kept = false;
  for (const Policy* p : cands) kept |= p->place != 0;
  if (kept) {
    // A candidate behind an unconditional one in its own list (a known place), or behind a lower
    // priority, is never the kernel's choice here: left out, it takes no part in a cycle.
    auto shadowed = [&cands](const Policy* x) {
      for (const Policy* u : cands)
        if (u != x && unconditional(*u) &&
            (u->priority < x->priority ||
             (u->priority == x->priority && kernel_list(*u) == kernel_list(*x) &&
              u->list_place() < x->list_place() && !(u->place_unknown && x->place_unknown))))
          return true;
      return false;
    };
    std::vector<const Policy*> live;
    for (const Policy* p : cands)
      if (!shadowed(p)) live.push_back(p);
    cands = std::move(live);
    // Kahn's algorithm over "comes first for a flow both match", the oldest available first.
    const size_t n = cands.size();
    std::vector<size_t> preds(n, 0);
    std::vector<std::vector<size_t>> next(n);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++)
        if (i != j && kernel_before(*cands[i], *cands[j]) && may_match_together(*cands[i], *cands[j])) {
          next[i].push_back(j);
          preds[j]++;
        }
    std::vector<const Policy*> out;
    std::vector<bool> done(n, false);
    while (out.size() < n) {
      size_t pick = n;
      for (size_t i = 0; i < n && pick == n; i++)
        if (!done[i] && preds[i] == 0) pick = i;
      if (pick == n)
        return "the kernel's choice among policies " + std::to_string(cands[0]->index) +
               " and others of priority " + std::to_string(cands[0]->priority) +
               " depends on which of them match (an update kept a place in one list against a tie in another)";
      done[pick] = true;
      out.push_back(cands[pick]);
      for (size_t j : next[pick]) preds[j]--;
    }
    cands = std::move(out);
  }
  return std::nullopt;
}

// Prefix lengths present among a set of prefixes: bit l set when some prefix is /l.
using LenMask = uint64_t;

// Ancestors (and itself) of a prefix that exist in `groups`, shortest first. Only the lengths
// in `lens` can exist: one lookup per length present, not 33.
template <class F>
void for_each_ancestor(const std::unordered_map<uint64_t, std::vector<const Policy*>>& groups, LenMask lens,
                       uint8_t len, uint32_t host_net, F&& f) {
  for (LenMask m = lens & ((LenMask(2) << len) - 1); m; m &= m - 1) {
    auto l = static_cast<uint8_t>(__builtin_ctzll(m));
    auto it = groups.find(pkey(l, host_net & v4_mask(l)));
    if (it != groups.end()) f(it->second);
  }
}

}  // namespace

bool cand_matches(const spd_cand& c, const Flow4& f) {
  return (c.proto == 0 || c.proto == f.proto) && ((f.sport ^ c.sport) & c.sport_mask) == 0 &&
         ((f.dport ^ c.dport) & c.dport_mask) == 0 && (f.mark & c.mark_m) == c.mark_v;
}

uint32_t CompileIds::Pool::take() {
  if (free.empty()) return next++;
  uint32_t id = free.back();
  free.pop_back();
  return id;
}

uint32_t CompileIds::cell(uint32_t if_id, uint8_t len, uint32_t daddr) {
  auto [it, added] = cells_.try_emplace({if_id, len, daddr}, 0, true);
  if (added) it->second.first = cell_pool_.take();
  it->second.second = true;
  return it->second.first;
}

uint32_t CompileIds::list(const spd_list& l) {
  std::string bytes(reinterpret_cast<const char*>(&l), sizeof(l));
  auto [it, added] = lists_.try_emplace(std::move(bytes), 0, true);
  if (added) it->second.first = list_pool_.take();
  it->second.second = true;
  return it->second.first;
}

void CompileIds::sweep() {
  auto sweep_one = [](auto& m, Pool& pool) {
    for (auto it = m.begin(); it != m.end();) {
      if (!it->second.second) {
        pool.free.push_back(it->second.first);
        it = m.erase(it);
      } else {
        it->second.second = false;
        ++it;
      }
    }
  };
  sweep_one(cells_, cell_pool_);
  sweep_one(lists_, list_pool_);
}

namespace {
// Why NAPT pool t cannot go into a cell with these source classes: one of them divides it (meets
// it without containing it all), so the SPD may give its addresses to different policies. The
// datapath checks the policy of the address a source prefers and moves on to the next addresses
// of the pool without asking again (bpf/lib/nat.h), which is exact only for an undivided pool.
std::optional<std::string> pool_divided(const spd_nat_target& t, const std::vector<CellCompile::Src>& src) {
  if (t.kind != SPD_NAT_NAPT || !t.nat_span) return std::nullopt;
  uint32_t first = ntohl(t.nat_addr), last = first + t.nat_span;
  for (const auto& s : src) {
    uint32_t lo = ntohl(s.saddr) & v4_mask(s.len), hi = lo | ~v4_mask(s.len);
    if (hi < first || lo > last || (lo <= first && last <= hi)) continue;
    return "its NAT pool " + Address::v4(t.nat_addr).str() + "-" + Address::v4(htonl(last)).str() +
           " is divided by the source selector " + Prefix{Address::v4(s.saddr), s.len}.str() +
           " of another policy towards the same destination; name a pool on one side of it";
  }
  return std::nullopt;
}
}  // namespace

CellCompile compile_cell(std::vector<const Policy*> cell_pols, uint8_t dlen, uint32_t dnet, const NatConfig& cfg) {
  CellCompile out;
  auto refuse = [&](const Policy& p, const std::string& why) {
    out.refused = "cannot mirror policy " + std::to_string(p.index) + " (" + p.describe() + "): " + why;
  };
  std::unordered_map<uint64_t, std::vector<const Policy*>> src_groups;
  LenMask src_lens = 0;
  for (const Policy* p : cell_pols) {
    src_groups[pkey(p->sel.src.len, p->sel.src.addr.v4_host() & v4_mask(p->sel.src.len))].push_back(p);
    src_lens |= LenMask(1) << p->sel.src.len;
  }
  out.src.reserve(src_groups.size());
  for (const auto& [skey, sgroup] : src_groups) {
    uint8_t slen = static_cast<uint8_t>(skey >> 32);
    uint32_t snet = static_cast<uint32_t>(skey);
    std::vector<const Policy*> cands;
    for_each_ancestor(src_groups, src_lens, slen, snet,
                      [&](const auto& g) { cands.insert(cands.end(), g.begin(), g.end()); });
    if (auto why = kernel_sequence(cands)) {
      refuse(*cands.front(), *why);
      return out;
    }
    spd_list l{};
    bool has_ipsec = false;
    for (const Policy* p : cands) {
      if (l.n == SPD_MAX_CANDIDATES) {
        refuse(*p, "more than " + std::to_string(SPD_MAX_CANDIDATES) + " conditional policies overlap for source " +
                       Prefix{Address::v4(htonl(snet)), slen}.str() + " and destination " +
                       Prefix{Address::v4(htonl(dnet)), dlen}.str());
        return out;
      }
      l.c[l.n++] = make_cand(*p);
      has_ipsec |= l.c[l.n - 1].verdict == SPD_V_IPSEC || l.c[l.n - 1].verdict == SPD_V_UNKNOWN;
      if (unconditional(l.c[l.n - 1])) break;
    }
    out.src.push_back(CellCompile::Src{slen, htonl(snet), l});
    if (unconditional(l.c[0]) && l.c[0].verdict == SPD_V_IPSEC) {
      out.cell.flags |= SPD_CELL_ALWAYS_COVERED;
    } else if (has_ipsec) {
      bool seen = false;
      for (size_t i : out.cover)
        seen |= std::memcmp(&out.src[i].list, &l, sizeof(l)) == 0;
      if (!seen) out.cover.push_back(out.src.size() - 1);
    }
  }
  if (out.cell.flags & SPD_CELL_ALWAYS_COVERED) {
    out.cover.clear();
  } else if (out.cover.size() > SPD_MAX_COVER) {
    refuse(*cell_pols.front(), "destination " + Prefix{Address::v4(htonl(dnet)), dlen}.str() +
                                   " is covered differently for more than " + std::to_string(SPD_MAX_COVER) +
                                   " source classes");
    return out;
  }
  out.cell.n_cover = static_cast<uint32_t>(out.cover.size());
  std::sort(cell_pols.begin(), cell_pols.end(), kernel_order);
  for (const Policy* p : cell_pols) {
    if (!p->is_ipsec() || unknown_condition(*p)) continue;
    for (const ImpliedNat& n : implied_nats(*p, cfg)) {
      if (n.kind == SPD_NAT_NONE) continue;
      spd_nat_target t = n.target(*p);
      if (!target_meets_cell(t, dlen, dnet)) continue;
      if (auto why = pool_divided(t, out.src)) {
        refuse(*p, *why);
        return out;
      }
      if (out.cell.n_nat == SPD_MAX_NAT) {
        refuse(*p, "more than " + std::to_string(SPD_MAX_NAT) + " translations (policies, [[nat]] rules and their " +
                       "destinations) cover destination " + Prefix{Address::v4(htonl(dnet)), dlen}.str());
        return out;
      }
      out.cell.nat[out.cell.n_nat++] = t;
    }
  }
  return out;
}

std::optional<std::string> mirror_refusal(const Policy& p) {
  if (p.type != PolicyType::Main)
    return "cannot mirror policy " + std::to_string(p.index) + " (" + p.describe() +
           "): sub-type policies are looked up first by the kernel and are not mirrored";
  return std::nullopt;
}

std::optional<std::string> unknown_condition(const Policy& p) {
  if (p.sel.ifindex != 0) return "a selector bound to a device is not known to the datapath";
  if ((p.sel.sport_mask || p.sel.dport_mask) && !proto_has_ports(p.sel.proto))
    return "ports (or ICMP type/code) on a protocol without transport ports";
  return std::nullopt;
}

std::string unknown_policy_text(const Policy& p, const std::string& why) {
  return "cannot mirror policy " + std::to_string(p.index) + " (" + p.describe() + ") exactly: " + why +
         "; cleartext to " + p.sel.dst.str() + (p.if_id ? " (if_id " + std::to_string(p.if_id) + ")" : "") +
         " that it could apply to fails closed (drop-spd-unrepresentable), the rest of the SPD is mirrored exactly";
}

bool compiled_kind(const Policy& p) { return p.dir == Dir::Out && p.sel.family == AF_INET; }
bool mark_can_match(const Policy& p) { return (p.mark_v & ~p.mark_m) == 0; }

CompiledSpd compile_spd(const std::vector<const Policy*>& ordered, const NatConfig& cfg, CompileIds* ids) {
  CompileIds local;
  if (!ids) ids = &local;
  CompiledSpd out;
  // Policies grouped by if_id (a flow only ever meets policies of its own if_id), then by
  // destination prefix.
  std::map<uint32_t, std::unordered_map<uint64_t, std::vector<const Policy*>>> by_ifid;
  std::map<uint32_t, LenMask> dst_lens;
  for (const Policy* p : ordered) {
    if (!compiled_kind(*p)) continue;
    if (auto why = mirror_refusal(*p)) {
      out.refused = why;
      return out;
    }
    if (!mark_can_match(*p)) continue;  // the kernel's mark test never passes
    if (auto why = unknown_condition(*p)) out.unknown.push_back(unknown_policy_text(*p, *why));
    // The kernel keeps a selector's host bits (10.0.247.255/8 and 10.0.0.0/8 are two policies)
    // but matches on the prefix only, like the LPM maps: group by the masked prefix, or the two
    // become separate cells of which the LPM keeps one (found by tests/fuzz/fuzz_xfrm_policy).
    by_ifid[p->if_id][pkey(p->sel.dst.len, p->sel.dst.addr.v4_host() & v4_mask(p->sel.dst.len))].push_back(p);
    dst_lens[p->if_id] |= LenMask(1) << p->sel.dst.len;
    out.policies++;
  }

  std::unordered_map<uint32_t, bool> emitted;
  for (const auto& [if_id, dst_groups] : by_ifid) {
    for (const auto& [dkey, dgroup] : dst_groups) {
      uint8_t dlen = static_cast<uint8_t>(dkey >> 32);
      uint32_t dnet = static_cast<uint32_t>(dkey);
      // The cell: every policy whose destination contains this prefix.
      std::vector<const Policy*> cell_pols;
      for_each_ancestor(dst_groups, dst_lens[if_id], dlen, dnet,
                        [&](const auto& g) { cell_pols.insert(cell_pols.end(), g.begin(), g.end()); });
      CellCompile cc = compile_cell(std::move(cell_pols), dlen, dnet, cfg);
      if (cc.refused) {
        out.refused = cc.refused;
        return out;
      }
      CompiledDst d{};
      d.if_id = if_id;
      d.len = dlen;
      d.daddr = htonl(dnet);
      d.cell = cc.cell;
      d.cell.cell = ids->cell(if_id, dlen, d.daddr);
      std::vector<uint32_t> list_ids;
      for (const auto& s : cc.src) {
        uint32_t id = ids->list(s.list);
        if (emitted.emplace(id, true).second) out.lists.emplace_back(id, s.list);
        list_ids.push_back(id);
        out.src.push_back(CompiledSrc{d.cell.cell, s.len, s.saddr, id});
      }
      for (size_t i = 0; i < cc.cover.size(); i++) d.cell.cover[i] = list_ids[cc.cover[i]];
      out.dst.push_back(d);
    }
  }
  ids->sweep();
  return out;
}

CompiledEvaluator::CompiledEvaluator(const CompiledSpd& c) {
  for (const auto& d : c.dst) dst_[{d.if_id, d.len, d.daddr}] = &d.cell;
  for (const auto& s : c.src) src_[{s.cell, s.len, s.saddr}] = s.list;
  for (const auto& [id, l] : c.lists) lists_[id] = &l;
}

const spd_cell* CompiledEvaluator::dst_cell(const Flow4& f) const {
  for (int l = 32; l >= 0; l--) {
    auto it = dst_.find({f.if_id, static_cast<uint8_t>(l), f.daddr & htonl(v4_mask(static_cast<uint8_t>(l)))});
    if (it != dst_.end()) return it->second;
  }
  return nullptr;
}

std::optional<CompiledVerdict> CompiledEvaluator::eval_list(uint32_t list, const Flow4& f) const {
  const spd_list& l = *lists_.at(list);
  for (uint32_t i = 0; i < l.n && i < SPD_MAX_CANDIDATES; i++)
    if (cand_matches(l.c[i], f)) return CompiledVerdict{l.c[i].policy_index, l.c[i].verdict};
  return std::nullopt;
}

std::optional<CompiledVerdict> CompiledEvaluator::lookup_in(const spd_cell& cell, const Flow4& f) const {
  for (int l = 32; l >= 0; l--) {
    auto it = src_.find({cell.cell, static_cast<uint8_t>(l), f.saddr & htonl(v4_mask(static_cast<uint8_t>(l)))});
    if (it != src_.end()) return eval_list(it->second, f);
  }
  return std::nullopt;
}

std::optional<CompiledVerdict> CompiledEvaluator::lookup(const Flow4& f) const {
  const spd_cell* cell = dst_cell(f);
  return cell ? lookup_in(*cell, f) : std::nullopt;
}

std::optional<spd_nat_target> CompiledEvaluator::nat_target(const Flow4& f) const {
  const spd_cell* cell = dst_cell(f);
  if (!cell) return std::nullopt;
  for (uint32_t i = 0; i < cell->n_nat && i < SPD_MAX_NAT; i++) {
    const spd_nat_target& t = cell->nat[i];
    if (!nat_eligible(t, f.saddr, f.daddr)) continue;
    Flow4 x = f;
    x.saddr = nat_translate(t, f.saddr);
    auto v = lookup_in(*cell, x);
    if (v && v->policy_index == t.policy_index) return t;
  }
  return std::nullopt;
}

CompiledCover CompiledEvaluator::out_covered(const Flow4& f) const {
  const spd_cell* cell = dst_cell(f);
  if (!cell) return CompiledCover::kNo;
  if (cell->flags & SPD_CELL_ALWAYS_COVERED) return CompiledCover::kIpsec;
  CompiledCover out = CompiledCover::kNo;
  for (uint32_t i = 0; i < cell->n_cover && i < SPD_MAX_COVER; i++) {
    auto v = eval_list(cell->cover[i], f);
    if (v && v->verdict == SPD_V_IPSEC) return CompiledCover::kIpsec;
    if (v && v->verdict == SPD_V_UNKNOWN) out = CompiledCover::kUnknown;
  }
  return out;
}

}  // namespace ipsnat::spd
