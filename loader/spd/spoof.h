#pragma once
// Keeps the XDP pre-filter's drop set (maps/spoof.h) equal to what the kernel's inbound policy
// check refuses in cleartext on the uplink, both when it delivers a packet locally (`in`) and when
// it forwards it (`fwd`), whatever the packet's protocol, ports or mark. A conservative subset: a
// box is left out whenever a policy could let some of its packets through (docs/datapath.md).
//
//   SpoofWriter spoof(set_fd, act_fd);  // -1: no such maps (nothing is written)
//   spoof.write(model);                 // on every SPD change: the other set, then the flip
#include <cstdint>
#include <string>
#include <vector>

#include "maps/spoof.h"
#include "spd/model.h"
#include "spd/policy.h"

namespace ipsnat::spd {

struct SpoofBox {
  Prefix src, dst;  // IPv4
  bool operator==(const SpoofBox&) const = default;
  auto operator<=>(const SpoofBox&) const = default;
};

// The (source, destination) boxes whose IPv4 cleartext both the `in` and the `fwd` check refuse
// (XfrmInTmplMismatch) for every packet of the box. A box comes from an `in` or `fwd` policy with
// if_id 0 that requires a template and has no condition but its prefixes (no protocol, ports,
// mark or device), and only if no policy of its direction that may come before it (lower or
// equal priority, or a sub policy) overlaps it without refusing cleartext. Sorted, no box inside
// another.
std::vector<SpoofBox> spoof_boxes(const SpdModel& model);

class SpoofWriter {
 public:
  SpoofWriter(int set_fd, int act_fd);
  // Throws SysError for a refused write. Returns the boxes written (at most XDP_SPOOF_MAX).
  size_t write(const SpdModel& model);

 private:
  int set_fd_, act_fd_;
  uint32_t active_ = 0;
  bool written_ = false;
  std::vector<SpoofBox> last_;
};

}  // namespace ipsnat::spd
