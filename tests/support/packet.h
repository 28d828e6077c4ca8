#pragma once
// Golden packets for the bpf tier, with checksums computed by an RFC 1071 routine written here,
// independent of the datapath's incremental updates.
#include <cstdint>
#include <string>
#include <vector>

namespace ipsnat::test {

using Bytes = std::vector<uint8_t>;

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t seed = 0);
uint32_t parse_ipv4(const std::string& dotted);  // network byte order
// Bytes of an upper-layer header for ipv6(): ports (and a TCP header's flags) only.
Bytes udp_header(uint16_t sport, uint16_t dport, size_t payload_len = 0);
Bytes tcp_header(uint16_t sport, uint16_t dport, uint8_t flags);

struct Ipv4Spec {
  std::string src, dst;
  uint8_t proto = 17;
  uint8_t ttl = 64;
  uint16_t id = 1;
  uint16_t frag_off = 0;  // host order, flags included
  Bytes options{};        // IPv4 options, a multiple of 4 bytes
};

class PacketBuilder {
 public:
  // An Ethernet header first (TC on Ethernet devices); false builds a bare IP packet.
  explicit PacketBuilder(bool ethernet = true) : ethernet_(ethernet) {}
  Bytes udp(const Ipv4Spec& ip, uint16_t sport, uint16_t dport, const Bytes& payload,
            bool zero_csum = false) const;
  Bytes tcp(const Ipv4Spec& ip, uint16_t sport, uint16_t dport, uint8_t flags, const Bytes& payload) const;
  Bytes icmp_echo(const Ipv4Spec& ip, uint8_t type, uint16_t id, uint16_t seq, const Bytes& payload) const;
  // An ICMP error (type, code) quoting `quoted` (an IP packet without L2 header); `extra` fills
  // bytes 4..7 (frag-needed: the next-hop MTU in the low 16 bits).
  Bytes icmp_error(const Ipv4Spec& ip, uint8_t type, uint8_t code, const Bytes& quoted, uint32_t extra = 0) const;
  Bytes ipv4(const Ipv4Spec& ip, const Bytes& l4) const;  // fills tot_len and the header checksum
  Bytes non_ip(uint16_t ethertype, size_t len) const;
  // An IPv6 packet: fixed header (next header `nexthdr`) and `rest` (extension headers and
  // upper layer as given; the guard reads no IPv6 checksum).
  Bytes ipv6(const std::string& src, const std::string& dst, uint8_t nexthdr, const Bytes& rest) const;
  // An IPv6 packet whose upper layer `l4` (TCP, UDP or ICMPv6, directly after the fixed header)
  // gets its checksum from ipv6_l4_checksum below.
  Bytes ipv6_l4(const std::string& src, const std::string& dst, uint8_t nexthdr, const Bytes& l4) const;

 private:
  bool ethernet_;
};

// Checks a built or translated packet with the independent routine: IPv4 header checksum and,
// for unfragmented TCP/UDP/ICMP, the L4 checksum (UDP zero accepted as "none").
struct ChecksumReport {
  bool ip_ok = false;
  bool l4_ok = false;
  std::string detail;
};
ChecksumReport verify_checksums(const Bytes& pkt, size_t l3_offset);

// The checksum field value of an IPv6 packet's upper layer (TCP, UDP, ICMPv6 directly after the
// fixed header at l3_offset), computed whole over the pseudo-header (RFC 8200 section 8.1); and
// whether the packet's field holds it.
uint16_t ipv6_l4_checksum(const Bytes& pkt, size_t l3_offset);
bool ipv6_l4_checksum_ok(const Bytes& pkt, size_t l3_offset);

// The IP packet without its L2 header, and the L4 part (after the IP header and options).
Bytes l3_of(const Bytes& pkt, size_t l3_offset);
Bytes l4_of(const Bytes& pkt, size_t l3_offset);
// Checks the ICMP error's quote: its IP header checksum and, when fully quoted, its L4 checksum.
ChecksumReport verify_quote_checksums(const Bytes& pkt, size_t l3_offset);

}  // namespace ipsnat::test
