#include "spd/policy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <sstream>

#include "util/error.h"

namespace ipsnat::spd {

bool Policy::is_ipsec() const {
  if (action != Action::Allow) return false;
  for (const Template& t : tmpls)
    if (!t.optional) return true;
  return false;
}

const char* to_string(Dir d) {
  switch (d) {
    case Dir::In: return "in";
    case Dir::Out: return "out";
    case Dir::Fwd: return "fwd";
  }
  return "?";
}

const char* to_string(Action a) { return a == Action::Allow ? "allow" : "block"; }

bool Policy::same_key(const Policy& o) const {
  return dir == o.dir && type == o.type && sel == o.sel && if_id == o.if_id &&
         (mark_v & mark_m) == (o.mark_v & o.mark_m) && mark_m == o.mark_m;
}

std::string proto_name(uint8_t p) {
  if (p == 0) return "any";
  if (const protoent* e = getprotobynumber(p)) return e->p_name;
  return std::to_string(p);
}

std::string ports_text(const Selector& sel) {
  std::string o;
  auto port = [&](const char* what, uint16_t v, uint16_t mask) {
    if (mask) o += std::string(" ") + what + " " + std::to_string(v) + (mask != 0xffff ? "/" + std::to_string(mask) : "");
  };
  port("sport", sel.sport, sel.sport_mask);
  port("dport", sel.dport, sel.dport_mask);
  return o;
}

std::string Policy::describe() const {
  std::ostringstream o;
  o << "src " << sel.src.str() << " dst " << sel.dst.str();
  if (sel.proto) o << " proto " << proto_name(sel.proto);
  o << ports_text(sel);
  if (sel.ifindex) o << " dev#" << sel.ifindex;
  o << " dir " << to_string(dir) << " priority " << priority << " index " << index;
  if (action == Action::Block) o << " action block";
  if (mark_m) o << " mark 0x" << std::hex << mark_v << "/0x" << mark_m << std::dec;
  if (if_id) o << " if_id " << if_id;
  if (type == PolicyType::Sub) o << " ptype sub";
  for (const auto& t : tmpls) {
    o << " tmpl";
    if (t.mode == 1) o << " src " << t.tunnel_src.str() << " dst " << t.tunnel_dst.str();
    o << " proto " << proto_name(t.proto) << " reqid " << t.reqid << " mode "
      << (t.mode == 1 ? "tunnel" : t.mode == 0 ? "transport" : std::to_string(t.mode));
    if (t.optional) o << " level use";
  }
  return o.str();
}

namespace {
std::string flow_str(const Address& saddr, const Address& daddr, uint8_t proto, uint16_t sport, uint16_t dport,
                     uint32_t mark, uint32_t if_id) {
  std::ostringstream o;
  o << saddr.str() << " -> " << daddr.str() << " proto " << proto_name(proto);
  if (proto_has_ports(proto) || proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) o << " " << sport << " " << dport;
  if (mark) o << " mark 0x" << std::hex << mark << std::dec;
  if (if_id) o << " if_id " << if_id;
  return o.str();
}
}  // namespace

std::string Flow4::str() const {
  return flow_str(Address::v4(saddr), Address::v4(daddr), proto, sport, dport, mark, if_id);
}

std::string Flow6::str() const { return flow_str(saddr, daddr, proto, sport, dport, mark, if_id); }

bool proto_has_ports(uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE ||
         proto == IPPROTO_SCTP || proto == IPPROTO_DCCP;
}

}  // namespace ipsnat::spd

namespace ipsnat::spd {

namespace {
bool covers(const Prefix& outer, const Prefix& inner) { return outer.len <= inner.len && outer.contains(inner.addr); }
bool nested(const Prefix& a, const Prefix& b) { return covers(a, b) || covers(b, a); }

// xfrm_pol_inexact_addr_use_any_list(): INEXACT_PREFIXLEN_IPV4 16, _IPV6 48, or address 0.
bool inexact_any(const Prefix& p, uint16_t family) {
  const size_t n = family == AF_INET ? 4 : 16;
  bool zero = true;
  for (size_t i = 0; i < n; i++) zero &= p.addr.bytes[i] == 0;
  return zero || p.len < (family == AF_INET ? 16 : 48);
}
}  // namespace

KernelList kernel_list(const Policy& p) {
  const Selector& s = p.sel;
  const uint8_t full = s.family == AF_INET ? 32 : 128;  // the default hash thresholds
  if (s.src.len >= full && s.dst.len >= full) return KernelList::Exact;
  const bool src_any = inexact_any(s.src, s.family), dst_any = inexact_any(s.dst, s.family);
  if (dst_any) return src_any ? KernelList::Any : KernelList::Src;
  return src_any ? KernelList::Dst : KernelList::Both;
}

bool kernel_before(const Policy& a, const Policy& b) {
  if (a.priority != b.priority) return a.priority < b.priority;
  if (kernel_list(a) == kernel_list(b)) return a.list_place() < b.list_place();
  return a.seq < b.seq;
}

bool may_match_together(const Policy& a, const Policy& b) {
  const Selector &x = a.sel, &y = b.sel;
  return a.dir == b.dir && a.type == b.type && x.family == y.family && a.if_id == b.if_id && nested(x.src, y.src) &&
         nested(x.dst, y.dst) && (x.proto == 0 || y.proto == 0 || x.proto == y.proto) &&
         ((x.sport ^ y.sport) & x.sport_mask & y.sport_mask) == 0 &&
         ((x.dport ^ y.dport) & x.dport_mask & y.dport_mask) == 0 && ((a.mark_v ^ b.mark_v) & a.mark_m & b.mark_m) == 0 &&
         (x.ifindex == 0 || y.ifindex == 0 || x.ifindex == y.ifindex);
}

}  // namespace ipsnat::spd
