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

}  // namespace ipsnat::test
