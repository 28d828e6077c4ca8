#pragma once
// Userspace garbage collection of the conntrack tables (IPv4 and IPv6 alike). The datapath never
// deletes; a sweep deletes both entries of every expired flow together (REPLY first: from then on
// no reply is translated and the NAT port is free; then ORIG), so a flow is never half-evicted the
// way an LRU map would do it. See docs/datapath.md.
//
//   CtGc(maps).sweep(now);                                     // IPv4, by the timeouts in ipsnat_cfg
//   if (auto ct6 = Ct6Map::open_pinned(root)) Ct6Gc(*ct6).sweep(now, timeouts);
#include <cstddef>
#include <cstdint>
#include <functional>

#include "pins/ct_map.h"

namespace ipsnat::pins {

// What a pass over a table did: a sweep's removed flows are the expired ones, remove_if's the ones
// its predicate selected.
struct GcResult {
  size_t flows = 0;            // flows seen
  size_t removed = 0;          // flows deleted
  size_t entries_deleted = 0;  // map entries deleted
  GcResult& operator+=(const GcResult& o);
};

// When to sweep: every `interval`, and sooner — at most once per `min_gap` — while the table is
// under pressure (a packet was refused as drop-ct-full since the last look, or the last sweep
// left at least 7/8 of the entries in use), so expired flows are reclaimed before new flows are
// refused for long. Pure: the caller reads the counter and the clock.
class GcPacer {
 public:
  GcPacer(uint64_t interval_ns, uint64_t min_gap_ns) : interval_ns_(interval_ns), min_gap_ns_(min_gap_ns) {}
  void set_interval(uint64_t interval_ns) { interval_ns_ = interval_ns; }
  // ct_full_drops: the datapath's drop-ct-full counter now.
  bool due(uint64_t now_ns, uint64_t ct_full_drops);
  // After a sweep that left `entries` of `max_entries` in use.
  void swept(uint64_t now_ns, uint64_t entries, uint64_t max_entries);

 private:
  uint64_t interval_ns_, min_gap_ns_;
  bool swept_ = false;
  uint64_t last_sweep_ns_ = 0;
  uint64_t seen_drops_ = 0;
  bool drops_seen_ = false;
  bool near_full_ = false;
};

template <class Family>
class CtTableGc {
 public:
  using Flow = typename Family::Flow;
  explicit CtTableGc(CtTable<Family>& table) : table_(table) {}
  // One pass over the table at time now_ns (CLOCK_BOOTTIME), deleting the flows expired by `t`.
  GcResult sweep(uint64_t now_ns, const ct::Timeouts& t);
  // Deletes both entries of every flow `doomed` selects, judged again on a fresh read of the
  // flow right before its delete (`ipsnat flows flush`; the sweep with "expired").
  GcResult remove_if(const std::function<bool(const Flow&)>& doomed);

 private:
  CtTable<Family>& table_;
};

extern template class CtTableGc<Ct4Family>;
extern template class CtTableGc<Ct6Family>;

// The IPv4 table's GC, which also reads the timeouts from ipsnat_cfg.
class CtGc : public CtTableGc<Ct4Family> {
 public:
  explicit CtGc(CtMaps& maps) : CtTableGc(maps), maps_(maps) {}
  using CtTableGc::sweep;
  GcResult sweep(uint64_t now_ns);

 private:
  CtMaps& maps_;
};

using Ct6Gc = CtTableGc<Ct6Family>;

}  // namespace ipsnat::pins
