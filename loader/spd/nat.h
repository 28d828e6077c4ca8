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
  std::vector<Prefix> inside;  // IPv4 inside prefixes (empty: any source is eligible for NAPT)
  std::vector<NatOverride> overrides;
};

struct ImpliedNat {
  spd_nat_kind kind = SPD_NAT_NONE;
  Prefix nat;
  Prefix inside;
  std::string why;
  // The datapath's struct (policy_index and reqid filled from the policy).
  spd_nat_target target(const Policy& p) const;
  std::string str() const;
};

ImpliedNat implied_nat(const Policy& p, const NatConfig& cfg);

// Both take and return network order, as the datapath does.
bool nat_eligible(const spd_nat_target& t, uint32_t saddr);
uint32_t nat_translate(const spd_nat_target& t, uint32_t saddr);

}  // namespace ipsnat::spd
