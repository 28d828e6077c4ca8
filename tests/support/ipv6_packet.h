#pragma once
// IPv6 helpers of the bpf tests (NPTv6, NAT66): the packets PacketBuilder builds carry an
// Ethernet header, so the IPv6 header starts at kIpv6L3.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "spd/model.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {

constexpr size_t kIpv6L3 = 14;
constexpr size_t kIpv6Src = kIpv6L3 + 8, kIpv6Dst = kIpv6L3 + 24, kIpv6L4 = kIpv6L3 + 40;

// An IPv6 out-policy src -> dst of priority 100 on the xfrm interface if_id.
inline spd::Policy ipv6_out_policy(uint32_t index, const std::string& src, const std::string& dst, uint32_t if_id) {
  spd::Policy p = tunnel_policy(spd::Dir::Out, src, dst, index, 100);
  p.if_id = if_id;
  return p;
}

// The IPv6 address at byte offset off of pkt, as text.
inline std::string ipv6_at(const Bytes& pkt, size_t off) {
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, pkt.data() + off, text, sizeof(text));
  return text;
}

// An ICMPv6 echo request (128) or reply (129) with identifier id and a 4-byte payload.
inline Bytes icmp6_echo(uint8_t type, uint16_t id) {
  return Bytes{type, 0, 0, 0, uint8_t(id >> 8), uint8_t(id), 0, 1, 'p', 'i', 'n', 'g'};
}

// A datagram's upper layer l4 (checksum included) from src to dst as two fragments split at
// `at` bytes (a multiple of 8), each behind a fragment header (RFC 8200 4.5) of identification id.
struct Ipv6Fragments {
  Bytes first, later;
};
inline Ipv6Fragments ipv6_fragments(const PacketBuilder& b, const std::string& src, const std::string& dst,
                                    uint8_t proto, const Bytes& l4, size_t at, uint32_t id) {
  auto part = [&](size_t from, size_t to, bool more) {
    Bytes rest{proto, 0, uint8_t(from >> 8), uint8_t((from & 0xf8) | (more ? 1 : 0)),
               uint8_t(id >> 24), uint8_t(id >> 16), uint8_t(id >> 8), uint8_t(id)};
    rest.insert(rest.end(), l4.begin() + long(from), l4.begin() + long(to));
    return b.ipv6(src, dst, 44 /* fragment header */, rest);
  };
  return {part(0, at, true), part(at, l4.size(), false)};
}

// The upper layer of a UDP datagram from src to dst with len bytes of patterned payload, its
// checksum set by the independent routine: what ipv6_fragments splits.
inline Bytes ipv6_udp_l4(const PacketBuilder& b, const std::string& src, const std::string& dst, uint16_t sport,
                         uint16_t dport, size_t len) {
  Bytes l4 = udp_header(sport, dport, len);
  for (size_t i = 8; i < l4.size(); ++i) l4[i] = uint8_t(i * 7);
  Bytes whole = b.ipv6_l4(src, dst, 17, l4);
  return Bytes(whole.begin() + long(kIpv6L4), whole.end());
}

// The upper layer of the datagram two fragments ipv6_fragments built (or their translations) hold.
inline Bytes ipv6_reassembled_l4(const Bytes& first, const Bytes& later) {
  constexpr size_t data = kIpv6L4 + 8;  // after the fragment header
  Bytes l4(first.begin() + long(data), first.end());
  l4.insert(l4.end(), later.begin() + long(data), later.end());
  return l4;
}

}  // namespace ipsnat::test
