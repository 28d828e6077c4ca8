#include "support/packet.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace ipsnat::test {

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t seed) {
  uint64_t sum = seed;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t(data[i]) << 8) | data[i + 1];
  if (len & 1) sum += uint32_t(data[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

uint32_t parse_ipv4(const std::string& dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, dotted.c_str(), &a) != 1) throw std::invalid_argument("bad IPv4: " + dotted);
  return a.s_addr;
}

namespace {

void put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = v >> 8;
  b[off + 1] = v & 0xff;
}

uint32_t pseudo_sum(const uint8_t* ip, uint8_t proto, size_t l4len) {
  uint32_t s = 0;
  for (int i = 12; i < 20; i += 2) s += (uint32_t(ip[i]) << 8) | ip[i + 1];
  return s + proto + static_cast<uint32_t>(l4len);
}

}  // namespace

Bytes PacketBuilder::ipv4(const Ipv4Spec& spec, const Bytes& l4) const {
  static constexpr uint8_t kEthernet[14] = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00};
  size_t l3 = ethernet_ ? sizeof(kEthernet) : 0;
  if (spec.options.size() % 4 || spec.options.size() > 40) throw std::invalid_argument("bad IPv4 options");
  size_t ihl = 20 + spec.options.size();
  Bytes out(l3 + ihl, 0);
  if (ethernet_) std::memcpy(out.data(), kEthernet, sizeof(kEthernet));
  uint8_t* ip = out.data() + l3;
  ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
  std::memcpy(ip + 20, spec.options.data(), spec.options.size());
  put16(out, l3 + 2, static_cast<uint16_t>(ihl + l4.size()));
  put16(out, l3 + 4, spec.id);
  put16(out, l3 + 6, spec.frag_off);
  ip[8] = spec.ttl;
  ip[9] = spec.proto;
  uint32_t s = parse_ipv4(spec.src), d = parse_ipv4(spec.dst);
  std::memcpy(ip + 12, &s, 4);
  std::memcpy(ip + 16, &d, 4);
  put16(out, l3 + 10, inet_checksum(ip, ihl));
  out.insert(out.end(), l4.begin(), l4.end());
  return out;
}

Bytes PacketBuilder::icmp_error(const Ipv4Spec& spec, uint8_t type, uint8_t code, const Bytes& quoted,
                                uint32_t extra) const {
  Bytes l4(8);
  l4[0] = type;
  l4[1] = code;
  put16(l4, 4, static_cast<uint16_t>(extra >> 16));
  put16(l4, 6, static_cast<uint16_t>(extra & 0xffff));
  l4.insert(l4.end(), quoted.begin(), quoted.end());
  put16(l4, 2, inet_checksum(l4.data(), l4.size()));
  Ipv4Spec s = spec;
  s.proto = 1;
  return ipv4(s, l4);
}

Bytes PacketBuilder::udp(const Ipv4Spec& spec, uint16_t sport, uint16_t dport, const Bytes& payload,
                         bool zero_csum) const {
  Bytes l4(8);
  put16(l4, 0, sport);
  put16(l4, 2, dport);
  put16(l4, 4, static_cast<uint16_t>(8 + payload.size()));
  l4.insert(l4.end(), payload.begin(), payload.end());
  Ipv4Spec s = spec;
  s.proto = 17;
  Bytes pkt = ipv4(s, l4);
  if (!zero_csum) {
    size_t l3 = ethernet_ ? 14 : 0;
    size_t l4off = l3 + 20 + spec.options.size();
    uint16_t c = inet_checksum(pkt.data() + l4off, l4.size(), pseudo_sum(pkt.data() + l3, 17, l4.size()));
    put16(pkt, l4off + 6, c == 0 ? 0xffff : c);
  }
  return pkt;
}

Bytes PacketBuilder::tcp(const Ipv4Spec& spec, uint16_t sport, uint16_t dport, uint8_t flags,
                         const Bytes& payload) const {
  Bytes l4(20);
  put16(l4, 0, sport);
  put16(l4, 2, dport);
  l4[7] = 1;       // seq
  l4[12] = 5 << 4; // data offset
  l4[13] = flags;
  put16(l4, 14, 65535);
  l4.insert(l4.end(), payload.begin(), payload.end());
  Ipv4Spec s = spec;
  s.proto = 6;
  Bytes pkt = ipv4(s, l4);
  size_t l3 = ethernet_ ? 14 : 0;
  size_t l4off = l3 + 20 + spec.options.size();
  put16(pkt, l4off + 16, inet_checksum(pkt.data() + l4off, l4.size(), pseudo_sum(pkt.data() + l3, 6, l4.size())));
  return pkt;
}

Bytes PacketBuilder::icmp_echo(const Ipv4Spec& spec, uint8_t type, uint16_t id, uint16_t seq,
                               const Bytes& payload) const {
  Bytes l4(8);
  l4[0] = type;
  put16(l4, 4, id);
  put16(l4, 6, seq);
  l4.insert(l4.end(), payload.begin(), payload.end());
  put16(l4, 2, inet_checksum(l4.data(), l4.size()));
  Ipv4Spec s = spec;
  s.proto = 1;
  return ipv4(s, l4);
}

Bytes PacketBuilder::ipv6(const std::string& src, const std::string& dst, uint8_t nexthdr, const Bytes& rest) const {
  static constexpr uint8_t kEthernet[14] = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd};
  size_t l3 = ethernet_ ? sizeof(kEthernet) : 0;
  Bytes out(l3 + 40, 0);
  if (ethernet_) std::memcpy(out.data(), kEthernet, sizeof(kEthernet));
  out[l3] = 0x60;
  put16(out, l3 + 4, static_cast<uint16_t>(rest.size()));
  out[l3 + 6] = nexthdr;
  out[l3 + 7] = 64;
  if (inet_pton(AF_INET6, src.c_str(), out.data() + l3 + 8) != 1 ||
      inet_pton(AF_INET6, dst.c_str(), out.data() + l3 + 24) != 1)
    throw std::invalid_argument("bad IPv6: " + src + " " + dst);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

namespace {
size_t ipv6_csum_offset(uint8_t nexthdr) {
  switch (nexthdr) {
    case 6: return 16;
    case 17: return 6;
    case 58: return 2;
    default: throw std::invalid_argument("no checksum known for next header " + std::to_string(nexthdr));
  }
}
}  // namespace

uint16_t ipv6_l4_checksum(const Bytes& pkt, size_t l3) {
  const uint8_t* ip = pkt.data() + l3;
  size_t l4len = pkt.size() - l3 - 40;
  Bytes l4(ip + 40, ip + 40 + l4len);
  size_t at = ipv6_csum_offset(ip[6]);
  l4[at] = l4[at + 1] = 0;
  uint32_t pseudo = static_cast<uint32_t>(l4len) + ip[6];
  for (int i = 8; i < 40; i += 2) pseudo += (uint32_t(ip[i]) << 8) | ip[i + 1];
  uint16_t c = inet_checksum(l4.data(), l4.size(), pseudo);
  return ip[6] == 17 && c == 0 ? 0xffff : c;  // UDP sends a computed 0 as 0xffff
}

bool ipv6_l4_checksum_ok(const Bytes& pkt, size_t l3) {
  size_t at = l3 + 40 + ipv6_csum_offset(pkt[l3 + 6]);
  return ((uint16_t(pkt[at]) << 8) | pkt[at + 1]) == ipv6_l4_checksum(pkt, l3);
}

Bytes PacketBuilder::ipv6_l4(const std::string& src, const std::string& dst, uint8_t nexthdr, const Bytes& l4) const {
  Bytes out = ipv6(src, dst, nexthdr, l4);
  size_t l3 = ethernet_ ? 14 : 0;
  put16(out, l3 + 40 + ipv6_csum_offset(nexthdr), ipv6_l4_checksum(out, l3));
  return out;
}

Bytes udp_header(uint16_t sport, uint16_t dport, size_t payload_len) {
  Bytes h(8, 0);
  put16(h, 0, sport);
  put16(h, 2, dport);
  put16(h, 4, static_cast<uint16_t>(8 + payload_len));
  h.resize(8 + payload_len, 0x5a);
  return h;
}

Bytes tcp_header(uint16_t sport, uint16_t dport, uint8_t flags) {
  Bytes h(20, 0);
  put16(h, 0, sport);
  put16(h, 2, dport);
  h[12] = 5 << 4;
  h[13] = flags;
  return h;
}

Bytes PacketBuilder::non_ip(uint16_t ethertype, size_t len) const {
  Bytes out(len < 14 ? 14 : len, 0);
  out[0] = 0x02;
  out[6] = 0x02;
  put16(out, 12, ethertype);
  return out;
}

namespace {

// The L4 checksum of an unfragmented packet whose IPv4 header starts at ip (UDP zero = none).
bool l4_checksum_ok(const uint8_t* ip, const uint8_t* l4, size_t l4len) {
  switch (ip[9]) {
    case 6:
      return inet_checksum(l4, l4len, pseudo_sum(ip, 6, l4len)) == 0;
    case 17:
      return (l4[6] == 0 && l4[7] == 0) || inet_checksum(l4, l4len, pseudo_sum(ip, 17, l4len)) == 0;
    case 1:
      return inet_checksum(l4, l4len) == 0;
    default:
      return true;
  }
}

}  // namespace

ChecksumReport verify_checksums(const Bytes& pkt, size_t l3) {
  ChecksumReport r;
  if (pkt.size() < l3 + 20) {
    r.detail = "shorter than an IPv4 header";
    return r;
  }
  const uint8_t* ip = pkt.data() + l3;
  size_t ihl = (ip[0] & 0x0f) * 4;
  r.ip_ok = inet_checksum(ip, ihl) == 0;
  size_t tot = (size_t(ip[2]) << 8) | ip[3];
  uint16_t frag = (uint16_t(ip[6]) << 8) | ip[7];
  if (frag & 0x3fff) {  // fragments: the L4 checksum covers data the test does not have
    r.l4_ok = true;
    return r;
  }
  const uint8_t* l4 = ip + ihl;
  size_t l4len = tot - ihl;
  if (l3 + tot > pkt.size()) {
    r.detail = "truncated";
    return r;
  }
  r.l4_ok = l4_checksum_ok(ip, l4, l4len);
  if (!r.ip_ok) r.detail += "bad IPv4 header checksum; ";
  if (!r.l4_ok) r.detail += "bad L4 checksum";
  return r;
}

Bytes l3_of(const Bytes& pkt, size_t l3) { return Bytes(pkt.begin() + static_cast<long>(l3), pkt.end()); }

Bytes l4_of(const Bytes& pkt, size_t l3) {
  size_t ihl = (pkt.at(l3) & 0x0f) * 4;
  return Bytes(pkt.begin() + static_cast<long>(l3 + ihl), pkt.end());
}

ChecksumReport verify_quote_checksums(const Bytes& pkt, size_t l3) {
  ChecksumReport r;
  size_t q = l3 + (pkt.at(l3) & 0x0f) * 4 + 8;
  if (pkt.size() < q + 20) {
    r.detail = "no quote";
    return r;
  }
  const uint8_t* ip = pkt.data() + q;
  size_t ihl = (ip[0] & 0x0f) * 4;
  r.ip_ok = inet_checksum(ip, ihl) == 0;
  size_t tot = (size_t(ip[2]) << 8) | ip[3];
  size_t avail = pkt.size() - q;
  if (tot > avail) {  // partial quote: the L4 checksum cannot be checked
    r.l4_ok = true;
    return r;
  }
  const uint8_t* l4 = ip + ihl;
  size_t l4len = tot - ihl;
  r.l4_ok = l4_checksum_ok(ip, l4, l4len);
  return r;
}

}  // namespace ipsnat::test
