#pragma once
// Userspace garbage collection of the conntrack map. The datapath never deletes; a sweep
// deletes both entries of every expired flow together (REPLY first: from then on no reply is
// translated and the NAT port is free; then ORIG), so a flow is never half-evicted the way an
// LRU map would do it. See docs/datapath.md.
#include <cstddef>
#include <cstdint>

#include "ct/ct_map.h"

namespace ipsnat::ct {

struct GcResult {
  size_t flows = 0;            // flows seen
  size_t expired = 0;          // flows deleted
  size_t entries_deleted = 0;  // map entries deleted
};

class CtGc {
 public:
  explicit CtGc(CtMaps& maps) : maps_(maps) {}
  // One pass over the map at time now_ns (CLOCK_BOOTTIME).
  GcResult sweep(uint64_t now_ns);

 private:
  CtMaps& maps_;
};

}  // namespace ipsnat::ct
