#pragma once
// The IPv6 conntrack map (ipsnat_ct6, maps/ct6.h) and its housekeeping: the same sweep as CtGc
// (ct/gc.h) over IPv6 flows, by the same timeouts (ipsnat_cfg).
//
//   auto m = Ct6Map::open_pinned(root);       // nullopt: no ipsnat_ct6 of this layout (an older build's)
//   Ct6Gc(*m).sweep(now, timeouts);           // deletes both entries of every expired flow
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ct/flow6.h"
#include "pins/ct_gc.h"
#include "util/fd.h"

namespace ipsnat::pins {

class Ct6Map {
 public:
  explicit Ct6Map(int fd) : fd_(fd) {}  // borrows fd
  static std::optional<Ct6Map> open_pinned(const std::string& pin_root);
  Ct6Map(Ct6Map&&) noexcept = default;
  Ct6Map(const Ct6Map&) = delete;
  Ct6Map& operator=(const Ct6Map&) = delete;
  Ct6Map& operator=(Ct6Map&&) = delete;

  std::vector<ct::Entry6> entries() const;
  std::optional<ipsnat_ct6_entry> lookup(const ipsnat_ct6_key& k) const;
  bool erase(const ipsnat_ct6_key& k);

 private:
  int fd_;
  Fd owned_;
};

class Ct6Gc {
 public:
  explicit Ct6Gc(Ct6Map& map) : map_(map) {}
  GcResult sweep(uint64_t now_ns, const ct::Timeouts& t);
  // As CtGc::remove_if: both entries of every flow `doomed` selects (judged again on a fresh read).
  Removal remove_if(const std::function<bool(const ct::Flow6&)>& doomed);

 private:
  Ct6Map& map_;
};

}  // namespace ipsnat::pins
