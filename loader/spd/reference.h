#pragma once
// The kernel's out-policy lookup written as plainly as possible: every policy is checked; in each
// kernel list (kernel_list()) the first match counts, by priority and then place; of those the
// lowest priority value wins, equal priorities go to the policy inserted first
// (xfrm_policy_lookup_bytype / __xfrm_policy_eval_candidates compare priority, then pos).
// It is the specification the compiled maps are tested against.
#include <optional>
#include <vector>

#include "maps/spd.h"
#include "spd/nat.h"
#include "spd/policy.h"

namespace ipsnat::spd {

bool reference_matches(const Policy& p, const Flow4& f, Dir dir = Dir::Out);
const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow4& f,
                               Dir dir = Dir::Out);
// The first IPsec out-policy (by priority) with a NAT for the flow's destination whose translated
// flow the kernel would put under that very policy.
std::optional<spd_nat_target> reference_nat_target(const std::vector<const Policy*>& pols,
                                                   const NatConfig& cfg, const Flow4& f);
// True when some source would make the kernel choose an IPsec out-policy for this flow's
// destination, protocol, ports, mark and if_id.
bool reference_out_covered(const std::vector<const Policy*>& pols, const Flow4& f);

}  // namespace ipsnat::spd
