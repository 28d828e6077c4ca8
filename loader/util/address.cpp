#include "util/address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace ipsnat {

Address Address::v4(uint32_t be_addr) {
  Address a;
  a.family = AF_INET;
  std::memcpy(a.bytes.data(), &be_addr, 4);
  return a;
}

Address Address::v6(const uint8_t (&bytes)[16]) {
  Address a;
  a.family = AF_INET6;
  std::memcpy(a.bytes.data(), bytes, 16);
  return a;
}

uint32_t Address::v4_be() const {
  uint32_t v;
  std::memcpy(&v, bytes.data(), 4);
  return v;
}

uint32_t Address::v4_host() const { return ntohl(v4_be()); }

std::string Address::str() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == AF_INET || family == AF_INET6) inet_ntop(family, bytes.data(), buf, sizeof(buf));
  return buf;
}

bool Prefix::contains(const Address& a) const {
  if (a.family != addr.family) return false;
  unsigned full = len / 8, rest = len % 8;
  if (std::memcmp(a.bytes.data(), addr.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  uint8_t m = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & m) == (addr.bytes[full] & m);
}

Prefix host_prefix(const Address& a) { return {a, static_cast<uint8_t>(a.family == AF_INET6 ? 128 : 32)}; }

std::string Prefix::str() const { return addr.str() + "/" + std::to_string(len); }

uint32_t v4_mask(uint8_t len) { return len == 0 ? 0 : (len >= 32 ? 0xffffffffu : ~((1u << (32 - len)) - 1)); }

Address parse_address(const std::string& text) {
  Address a;
  // inet_pton stops at a NUL: "10.0.0.1\0junk" (from JSON state) is not an address (tests/fuzz).
  if (text.find('\0') != std::string::npos)
    throw UserError("invalid address (contains a NUL byte)", "expected IPv4 or IPv6 address, e.g. 10.0.0.1");
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  throw UserError("invalid address '" + text + "'", "expected IPv4 or IPv6 address, e.g. 10.0.0.1");
}

bool is_link_scoped6(const Address& a) {
  if (a.family != AF_INET6) return false;
  bool loopback = std::all_of(a.bytes.begin(), a.bytes.end() - 1, [](uint8_t b) { return b == 0; }) && a.bytes[15] == 1;
  return (a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80) || loopback;
}

Prefix parse_prefix(const std::string& text) {
  auto slash = text.find('/');
  Prefix p;
  p.addr = parse_address(text.substr(0, slash));
  unsigned max = p.addr.family == AF_INET ? 32 : 128;
  if (slash == std::string::npos) {
    p.len = static_cast<uint8_t>(max);
    return p;
  }
  std::string l = text.substr(slash + 1);
  if (l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(l) > max)
    throw UserError("invalid prefix length in '" + text + "'", "expected 0.." + std::to_string(max));
  p.len = static_cast<uint8_t>(std::stoul(l));
  // Canonical form: host bits cleared, as the kernel compares only the prefix.
  unsigned full = p.len / 8, rest = p.len % 8;
  if (full < 16) {
    if (rest) p.addr.bytes[full] &= static_cast<uint8_t>(0xff << (8 - rest));
    for (unsigned i = full + (rest ? 1 : 0); i < 16; i++) p.addr.bytes[i] = 0;
  }
  return p;
}

}  // namespace ipsnat
