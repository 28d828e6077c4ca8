#pragma once
// One XFRM policy as the kernel holds it, reduced to what decides matching and what the NAT
// derives from it. Plain data: built by the XFRM parser, kept by the model, read by the compiler.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/address.h"

namespace ipsnat::spd {

enum class Dir : uint8_t { In = 0, Out = 1, Fwd = 2 };  // XFRM_POLICY_IN/OUT/FWD
enum class Action : uint8_t { Allow = 0, Block = 1 };   // XFRM_POLICY_ALLOW/BLOCK
enum class PolicyType : uint8_t { Main = 0, Sub = 1 };  // XFRM_POLICY_TYPE_MAIN/SUB

const char* to_string(Dir d);
const char* to_string(Action a);

struct Template {
  uint8_t mode = 0;   // XFRM_MODE_TRANSPORT=0 / TUNNEL=1 / ...
  uint8_t proto = 0;  // IPPROTO_ESP / AH / COMP
  uint32_t reqid = 0;
  uint32_t spi = 0;  // network order as the kernel gives it
  bool optional = false;
  uint16_t family = 0;  // of the tunnel endpoints
  Address tunnel_src, tunnel_dst;
  bool operator==(const Template&) const = default;
};

struct Selector {
  uint16_t family = 0;
  Prefix src, dst;
  uint8_t proto = 0;  // 0 = any
  uint16_t sport = 0, sport_mask = 0, dport = 0, dport_mask = 0;  // host order
  int32_t ifindex = 0;
  bool operator==(const Selector&) const = default;
};

std::string proto_name(uint8_t p);  // "tcp", "any", "132"
// The selector's port conditions as ip-xfrm writes them: " sport 500 dport 443/65280", or "".
std::string ports_text(const Selector& sel);

struct Policy {
  Selector sel;
  Dir dir = Dir::Out;
  Action action = Action::Allow;
  PolicyType type = PolicyType::Main;
  uint32_t priority = 0;
  uint32_t index = 0;
  uint32_t mark_v = 0, mark_m = 0;
  uint32_t if_id = 0;
  std::vector<Template> tmpls;
  // The kernel's age order (its `pos`), assigned by the model from the dump order and the
  // notifications (SpdModel). Equal priorities in different kernel lists are decided by it: the
  // older wins.
  uint64_t seq = 0;
  // The policy's place among equal priorities in its own kernel list (kernel_list()), where the
  // first one that matches wins. 0: where its age puts it (after every older one). An update that
  // keeps the priority keeps the place of the policy it replaces while its seq becomes the newest.
  uint64_t place = 0;
  // The place is a guess: it came from a dump (which shows ages, not places) or a merge of the
  // kernel's tree may have re-sorted it. Mirrored in the order held (a dump's: age); it only
  // keeps such a pair from shadowing each other (compiler.cpp, docs/spd.md).
  bool place_unknown = false;
  uint64_t list_place() const { return place ? place : seq; }

  // Protection the kernel insists on: an allow policy with at least one required template. A
  // template marked optional (`level use`) is skipped when no state exists, so a policy whose
  // templates are all optional lets the packet leave in cleartext: the datapath treats it as a
  // bypass (it still matches and shadows lower-priority policies).
  bool is_ipsec() const;
  bool is_bypass() const { return action == Action::Allow && !is_ipsec(); }
  // Whether a flow without a mark (the uplink's own lookups) can match: the kernel matches when
  // (flow mark & mask) == value (xfrm_policy_match), so a mask-0 policy matches every mark, and
  // one whose value is nonzero (under its mask or outside it) never matches mark 0.
  bool meets_unmarked() const { return mark_v == 0; }
  // What the kernel treats as the same policy (replaced by an update): selector, dir, type,
  // mark, if_id.
  bool same_key(const Policy& o) const;
  std::string describe() const;  // one line, ip-xfrm-like
};

// The kernel's candidate lists for a lookup (net/xfrm/xfrm_policy.c): the exact hash chain for
// selectors at the hash thresholds (the default: /32 -> /32, /128 -> /128), else the inexact
// bin's any/any list, a source node's, a destination node's, or a (destination, source) node's
// list. A prefix shorter than /16 (IPv6 /48) or of address 0 counts as "any". Two policies that
// both match a flow and have the same kind sit in the same list (the tree's nodes are disjoint
// prefixes: nested selectors share a node); of different kinds never.
enum class KernelList : uint8_t { Exact, Any, Src, Dst, Both };
KernelList kernel_list(const Policy& p);
// True when the kernel evaluates `a` before `b` for a flow both match: lower priority first;
// equal priorities in one list by place, in different lists by age.
bool kernel_before(const Policy& a, const Policy& b);
// True when some flow can match both (addresses, protocol, ports, mark, if_id, direction).
bool may_match_together(const Policy& a, const Policy& b);

// A flow as the kernel's xfrm lookup sees it (IPv4). Ports are the xfrm ports: for TCP, UDP,
// UDP-Lite, SCTP and DCCP the transport ports; for ICMP type and code; otherwise 0.
struct Flow4 {
  uint32_t saddr = 0, daddr = 0;  // network order
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // host order
  uint32_t mark = 0;
  uint32_t if_id = 0;
  std::string str() const;
};

// The same for IPv6 (ports of ICMPv6: type and code).
struct Flow6 {
  Address saddr, daddr;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // host order
  uint32_t mark = 0;
  uint32_t if_id = 0;
  std::string str() const;
};

bool proto_has_ports(uint8_t proto);

}  // namespace ipsnat::spd
