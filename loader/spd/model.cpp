#include "spd/model.h"

#include <algorithm>

namespace ipsnat::spd {

bool SpdModel::apply(const PolicyEvent& ev) {
  if (const auto* up = std::get_if<PolicyUpsert>(&ev)) {
    Policy p = up->policy;
    // An update replaces the policy with the same index, or with the same key (the kernel
    // keeps the index then); the replacement is linked anew, after every existing policy.
    auto same = by_index_.find(p.index);
    if (same == by_index_.end())
      same = std::find_if(by_index_.begin(), by_index_.end(),
                          [&](const auto& kv) { return kv.second.same_key(p); });
    if (same != by_index_.end()) {
      if (same->second.index == p.index) {
        Policy old = same->second;
        old.seq = 0;
        Policy cmp = p;
        cmp.seq = 0;
        if (old.sel == cmp.sel && old.dir == cmp.dir && old.action == cmp.action &&
            old.type == cmp.type && old.priority == cmp.priority && old.mark_v == cmp.mark_v &&
            old.mark_m == cmp.mark_m && old.if_id == cmp.if_id && old.tmpls == cmp.tmpls)
          return false;  // a dump repeating what we have
      }
      by_index_.erase(same);
    }
    p.seq = next_seq_++;
    by_index_[p.index] = std::move(p);
    return true;
  }
  if (const auto* del = std::get_if<PolicyDelete>(&ev)) {
    if (del->index != 0) return by_index_.erase(del->index) > 0;
    for (auto it = by_index_.begin(); it != by_index_.end(); ++it) {
      const Policy& p = it->second;
      if (p.dir == del->dir && p.type == del->type && p.sel == del->sel && p.if_id == del->if_id &&
          p.mark_m == del->mark_m && (p.mark_v & p.mark_m) == (del->mark_v & del->mark_m)) {
        by_index_.erase(it);
        return true;
      }
    }
    return false;
  }
  const auto& fl = std::get<PolicyFlush>(ev);
  size_t before = by_index_.size();
  std::erase_if(by_index_, [&](const auto& kv) { return kv.second.type == fl.type; });
  return before != by_index_.size();
}

std::vector<const Policy*> SpdModel::ordered() const {
  std::vector<const Policy*> v;
  v.reserve(by_index_.size());
  for (const auto& [i, p] : by_index_) v.push_back(&p);
  std::sort(v.begin(), v.end(), [](const Policy* a, const Policy* b) { return a->seq < b->seq; });
  return v;
}

}  // namespace ipsnat::spd
