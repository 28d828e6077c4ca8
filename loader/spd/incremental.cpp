#include "spd/incremental.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <set>
#include <tuple>

namespace ipsnat::spd {

namespace {
using Dirty = std::vector<std::pair<uint32_t, std::pair<uint32_t, uint8_t>>>;  // (if_id, (net, len))

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}
}  // namespace

void SpdDelta::merge(const SpdDelta& o) {
  dst.insert(dst.end(), o.dst.begin(), o.dst.end());
  src.insert(src.end(), o.src.begin(), o.src.end());
  lists.insert(lists.end(), o.lists.begin(), o.lists.end());
}

void SpdDelta::dedupe() {
  auto one = [](auto& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  one(dst), one(src), one(lists);
}

uint32_t IncrementalSpd::take_id(uint32_t& next, std::vector<uint32_t>& free) {
  if (free.empty()) return next++;
  uint32_t id = free.back();
  free.pop_back();
  return id;
}

namespace {
// A hash of the candidates in use (the rest of an interned list is zero), 4 bytes at a time.
uint64_t list_hash(const spd_list& l) {
  static_assert(offsetof(spd_list, c) % 4 == 0 && sizeof(spd_cand) % 4 == 0);
  size_t words = (offsetof(spd_list, c) + sizeof(spd_cand) * std::min<uint32_t>(l.n, SPD_MAX_CANDIDATES)) / 4;
  const auto* b = reinterpret_cast<const char*>(&l);
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < words; i++) {
    uint32_t w;
    std::memcpy(&w, b + 4 * i, 4);
    h = mix(h ^ w);
  }
  return h;
}
}  // namespace

uint32_t IncrementalSpd::acquire_list(const spd_list& l) {
  uint64_t h = list_hash(l);
  auto [head, added] = list_ids_.try_emplace(h, kNoList);
  for (uint32_t id = head->second; id != kNoList; id = lists_[id].next_same) {
    if (std::memcmp(&lists_[id].list, &l, sizeof(l)) == 0) {
      lists_[id].refs++;
      return id;
    }
  }
  uint32_t id = take_id(next_list_, free_lists_);
  if (id >= lists_.size()) lists_.resize(id + 1);
  lists_[id] = ListRec{l, 1, h, head->second};
  head->second = id;
  delta_.lists.push_back(id);
  return id;
}

void IncrementalSpd::release_list(uint32_t id) {
  ListRec& rec = lists_[id];
  if (--rec.refs != 0) return;
  auto head = list_ids_.find(rec.hash);
  if (head->second == id) {
    if (rec.next_same == kNoList)
      list_ids_.erase(head);
    else
      head->second = rec.next_same;
  } else {
    uint32_t prev = head->second;
    while (lists_[prev].next_same != id) prev = lists_[prev].next_same;
    lists_[prev].next_same = rec.next_same;
  }
  rec.next_same = kNoList;
  free_lists_.push_back(id);
  delta_.lists.push_back(id);
}

IncrementalSpd::Cell& IncrementalSpd::cell_at(uint32_t if_id, uint32_t net, uint8_t len) {
  auto [it, added] = cells_[if_id].try_emplace({net, len});
  if (added) {
    auto& counts = len_counts_[if_id];
    if (!counts[len]++) len_masks_[if_id] |= uint64_t(1) << len;
  }
  return it->second;
}

void IncrementalSpd::remove_policy(uint32_t index, Dirty& dirty) {
  policy_refusals_.erase(index);
  policy_unknown_.erase(index);
  auto it = pols_.find(index);
  if (it == pols_.end()) return;
  const Policy& p = it->second;
  uint32_t net = p.sel.dst.addr.v4_host() & v4_mask(p.sel.dst.len);  // host bits: see compile_spd
  auto& cells = cells_[p.if_id];
  auto c = cells.find({net, p.sel.dst.len});
  auto& own = c->second.own;
  own.erase(std::find(own.begin(), own.end(), index));
  dirty.push_back({p.if_id, {net, p.sel.dst.len}});
  pols_.erase(it);
}

void IncrementalSpd::add_policy(const Policy& p, Dirty& dirty) {
  if (!compiled_kind(p)) return;
  if (auto why = mirror_refusal(p)) {
    policy_refusals_[p.index] = *why;
    return;
  }
  if (!mark_can_match(p)) return;  // the kernel's mark test never passes
  if (auto why = unknown_condition(p)) policy_unknown_[p.index] = unknown_policy_text(p, *why);
  uint32_t net = p.sel.dst.addr.v4_host() & v4_mask(p.sel.dst.len);  // host bits: see compile_spd
  cell_at(p.if_id, net, p.sel.dst.len).own.push_back(p.index);
  dirty.push_back({p.if_id, {net, p.sel.dst.len}});
  pols_[p.index] = p;
}

void IncrementalSpd::update(const SpdModel& model, const std::vector<uint32_t>& touched) {
  Dirty dirty;
  for (uint32_t index : touched) {
    remove_policy(index, dirty);
    auto it = model.by_index().find(index);
    if (it != model.by_index().end()) add_policy(it->second, dirty);
  }
  settle(dirty);
}

void IncrementalSpd::rebuild(const SpdModel& model) {
  Dirty unused;
  pols_.clear();
  policy_refusals_.clear();
  policy_unknown_.clear();
  for (auto& [if_id, cells] : cells_)
    for (auto& [net, c] : cells) c.own.clear();
  pols_.reserve(model.size());
  list_ids_.reserve(model.size());
  for (const auto& [index, p] : model.by_index()) add_policy(p, unused);
  // Every cell is dirty: each one recompiled (or dropped) once, no range scans.
  for (auto& [if_id, cells] : cells_)
    for (auto it = cells.begin(); it != cells.end();) {
      auto next = std::next(it);
      if (it->second.own.empty())
        drop(if_id, cells, it);
      else
        recompile(if_id, cells, it);
      it = next;
    }
  for (auto it = cells_.begin(); it != cells_.end();) it = it->second.empty() ? cells_.erase(it) : std::next(it);
}

// Recompiles every cell under a dirty prefix (the cells whose policy set may have changed) and
// drops the cells left without policies of their own.
void IncrementalSpd::settle(const Dirty& dirty_in) {
  // Distinct dirty prefixes, each range-scanned once (many policies share a destination).
  Dirty dirty = dirty_in;
  std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  std::set<std::tuple<uint32_t, uint32_t, uint8_t>> todo;
  for (const auto& [if_id, net] : dirty) {
    auto& cells = cells_[if_id];
    auto [dnet, dlen] = net;
    uint32_t last = dnet | ~v4_mask(dlen);
    for (auto it = cells.lower_bound({dnet, 0}); it != cells.end() && it->first.first <= last; ++it) {
      if (it->first.second >= dlen) todo.insert({if_id, it->first.first, it->first.second});
    }
  }
  // Order does not matter: every cell's own policies are already current.
  for (const auto& [if_id, net, len] : todo) {
    auto& cells = cells_[if_id];
    auto it = cells.find({net, len});
    if (it == cells.end()) continue;
    if (it->second.own.empty())
      drop(if_id, cells, it);
    else
      recompile(if_id, cells, it);
  }
  for (auto it = cells_.begin(); it != cells_.end();) it = it->second.empty() ? cells_.erase(it) : std::next(it);
}

void IncrementalSpd::drop(uint32_t if_id, CellMap& cells, CellMap::iterator it) {
  Cell& c = it->second;
  cell_refusals_.erase({if_id, it->first.second, it->first.first});
  if (c.compiled) {
    delta_.dst.push_back(DstKey{if_id, it->first.second, htonl(it->first.first)});
    for (const auto& [k, list] : c.src) {
      delta_.src.push_back(k);
      release_list(list);
    }
  }
  if (c.has_id) {
    free_cells_.push_back(c.id);
    cell_by_id_[c.id] = nullptr;
  }
  uint8_t len = it->first.second;
  if (!--len_counts_[if_id][len]) len_masks_[if_id] &= ~(uint64_t(1) << len);
  cells.erase(it);
}

void IncrementalSpd::recompile(uint32_t if_id, CellMap& cells, CellMap::iterator it) {
  auto [dnet, dlen] = it->first;
  Cell& c = it->second;
  std::vector<const Policy*> cell_pols;
  // The cell's policies: those of every ancestor cell (and its own), looked up only at the
  // prefix lengths some cell of this if_id has.
  uint64_t lens = len_masks_[if_id] & ((uint64_t(2) << dlen) - 1);
  for (; lens; lens &= lens - 1) {
    auto l = static_cast<uint8_t>(__builtin_ctzll(lens));
    auto a = l == dlen ? it : cells.find({dnet & v4_mask(l), l});
    if (a == cells.end()) continue;
    for (uint32_t index : a->second.own) cell_pols.push_back(&pols_.at(index));
  }
  CellCompile cc = compile_cell(std::move(cell_pols), dlen, dnet, cfg_);
  auto refusal_key = std::make_tuple(if_id, dlen, dnet);
  if (cc.refused) {
    // Keep what the cell held: the maps are not written while a refusal stands.
    cell_refusals_[refusal_key] = *cc.refused;
    return;
  }
  if (!cell_refusals_.empty()) cell_refusals_.erase(refusal_key);
  if (!c.has_id) {
    c.id = take_id(next_cell_, free_cells_);
    c.has_id = true;
    if (c.id >= cell_by_id_.size()) cell_by_id_.resize(c.id + 1);
    cell_by_id_[c.id] = &c;
  }
  // New lists are acquired before the old ones are released, so unchanged lists keep their ids.
  std::vector<std::pair<SrcKey, uint32_t>> src;
  src.reserve(cc.src.size());
  for (const auto& s : cc.src) src.emplace_back(SrcKey{c.id, s.len, s.saddr}, acquire_list(s.list));
  spd_cell value = cc.cell;
  value.cell = c.id;
  for (size_t i = 0; i < cc.cover.size(); i++) value.cover[i] = src[cc.cover[i]].second;

  // The source entries that differ: both sides sorted by key, then merged.
  auto by_key = [](const auto& a, const auto& b) {
    return std::tie(a.first.len, a.first.saddr) < std::tie(b.first.len, b.first.saddr);
  };
  std::sort(src.begin(), src.end(), by_key);
  auto old = c.src.begin(), now = src.begin();
  while (old != c.src.end() || now != src.end()) {
    if (now == src.end() || (old != c.src.end() && by_key(*old, *now))) {
      delta_.src.push_back((old++)->first);  // gone
    } else if (old == c.src.end() || by_key(*now, *old)) {
      delta_.src.push_back((now++)->first);  // new
    } else {
      if (old->second != now->second) delta_.src.push_back(now->first);
      ++old, ++now;
    }
  }
  for (const auto& [k, list] : c.src) release_list(list);
  if (!c.compiled || std::memcmp(&c.value, &value, sizeof(value)) != 0)
    delta_.dst.push_back(DstKey{if_id, dlen, htonl(dnet)});
  c.value = value;
  c.src = std::move(src);
  c.compiled = true;
}

std::optional<std::string> IncrementalSpd::refused() const {
  if (!policy_refusals_.empty()) return policy_refusals_.begin()->second;
  if (!cell_refusals_.empty()) return cell_refusals_.begin()->second;
  return std::nullopt;
}

std::vector<std::string> IncrementalSpd::unknown() const {
  std::vector<std::string> out;
  for (const auto& [index, text] : policy_unknown_) out.push_back(text);
  return out;
}

SpdDelta IncrementalSpd::take_delta() {
  SpdDelta d = std::move(delta_);
  delta_ = SpdDelta{};
  return d;
}

const spd_cell* IncrementalSpd::dst(const DstKey& k) const {
  auto ci = cells_.find(k.if_id);
  if (ci == cells_.end()) return nullptr;
  auto it = ci->second.find({ntohl(k.daddr), k.len});
  return it != ci->second.end() && it->second.compiled ? &it->second.value : nullptr;
}

std::optional<uint32_t> IncrementalSpd::src(const SrcKey& k) const {
  if (k.cell >= cell_by_id_.size() || !cell_by_id_[k.cell]) return std::nullopt;
  const auto& src = cell_by_id_[k.cell]->src;  // sorted by (len, saddr): see recompile()
  auto it = std::lower_bound(src.begin(), src.end(), k, [](const auto& e, const SrcKey& key) {
    return std::tie(e.first.len, e.first.saddr) < std::tie(key.len, key.saddr);
  });
  if (it == src.end() || !(it->first == k)) return std::nullopt;
  return it->second;
}

const spd_list* IncrementalSpd::list(uint32_t id) const {
  return id < lists_.size() && lists_[id].refs ? &lists_[id].list : nullptr;
}

IncrementalSpd::EntryCounts IncrementalSpd::entry_counts() const {
  EntryCounts n;
  for (const auto& [if_id, cells] : cells_)
    for (const auto& [net, c] : cells) {
      if (!c.compiled) continue;
      n.dst++;
      n.src += static_cast<uint32_t>(c.src.size());
    }
  for (const auto& l : lists_) n.lists += l.refs ? 1 : 0;
  return n;
}

CompiledSpd IncrementalSpd::snapshot() const {
  CompiledSpd out;
  out.policies = pols_.size();
  out.refused = refused();
  out.unknown = unknown();
  for (const auto& [if_id, cells] : cells_)
    for (const auto& [net, c] : cells) {
      if (!c.compiled) continue;
      out.dst.push_back(CompiledDst{if_id, net.second, htonl(net.first), c.value});
      for (const auto& [k, list] : c.src) out.src.push_back(CompiledSrc{k.cell, k.len, k.saddr, list});
    }
  for (uint32_t id = 0; id < lists_.size(); id++)
    if (lists_[id].refs) out.lists.emplace_back(id, lists_[id].list);
  return out;
}

}  // namespace ipsnat::spd
