#pragma once
// The inside set the datapath's NAPT consults (maps/inside.h, map ipsnat_inside): the inside
// prefixes and the gateway's own addresses, written by difference so a rewrite never empties it.
#include <cstdint>
#include <vector>

#include "maps/inside.h"
#include "spd/policy.h"

namespace ipsnat::mirror {

struct InsideEntry {
  Prefix prefix;
  uint32_t flags = 0;  // enum ipsnat_inside_flags
  bool operator==(const InsideEntry&) const = default;
};

// inside: INSIDE_PREFIX entries; local: /32 INSIDE_LOCAL entries, with INSIDE_PREFIX too when a
// LAN prefix contains the address (the gateway's own LAN address stays translated).
std::vector<InsideEntry> inside_entries(const std::vector<Prefix>& inside, const std::vector<Address>& local);

// Makes map fd hold exactly `want` (IPv4 entries); SysError on a refused write.
void write_inside_map(int fd, const std::vector<InsideEntry>& want);

}  // namespace ipsnat::mirror
