#include "spd/model.h"

#include <algorithm>
#include <cstring>

namespace ipsnat::spd {

SpdModel::Key SpdModel::key_of(const Policy& p) {
  Key k{};
  size_t at = 0;
  auto put = [&k, &at](const auto& v) {
    std::memcpy(k.data() + at, &v, sizeof(v));
    at += sizeof(v);
  };
  const Selector& s = p.sel;
  put(p.dir), put(p.type), put(s.family), put(s.src.addr.bytes), put(s.src.len), put(s.dst.addr.bytes);
  put(s.dst.len), put(s.proto), put(s.sport), put(s.sport_mask), put(s.dport), put(s.dport_mask);
  put(s.ifindex), put(p.if_id), put(p.mark_m);
  uint32_t mv = p.mark_v & p.mark_m;
  put(mv);
  return k;
}
// What key_of() puts in a Key: it must fit.
static_assert(sizeof(Dir) + sizeof(PolicyType) + sizeof(Selector::family) + 2 * (sizeof(Address::bytes) + 1) + 1 +
                  4 * sizeof(uint16_t) + sizeof(Selector::ifindex) + 3 * sizeof(uint32_t) <=
              sizeof(SpdModel::Key));

namespace {
bool same_content(const Policy& a, const Policy& b) {
  return a.sel == b.sel && a.dir == b.dir && a.action == b.action && a.type == b.type && a.priority == b.priority &&
         a.mark_v == b.mark_v && a.mark_m == b.mark_m && a.if_id == b.if_id && a.tmpls == b.tmpls;
}
}  // namespace

bool SpdModel::apply(const PolicyEvent& ev, From from) {
  if (const auto* up = std::get_if<PolicyUpsert>(&ev)) {
    Policy p = up->policy;
    // An update replaces the policy with the same index, or with the same key (the kernel
    // keeps the index then). Replaced or new, it is the newest policy (xfrm_policy_insert links
    // it at the head with the next `pos`), also when nothing else changed.
    auto same = by_index_.find(p.index);
    if (same == by_index_.end()) {
      auto k = by_key_.find(key_of(p));
      if (k != by_key_.end()) same = by_index_.find(k->second);
    }
    p.place = 0;
    p.place_unknown = from == From::Dump;
    if (same != by_index_.end()) {
      // A dump listing what a notification received meanwhile already said: that one is newer.
      if (from == From::Dump && same->second.index == p.index && same_content(same->second, p)) return false;
      // xfrm_policy_insert_list() links the new policy right before the one it replaces when
      // the priority stays: the same place in the same list.
      if (from == From::Event && same->second.priority == p.priority && same->second.same_key(p)) {
        p.place = same->second.list_place();
        p.place_unknown = same->second.place_unknown;
      }
    }
    // Before the replaced policy goes: the kernel links the new one while the old one still
    // holds its node.
    if (from == From::Event && p.place == 0) note_possible_merge(p);
    if (same != by_index_.end()) {
      changes_.indices.push_back(same->second.index);
      forget(same);
    }
    p.seq = from == From::Dump ? --oldest_seq_ : ++newest_seq_;
    if (p.place) kept_places_++;
    changes_.indices.push_back(p.index);
    by_key_[key_of(p)] = p.index;
    by_index_[p.index] = std::move(p);
    return true;
  }
  if (const auto* del = std::get_if<PolicyDelete>(&ev)) {
    auto it = by_index_.end();
    if (del->index != 0) {
      it = by_index_.find(del->index);
    } else {
      Policy probe;
      probe.dir = del->dir, probe.type = del->type, probe.sel = del->sel, probe.if_id = del->if_id;
      probe.mark_v = del->mark_v, probe.mark_m = del->mark_m;
      auto k = by_key_.find(key_of(probe));
      if (k != by_key_.end()) it = by_index_.find(k->second);
    }
    if (it == by_index_.end()) return false;
    changes_.indices.push_back(it->first);
    forget(it);
    return true;
  }
  const auto& fl = std::get<PolicyFlush>(ev);
  size_t before = by_index_.size();
  for (auto it = by_index_.begin(); it != by_index_.end();) {
    if (it->second.type == fl.type) {
      changes_.indices.push_back(it->first);
      it = forget(it);
    } else {
      ++it;
    }
  }
  return before != by_index_.size();
}

std::map<uint32_t, Policy>::iterator SpdModel::forget(std::map<uint32_t, Policy>::iterator it) {
  if (it->second.place) kept_places_--;
  by_key_.erase(key_of(it->second));
  return by_index_.erase(it);
}

namespace {
bool covers(const Prefix& outer, const Prefix& inner) { return outer.len <= inner.len && outer.contains(inner.addr); }
bool same_bin(const Policy& a, const Policy& b) {
  return a.dir == b.dir && a.type == b.type && a.sel.family == b.sel.family && a.if_id == b.if_id;
}
}  // namespace

// A new policy whose prefix no node of its tree holds yet makes the kernel widen a node to that
// prefix (xfrm_policy_inexact_insert_node()): the nodes inside it merge into one, whose list
// keeps its order while the others' policies are re-sorted by priority and age
// (xfrm_policy_inexact_list_reinsert()). Which node keeps its list depends on the red-black
// tree's shape, and whether a node exists on deletes the notifications do not tell apart
// (by index or by selector). So a kept place (an order other than the age order) inside the
// new prefix becomes unknown. A node holding an existing policy whose prefix contains the new
// one's contains it too: no merge then.
void SpdModel::note_possible_merge(const Policy& p) {
  if (kept_places_ == 0) return;  // every list is in age order: a re-sort changes nothing
  const KernelList kind = kernel_list(p);
  if (kind == KernelList::Exact || kind == KernelList::Any) return;
  const bool in_src_tree = kind == KernelList::Src;
  bool dst_node = false, src_node = false;  // a node of the tree (level) already holds p's prefix
  for (const auto& [i, q] : by_index_) {
    if (!same_bin(p, q)) continue;
    KernelList k = kernel_list(q);
    if (in_src_tree) {
      src_node |= k == KernelList::Src && covers(q.sel.src, p.sel.src);
    } else if (k == KernelList::Dst || k == KernelList::Both) {
      dst_node |= covers(q.sel.dst, p.sel.dst);
      src_node |= k == KernelList::Both && (covers(q.sel.dst, p.sel.dst) || covers(p.sel.dst, q.sel.dst)) &&
                  covers(q.sel.src, p.sel.src);
    }
  }
  if (in_src_tree ? src_node : dst_node && (kind == KernelList::Dst || src_node)) return;
  // The policies of the nodes that may merge: their lists may be re-sorted.
  std::vector<Policy*> moved;
  for (auto& [i, q] : by_index_) {
    if (!same_bin(p, q)) continue;
    KernelList k = kernel_list(q);
    if (in_src_tree ? k == KernelList::Src && covers(p.sel.src, q.sel.src)
                    : (k == KernelList::Dst || k == KernelList::Both) &&
                          ((!dst_node && covers(p.sel.dst, q.sel.dst)) ||
                           (kind == KernelList::Both && k == KernelList::Both && !src_node && covers(p.sel.src, q.sel.src))))
      moved.push_back(&q);
  }
  for (Policy* a : moved)
    for (Policy* b : moved)
      if (a->priority == b->priority && kernel_list(*a) == kernel_list(*b) && a->seq < b->seq &&
          a->list_place() > b->list_place() && may_match_together(*a, *b))
        for (Policy* x : {a, b})
          if (!x->place_unknown) {
            x->place_unknown = true;
            changes_.indices.push_back(x->index);  // its cells compile differently now
          }
}

std::vector<const Policy*> SpdModel::ordered() const {
  std::vector<const Policy*> v;
  v.reserve(by_index_.size());
  for (const auto& [i, p] : by_index_) v.push_back(&p);
  std::sort(v.begin(), v.end(), [](const Policy* a, const Policy* b) { return a->seq < b->seq; });
  return v;
}

}  // namespace ipsnat::spd
