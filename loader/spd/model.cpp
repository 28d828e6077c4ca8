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
    if (same != by_index_.end()) {
      // A dump listing what a notification received meanwhile already said: that one is newer.
      if (from == From::Dump && same->second.index == p.index && same_content(same->second, p)) return false;
      changes_.indices.push_back(same->second.index);
      by_key_.erase(key_of(same->second));
      by_index_.erase(same);
    }
    p.seq = from == From::Dump ? --oldest_seq_ : ++newest_seq_;
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
    by_key_.erase(key_of(it->second));
    by_index_.erase(it);
    return true;
  }
  const auto& fl = std::get<PolicyFlush>(ev);
  size_t before = by_index_.size();
  for (auto it = by_index_.begin(); it != by_index_.end();) {
    if (it->second.type == fl.type) {
      changes_.indices.push_back(it->first);
      by_key_.erase(key_of(it->second));
      it = by_index_.erase(it);
    } else {
      ++it;
    }
  }
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
