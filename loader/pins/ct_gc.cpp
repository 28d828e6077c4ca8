#include "pins/ct_gc.h"

#include <cstring>

namespace ipsnat::pins {
namespace {

// Whether entry e's partner key is `partner` (the partner points back).
template <class Family>
bool points_to(const typename Family::Entry& e, const typename Family::Key& partner) {
  typename Family::Key p = Family::partner_key(e);
  return std::memcmp(&p, &partner, sizeof(p)) == 0;
}

}  // namespace

GcResult& GcResult::operator+=(const GcResult& o) {
  flows += o.flows;
  removed += o.removed;
  entries_deleted += o.entries_deleted;
  return *this;
}

template <class Family>
GcResult CtTableGc<Family>::sweep(uint64_t now_ns, const ct::Timeouts& t) {
  return remove_if([&](const Flow& f) { return Family::expired(f, now_ns, t); });
}

template <class Family>
GcResult CtTableGc<Family>::remove_if(const std::function<bool(const Flow&)>& doomed) {
  using Entry = typename Family::Entry;
  GcResult r;
  for (const Flow& snapshot : Family::pair(table_.entries())) {
    ++r.flows;
    if (!doomed(snapshot)) continue;
    // Re-read right before deleting: a packet may have refreshed the flow since the dump.
    Flow f;
    typename Family::Key ok = snapshot.orig_key(), rk = snapshot.reply_key();
    if (auto e = table_.lookup(ok)) f.orig = Entry{ok, *e};
    if (auto e = table_.lookup(rk)) f.reply = Entry{rk, *e};
    // Of a half flow, the derived partner key may by now belong to another flow (its port
    // was claimed again): never delete an entry that does not point back.
    if (f.orig && f.reply && !points_to<Family>(*f.orig, rk)) f.orig.reset();
    if (f.orig && f.reply && !points_to<Family>(*f.reply, ok)) f.reply.reset();
    if (!f.orig && !f.reply) continue;
    if (!doomed(f)) continue;
    ++r.removed;
    if (f.reply && table_.erase(rk)) ++r.entries_deleted;
    if (f.orig && table_.erase(ok)) ++r.entries_deleted;
    // A REPLY alone may be a flow the datapath is creating (it inserts REPLY, then ORIG, in both
    // tables): an ORIG that arrived after the read would outlive its REPLY, refreshed by its own
    // packets.
    if (!f.orig) {
      auto late = table_.lookup(ok);
      if (late && points_to<Family>(Entry{ok, *late}, rk) && table_.erase(ok)) ++r.entries_deleted;
    }
  }
  return r;
}

template class CtTableGc<Ct4Family>;
template class CtTableGc<Ct6Family>;

GcResult CtGc::sweep(uint64_t now_ns) { return sweep(now_ns, ct::Timeouts::from_config(maps_.config())); }

bool GcPacer::due(uint64_t now_ns, uint64_t ct_full_drops) {
  bool refused = drops_seen_ && ct_full_drops != seen_drops_;
  uint64_t since = now_ns - last_sweep_ns_;
  bool go = !swept_ || since >= interval_ns_ || ((refused || near_full_) && since >= min_gap_ns_);
  // A refusal seen too soon after a sweep stays pending until the sweep it calls for.
  if (go || !drops_seen_) seen_drops_ = ct_full_drops;
  drops_seen_ = true;
  return go;
}

void GcPacer::swept(uint64_t now_ns, uint64_t entries, uint64_t max_entries) {
  swept_ = true;
  last_sweep_ns_ = now_ns;
  near_full_ = max_entries && entries * 8 >= max_entries * 7;
}

}  // namespace ipsnat::pins
