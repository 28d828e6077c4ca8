#pragma once
// An IP address or prefix of either family: the one address type of the loader, from the SPD
// model down to the rtnetlink requests.
#include <array>
#include <cstdint>
#include <string>

namespace ipsnat {

// An address of either family; IPv4 in the first 4 bytes (network order).
struct Address {
  uint16_t family = 0;  // AF_INET / AF_INET6
  std::array<uint8_t, 16> bytes{};

  static Address v4(uint32_t be_addr);
  static Address v6(const uint8_t (&bytes)[16]);  // network order, as the maps and netlink hold it
  uint32_t v4_be() const;  // network order
  uint32_t v4_host() const;
  bool operator==(const Address&) const = default;
  auto operator<=>(const Address&) const = default;
  std::string str() const;
};

struct Prefix {
  Address addr;
  uint8_t len = 0;
  bool operator==(const Prefix&) const = default;
  auto operator<=>(const Prefix&) const = default;
  bool contains(const Address& a) const;
  std::string str() const;
};

// Parses "A.B.C.D", "A.B.C.D/N", IPv6 likewise. Throws UserError with `what` naming the input.
Address parse_address(const std::string& text);
Prefix parse_prefix(const std::string& text);
// The prefix of the one address a: /32 or /128.
Prefix host_prefix(const Address& a);
// An IPv6 link-local (fe80::/10) or loopback (::1) address: never a source a policy's peer sees.
bool is_link_scoped6(const Address& a);
// Host-order mask of `len` leading bits.
uint32_t v4_mask(uint8_t len);

}  // namespace ipsnat
