#pragma once
// The one place where tests fill the SPD the datapath consults (bpf/lib/spd.h). When the SPD's
// structure changes, only these functions change.
#include <string>

#include "maps/spd.h"
#include "spd/policy.h"
#include "support/datapath.h"

namespace ipsnat::test {

// "SNAT every host of inside_prefix to nat_addr (NAPT) for destinations in dst_prefix".
spd_nat_target napt_target(const std::string& nat_addr, const std::string& inside_prefix, uint32_t reqid = 1);
// "SNAT every source of the inside set (ipsnat_inside, Datapath::set_inside) to nat_addr", the
// NAPT an out-policy for one address implies.
spd_nat_target napt_set_target(const std::string& nat_addr, uint32_t reqid = 1);
// "NAPT every host of inside_prefix over the pool of `count` addresses from `first` on" (a
// [[nat]] rule's range, or the block of a source selector smaller than the LAN).
spd_nat_target napt_pool_target(const std::string& first, uint32_t count, const std::string& inside_prefix,
                                uint32_t reqid = 1);
// "Map inside_prefix 1:1 onto nat_prefix".
spd_nat_target prefix_target(const std::string& nat_prefix, const std::string& inside_prefix, uint32_t reqid = 1);
// `t` only towards dst_prefix (a [[nat]] rule's `destinations`), inside the policy's destination.
spd_nat_target for_destination(spd_nat_target t, const std::string& dst_prefix);
// Makes dst_prefix covered by an out-policy that requires `target`.
void install_nat_target(Datapath& dp, const std::string& dst_prefix, const spd_nat_target& target);
// The same with the policy's source selector named (a pool lies inside it); priority: the
// kernel's (lower first), 0 for install_nat_target's.
void install_nat_target_from(Datapath& dp, const std::string& src_selector, const std::string& dst_prefix,
                             const spd_nat_target& target, uint32_t priority = 0);
// Removes the out-policies for dst_prefix that install_nat_target added (as when IKE deletes
// them): the SPD is rewritten the way the mirror does, a new generation and version.
void remove_nat_targets(Datapath& dp, const std::string& dst_prefix);
// Writes this datapath's SPD again, a new generation and version, as the mirror does after any
// change of the kernel's SPD (an IPv6 policy's too: it writes ipsnat_npt6 first, then flips).
void publish_spd(Datapath& dp);
// Adds out-policy p as it is (index, priority, selector; after the policies of its priority)
// and rewrites the SPD.
void install_policy(Datapath& dp, const spd::Policy& p);
// A policy as an IKE daemon installs it: src -> dst in `dir`, with an ESP tunnel template (reqid 1)
// unless !ipsec (an allow policy without templates: a bypass).
spd::Policy tunnel_policy(spd::Dir dir, const std::string& src, const std::string& dst, uint32_t index,
                          uint32_t priority, bool ipsec = true);

}  // namespace ipsnat::test
