#pragma once
// Keeps ipsnat_npt6 (maps/npt6.h) equal to the NPTv6 rules the SPD and the inside prefixes imply
// (spd/npt6.h).
//
//   Npt6Writer npt6(fd);          // fd of ipsnat_npt6; -1: no such map (nothing is written)
//   npt6.write(model, inside, local);  // on every SPD change and when the gateway's addresses
//                                       // change (a NAT66 pool leaves them out); new keys first,
//                                       // then stale ones deleted
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "spd/npt6.h"

namespace ipsnat::mirror {

class Npt6Writer {
 public:
  explicit Npt6Writer(int fd);
  // Throws SpdMapFull when the map has no room, SysError for another refused write.
  // rules: the [[nat]] rules (the IPv6 ones replace what the SPD implies, spd/npt6.h npt6_of).
  void write(const spd::SpdModel& model, const std::vector<Prefix>& inside, const std::vector<Address>& local = {},
             const std::vector<spd::NatOverride>& rules = {});

 private:
  int fd_;
  std::map<std::vector<uint8_t>, npt6_rule> written_;  // keys as bytes; starts as what the map held
};

// ROOT/ipsnat_npt6 when it has this build's layout, else -1 with a warning (pins of an older
// build: no IPv6 translation until attach replaces them).
int npt6_pin_fd(const std::string& pin_root);

}  // namespace ipsnat::mirror
