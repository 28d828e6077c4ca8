#pragma once
// `ipsnat explain`'s logic without the command line: a flow named by its addresses (IPv4 or
// IPv6), the out-policy the kernel picks for it, the policies it does not and why, the
// translation the datapath applies to its source and the policy the translated flow gets. The
// lookups are the reference evaluator's (spd/reference.h).
//
//   AnyFlow flow = parse_flow(args);  // args: the command line's words, ports when given
//   Explanation e = explain(pols, cfg, inside6, binat, flow);
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "spd/nat.h"
#include "spd/policy.h"

namespace ipsnat::spd {

using AnyFlow = std::variant<Flow4, Flow6>;

struct FlowArgs {
  std::string src, dst;
  uint8_t proto = 0;
  std::optional<uint16_t> sport, dport;  // given on the command line
  uint32_t mark = 0, if_id = 0;
};

// Both addresses of one family; a port only for a protocol that has ports (proto_has_ports): an
// ICMP or ICMPv6 flow given one is refused, not read as type and code. Throws UserError.
AnyFlow parse_flow(const FlowArgs& a);

struct NotChosen {
  uint32_t policy = 0;
  std::string why;
};

struct Explanation {
  std::string flow;
  const Policy* before = nullptr;       // the kernel's out-policy for the flow, if any
  std::vector<NotChosen> not_chosen;    // out-policies whose destination covers it
  // The translation, when the datapath applies one.
  std::string kind;  // "napt", "prefix", "nat66", "nptv6"; "" when none
  Address to;        // the translated source
  bool ports = false;  // the source port may change too (napt, nat66)
  uint32_t nat_policy = 0, reqid = 0;
  std::string none_why;    // why none
  std::string after_flow;  // the translated flow (its source port as before)
  const Policy* after = nullptr;
};

// IPv4: the NAT of cfg (reference_nat_target). IPv6: the IPv6 inside prefixes, and whether the
// device is attached with --binat (reference_nat6). if_id 0 is the uplink (policy mode).
Explanation explain(const std::vector<const Policy*>& pols, const NatConfig& cfg, const std::vector<Prefix>& inside6,
                    bool binat, const AnyFlow& flow);

}  // namespace ipsnat::spd
