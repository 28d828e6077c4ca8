#pragma once
// The datapath's conntrack and config maps, opened from their pins or from fds a caller owns
// (tests, the daemon that loaded the skeleton).
#include <string>
#include <vector>

#include "ct/flow.h"
#include "util/fd.h"

namespace ipsnat::pins {

class CtMaps {
 public:
  // Borrows the fds.
  CtMaps(int ct_fd, int cfg_fd) : ct_fd_(ct_fd), cfg_fd_(cfg_fd) {}
  // Opens <pin_root>/ipsnat_ct and <pin_root>/ipsnat_cfg; throws UserError when not pinned.
  static CtMaps open_pinned(const std::string& pin_root);
  CtMaps(CtMaps&&) noexcept = default;
  CtMaps(const CtMaps&) = delete;
  CtMaps& operator=(const CtMaps&) = delete;
  CtMaps& operator=(CtMaps&&) = delete;

  std::vector<ct::Entry> entries() const;
  std::optional<ipsnat_ct_entry> lookup(const ipsnat_ct_key& k) const;
  bool erase(const ipsnat_ct_key& k);
  ipsnat_config config() const;

 private:
  int ct_fd_;
  int cfg_fd_;
  Fd owned_ct_, owned_cfg_;  // what open_pinned opened; empty when borrowed
};


// CLOCK_BOOTTIME in ns: the clock of bpf_ktime_get_boot_ns(), which the datapath stamps.
uint64_t boottime_ns();

}  // namespace ipsnat::pins
