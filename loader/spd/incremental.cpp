#include "spd/incremental.h"

#include <algorithm>
#include <cstring>
#include <set>

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

size_t KeyHash::operator()(const DstKey& k) const {
  return mix((uint64_t(k.if_id) << 40) ^ (uint64_t(k.len) << 32) ^ k.daddr);
}
size_t KeyHash::operator()(const SrcKey& k) const {
  return mix((uint64_t(k.cell) << 40) ^ (uint64_t(k.len) << 32) ^ k.saddr);
}

void SpdDelta::merge(const SpdDelta& o) {
  dst.insert(o.dst.begin(), o.dst.end());
  src.insert(o.src.begin(), o.src.end());
  lists.insert(o.lists.begin(), o.lists.end());
}

uint32_t IncrementalSpd::take_id(uint32_t& next, std::vector<uint32_t>& free) {
  if (free.empty()) return next++;
  uint32_t id = free.back();
  free.pop_back();
  return id;
}

uint32_t IncrementalSpd::acquire_list(const spd_list& l) {
  std::string bytes(reinterpret_cast<const char*>(&l), sizeof(l));
  auto [it, added] = list_ids_.try_emplace(std::move(bytes), 0);
  if (added) {
    it->second = take_id(next_list_, free_lists_);
    lists_[it->second] = ListRec{l, 0};
    delta_.lists.insert(it->second);
  }
  lists_[it->second].refs++;
  return it->second;
}

void IncrementalSpd::release_list(uint32_t id) {
  auto it = lists_.find(id);
  if (--it->second.refs != 0) return;
  list_ids_.erase(std::string(reinterpret_cast<const char*>(&it->second.list), sizeof(spd_list)));
  lists_.erase(it);
  free_lists_.push_back(id);
  delta_.lists.insert(id);
}

void IncrementalSpd::remove_policy(uint32_t index, Dirty& dirty) {
  policy_refusals_.erase(index);
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
  uint32_t net = p.sel.dst.addr.v4_host() & v4_mask(p.sel.dst.len);  // host bits: see compile_spd
  cells_[p.if_id][{net, p.sel.dst.len}].own.push_back(p.index);
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
  settle(dirty, true);
}

void IncrementalSpd::rebuild(const SpdModel& model) {
  Dirty dirty;
  pols_.clear();
  policy_refusals_.clear();
  for (auto& [if_id, cells] : cells_)
    for (auto& [net, c] : cells) {
      c.own.clear();
      dirty.push_back({if_id, net});
    }
  for (const auto& [index, p] : model.by_index()) add_policy(p, dirty);
  // Every cell is dirty: one entry per cell, no range scans.
  dirty.clear();
  for (auto& [if_id, cells] : cells_)
    for (auto& [net, c] : cells) dirty.push_back({if_id, net});
  settle(dirty, false);
}

// Recompiles every cell under a dirty prefix (the cells whose policy set may have changed) and
// drops the cells left without policies of their own.
void IncrementalSpd::settle(const Dirty& dirty_in, bool with_descendants) {
  // Distinct dirty prefixes, each range-scanned once (many policies share a destination).
  Dirty dirty = dirty_in;
  std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  std::set<std::tuple<uint32_t, uint32_t, uint8_t>> todo;
  for (const auto& [if_id, net] : dirty) {
    auto& cells = cells_[if_id];
    auto [dnet, dlen] = net;
    uint32_t last = dnet | ~v4_mask(dlen);
    if (!with_descendants) {
      todo.insert({if_id, dnet, dlen});
      continue;
    }
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
    delta_.dst.insert(DstKey{if_id, it->first.second, htonl(it->first.first)});
    for (const auto& [k, list] : c.src) {
      delta_.src.insert(k);
      src_index_.erase(k);
      release_list(list);
    }
  }
  if (c.has_id) free_cells_.push_back(c.id);
  cells.erase(it);
}

void IncrementalSpd::recompile(uint32_t if_id, CellMap& cells, CellMap::iterator it) {
  auto [dnet, dlen] = it->first;
  Cell& c = it->second;
  std::vector<const Policy*> cell_pols;
  for (int l = 0; l <= dlen; l++) {
    auto a = cells.find({dnet & v4_mask(static_cast<uint8_t>(l)), static_cast<uint8_t>(l)});
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
  cell_refusals_.erase(refusal_key);
  if (!c.has_id) {
    c.id = take_id(next_cell_, free_cells_);
    c.has_id = true;
  }
  // New lists are acquired before the old ones are released, so unchanged lists keep their ids.
  std::vector<std::pair<SrcKey, uint32_t>> src;
  src.reserve(cc.src.size());
  for (const auto& s : cc.src) src.emplace_back(SrcKey{c.id, s.len, s.saddr}, acquire_list(s.list));
  spd_cell value = cc.cell;
  value.cell = c.id;
  for (size_t i = 0; i < cc.cover.size(); i++) value.cover[i] = src[cc.cover[i]].second;

  std::unordered_map<SrcKey, uint32_t, KeyHash> old(c.src.begin(), c.src.end());
  for (const auto& [k, list] : src) {
    auto o = old.find(k);
    if (o == old.end() || o->second != list) {
      delta_.src.insert(k);
      src_index_[k] = list;
    }
    if (o != old.end()) old.erase(o);
  }
  for (const auto& [k, list] : old) {
    delta_.src.insert(k);
    src_index_.erase(k);
  }
  for (const auto& [k, list] : c.src) release_list(list);
  if (!c.compiled || std::memcmp(&c.value, &value, sizeof(value)) != 0)
    delta_.dst.insert(DstKey{if_id, dlen, htonl(dnet)});
  c.value = value;
  c.src = std::move(src);
  c.compiled = true;
}

std::optional<std::string> IncrementalSpd::refused() const {
  if (!policy_refusals_.empty()) return policy_refusals_.begin()->second;
  if (!cell_refusals_.empty()) return cell_refusals_.begin()->second;
  return std::nullopt;
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
  auto it = src_index_.find(k);
  if (it == src_index_.end()) return std::nullopt;
  return it->second;
}

const spd_list* IncrementalSpd::list(uint32_t id) const {
  auto it = lists_.find(id);
  return it == lists_.end() ? nullptr : &it->second.list;
}

IncrementalSpd::EntryCounts IncrementalSpd::entry_counts() const {
  EntryCounts n;
  for (const auto& [if_id, cells] : cells_)
    for (const auto& [net, c] : cells) n.dst += c.compiled ? 1 : 0;
  n.src = static_cast<uint32_t>(src_index_.size());
  n.lists = static_cast<uint32_t>(lists_.size());
  return n;
}

CompiledSpd IncrementalSpd::snapshot() const {
  CompiledSpd out;
  out.policies = pols_.size();
  out.refused = refused();
  for (const auto& [if_id, cells] : cells_)
    for (const auto& [net, c] : cells) {
      if (!c.compiled) continue;
      out.dst.push_back(CompiledDst{if_id, net.second, htonl(net.first), c.value});
      for (const auto& [k, list] : c.src) out.src.push_back(CompiledSrc{k.cell, k.len, k.saddr, list});
    }
  for (const auto& [id, rec] : lists_) out.lists.emplace_back(id, rec.list);
  return out;
}

}  // namespace ipsnat::spd
