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

using net::Address;
using net::Prefix;
using net::parse_address;
using net::parse_prefix;
using net::v4_mask;

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
  // notifications (SpdModel). Equal priorities are decided by it: the older wins.
  uint64_t seq = 0;

  // Protection the kernel insists on: an allow policy with at least one required template. A
  // template marked optional (`level use`) is skipped when no state exists, so a policy whose
  // templates are all optional lets the packet leave in cleartext: the datapath treats it as a
  // bypass (it still matches and shadows lower-priority policies).
  bool is_ipsec() const;
  bool is_bypass() const { return action == Action::Allow && !is_ipsec(); }
  // What the kernel treats as the same policy (replaced by an update): selector, dir, type,
  // mark, if_id.
  bool same_key(const Policy& o) const;
  std::string describe() const;  // one line, ip-xfrm-like
};

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

bool proto_has_ports(uint8_t proto);

}  // namespace ipsnat::spd
