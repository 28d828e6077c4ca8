#pragma once
// Keeps spd_cover6 (maps/cover6.h) equal to the destination prefixes of the kernel's IPv6 IPsec
// out-policies: the leak guard drops IPv6 cleartext to them (ipsnat translates no IPv6).
//
//   Cover6Writer cover6(fd);     // fd of spd_cover6; -1: no such map (nothing is written)
//   cover6.write(model);         // on every SPD change; new keys first, then stale ones deleted
#include <cstdint>
#include <map>
#include <string>

#include "spd/model.h"
#include "spd/policy.h"

namespace ipsnat::mirror {

// The destination prefixes the guard must treat as covered, with how many policies name each:
// out-policies of family AF_INET6 that require IPsec and apply at the uplink (if_id 0). Source,
// protocol, ports, mark and priority are not evaluated (failing closed).
std::map<Prefix, uint32_t> cover6_prefixes(const spd::SpdModel& model);

class Cover6Writer {
 public:
  explicit Cover6Writer(int fd);
  // Throws SpdMapFull when the map has no room, SysError for another refused write.
  void write(const spd::SpdModel& model);

 private:
  int fd_;
  std::map<Prefix, uint32_t> written_;  // starts as what the map held (an earlier process's keys)
};

// ROOT/spd_cover6 when it has this build's layout, else -1 with a warning (pins of an older
// build: IPv6 cleartext is not guarded until attach replaces them).
int cover6_pin_fd(const std::string& pin_root);

}  // namespace ipsnat::mirror
