#pragma once
// Port-forwards into the LAN (maps/fwd.h, docs/datapath.md "Port-forwards"): the CLI spelling
// (`ipsnat attach --forward tcp:8080=192.168.1.10:80`), the resolution of rules that leave the
// NAT address implied, and the map entries. Parsing and resolution are pure (unit-tested).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "maps/fwd.h"
#include "pins/fwd_map.h"

namespace ipsnat::config { struct PortForward; }

namespace ipsnat::attach {

struct ForwardRule {
  uint8_t proto = 0;                 // IPPROTO_TCP / IPPROTO_UDP
  std::optional<uint32_t> nat_addr;  // network order; absent: every NAPT address of the device
  uint16_t port = 0;                 // outside port
  uint32_t inside_addr = 0;          // network order
  uint16_t inside_port = 0;
  bool operator==(const ForwardRule&) const = default;
  std::string str() const;   // "tcp 10.20.30.2:8080 -> 192.168.1.10:80" ("*:8080" when implied)
  std::string spec() const;  // the --forward spelling, parse_forward_spec(spec()) == *this
};

// "PROTO:[NATADDR:]PORT=INSIDEADDR:PORT", e.g. "tcp:8080=192.168.1.10:80" or
// "udp:10.20.30.2:5353=192.168.1.20:53". Throws UserError saying what is expected.
ForwardRule parse_forward_spec(std::string_view spec);

// A [[forward]] table of the configuration file (its address is always given).
ForwardRule forward_rule_of(const config::PortForward& f);

// Rules with an implied NAT address become one rule per NAPT address (network order). Throws
// UserError when a rule needs an address and there is none, or when two rules claim one
// (proto, address, port).
std::vector<ForwardRule> resolve_forwards(const std::vector<ForwardRule>& rules,
                                          const std::vector<uint32_t>& napt_addrs);

struct ForwardEntry {
  ipsnat_fwd_key key;
  ipsnat_fwd_target target;
};
std::vector<ForwardEntry> forward_entries(const std::vector<ForwardRule>& resolved);

// Adds (or updates) `entries` in the map. Throws SysError.
void write_forward_map(pins::ForwardMap& map, const std::vector<ForwardEntry>& entries);
// Deletes these entries (detach); missing ones are fine.
void delete_forward_entries(pins::ForwardMap& map, const std::vector<ForwardEntry>& entries);

// The keys of `present` that no entry of `wanted` has (pure).
std::vector<ipsnat_fwd_key> stale_forward_keys(const std::vector<ipsnat_fwd_key>& present,
                                               const std::vector<ForwardEntry>& wanted);
// Makes the map hold exactly `wanted`: stale keys deleted, the rest written. Used by the daemon,
// whose wanted set is its configuration's [[forward]] plus what attaches recorded. Returns the
// number of entries deleted. Throws SysError.
size_t sync_forward_map(pins::ForwardMap& map, const std::vector<ForwardEntry>& wanted);

}  // namespace ipsnat::attach
