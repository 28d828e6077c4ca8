#include "pins/ct_gc.h"

#include <cstring>

namespace ipsnat::pins {
namespace {

bool points_to(const ct::Entry& e, const ipsnat_ct_key& partner) {
  ipsnat_ct_key p = ct_partner_key(&e.key, &e.value);
  return std::memcmp(&p, &partner, sizeof(p)) == 0;
}

}  // namespace

GcResult CtGc::sweep(uint64_t now_ns) {
  ct::Timeouts t = ct::Timeouts::from_config(maps_.config());
  Removal r = remove_if([&](const ct::Flow& f) { return ct::expired(f, now_ns, t); });
  return GcResult{r.flows, r.removed, r.entries_deleted};
}

Removal CtGc::remove_if(const std::function<bool(const ct::Flow&)>& doomed) {
  Removal r;
  for (const ct::Flow& snapshot : ct::pair_entries(maps_.entries())) {
    ++r.flows;
    if (!doomed(snapshot)) continue;
    // Re-read right before deleting: a packet may have refreshed the flow since the dump.
    ct::Flow f;
    ipsnat_ct_key ok = snapshot.orig_key(), rk = snapshot.reply_key();
    if (auto e = maps_.lookup(ok)) f.orig = ct::Entry{ok, *e};
    if (auto e = maps_.lookup(rk)) f.reply = ct::Entry{rk, *e};
    // Of a half flow, the derived partner key may by now belong to another flow (its port
    // was claimed again): never delete an entry that does not point back.
    if (f.orig && f.reply && !points_to(*f.orig, rk)) f.orig.reset();
    if (f.orig && f.reply && !points_to(*f.reply, ok)) f.reply.reset();
    if (!f.orig && !f.reply) continue;
    if (!doomed(f)) continue;
    ++r.removed;
    if (f.reply && maps_.erase(rk)) ++r.entries_deleted;
    if (f.orig && maps_.erase(ok)) ++r.entries_deleted;
    // A REPLY alone may be a flow the datapath is creating (it inserts REPLY, then ORIG): an
    // ORIG that arrived after the read would outlive its REPLY, refreshed by its own packets.
    if (!f.orig) {
      auto late = maps_.lookup(ok);
      if (late && points_to(ct::Entry{ok, *late}, rk) && maps_.erase(ok)) ++r.entries_deleted;
    }
  }
  return r;
}

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
