#pragma once
// What translation an IPsec out-policy implies: its source selector is the inner source the
// kernel wants, the NAT makes inside hosts use it.
#include <optional>
#include <string>
#include <vector>

#include "maps/spd.h"
#include "spd/policy.h"

namespace ipsnat::spd {

struct NatOverride {
  // Which policies: by kernel index, or by the policy's source selector (either may be unset).
  std::optional<uint32_t> policy_index;
  std::optional<Prefix> policy_src;
  spd_nat_kind kind = SPD_NAT_NONE;
  Prefix nat;     // NAPT: nat.addr; PREFIX: the block the inside prefix maps onto
  Prefix inside;  // sources eligible for translation
};

struct NatConfig {
  // IPv4 inside prefixes: the sources NAPT translates, as the inside set (maps/inside.h); empty:
  // any source is eligible.
  std::vector<Prefix> inside;
  std::vector<NatOverride> overrides;
  // The gateway's own addresses (INSIDE_LOCAL entries of the inside set, maps/inside.h).
  std::vector<Address> local;
};

struct ImpliedNat {
  spd_nat_kind kind = SPD_NAT_NONE;
  Prefix nat;
  Prefix inside;                     // the block eligible sources must be in (0/0 for the inside set)
  std::vector<Prefix> inside_set;    // NAPT implied by the SPD: every inside prefix (SPD_NAT_INSIDE_SET)
  std::string why;
  // The datapath's struct (policy_index and reqid filled from the policy).
  spd_nat_target target(const Policy& p) const;
  std::string str() const;
  std::string inside_str() const;  // "192.168.1.0/24, 192.168.2.0/24"
};

ImpliedNat implied_nat(const Policy& p, const NatConfig& cfg);

// A required template in tunnel (or BEET) mode: the policy carries other hosts' packets. Transport
// mode protects this host's own, addressed as they are (L2TP or GRE over IPsec): never translated.
bool tunnel_mode(const Policy& p);

// Both take and return network order, as the datapath does. nat_eligible checks the block only:
// an inside-set target's sources are narrowed by the datapath's ipsnat_inside lookup.
bool nat_eligible(const spd_nat_target& t, uint32_t saddr);
uint32_t nat_translate(const spd_nat_target& t, uint32_t saddr);

}  // namespace ipsnat::spd
