#pragma once
// The kernel's out-policy lookup written as plainly as possible: every policy is checked; in each
// kernel list (kernel_list()) the first match counts, by priority and then place; of those the
// lowest priority value wins, equal priorities go to the policy inserted first
// (xfrm_policy_lookup_bytype / __xfrm_policy_eval_candidates compare priority, then pos).
// It is the specification the compiled maps are tested against.
#include <optional>
#include <string>
#include <vector>

#include "maps/spd.h"
#include "spd/nat.h"
#include "spd/npt6.h"
#include "spd/policy.h"

namespace ipsnat::spd {

bool reference_matches(const Policy& p, const Flow4& f, Dir dir = Dir::Out);
bool reference_matches(const Policy& p, const Flow6& f, Dir dir = Dir::Out);
const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow4& f,
                               Dir dir = Dir::Out);
const Policy* reference_lookup(const std::vector<const Policy*>& pols, const Flow6& f,
                               Dir dir = Dir::Out);
// Why an out-policy of the flow's family does not match it, the first condition that fails
// ("source not in 2001:db8:a::/48", "destination port"); "" when it matches.
std::string reference_mismatch(const Policy& p, const Flow4& f);
std::string reference_mismatch(const Policy& p, const Flow6& f);
// The first IPsec out-policy (by priority) with a NAT for the flow's destination whose translated
// flow the kernel would put under that very policy.
std::optional<spd_nat_target> reference_nat_target(const std::vector<const Policy*>& pols,
                                                   const NatConfig& cfg, const Flow4& f);
// What the datapath does to an IPv6 flow's source: the rule its destination finds in the
// ipsnat_npt6 map (npt6_entries: the longest destination selector of an IPv6 IPsec out-policy
// with the flow's if_id, whose rule mark (npt6_key_mark) is the flow's mark (a VTI's okey), and a
// mapping npt6_mapped keeps, of equal ones the first by priority, then index), applied
// as bpf/lib/xlate.h does: NAT66 to the policy's address (of its pool the one the source picks) for TCP,
// UDP and ICMPv6 echo from any IPv6 inside prefix; NPTv6 from its one, only on a device attached with
// --binat. if_id 0 and mark 0 is policy mode (the uplink): only a destination with an LWT route (a policy
// npt6_applied translates there) reaches
// the datapath at all. Nothing checks that the kernel then puts the translated flow under that
// policy: reference_lookup of the translated flow says where it goes.
struct Nat6Outcome {
  const Policy* policy = nullptr;  // whose rule the destination finds
  Npt6Mapping mapping;             // that rule
  std::optional<Address> to;       // the translated source, when translated
  std::string why;                 // when not
};
// local: the gateway's own addresses, which a NAT66 pool leaves out (npt6_of); rules: the [[nat]]
// rules (an IPv6 one's NAT66 takes its inside prefix alone, npt6_of).
Nat6Outcome reference_nat6(const std::vector<const Policy*>& pols, const std::vector<Prefix>& inside, bool binat,
                           const Flow6& f, const std::vector<Address>& local = {},
                           const std::vector<NatOverride>& rules = {});

// True when some source would make the kernel choose an IPsec out-policy for this flow's
// destination, protocol, ports, mark and if_id.
bool reference_out_covered(const std::vector<const Policy*>& pols, const Flow4& f);

}  // namespace ipsnat::spd
