/* SPD lookups for the datapath. Contract used by the entry points:
 *   spd_nat_target(flow, &t)  -> 0 and t filled when an IPsec out-policy covers flow's destination
 *                                 (and protocol/ports) and names the inner source to use; -1 otherwise.
 *   spd_out_covered(flow)     -> true when a cleartext packet of this flow must not leave the WAN
 *                                 (an IPsec out-policy covers its destination).
 */
#ifndef IPSNAT_BPF_LIB_SPD_H
#define IPSNAT_BPF_LIB_SPD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/flow.h"
#include "maps/spd.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spd_dst_key);
	__type(value, struct spd_nat_target);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_nat SEC(".maps");

static __always_inline int spd_nat_target(const struct ipsnat_flow4 *flow, struct spd_nat_target *out)
{
	struct spd_dst_key key = { .prefixlen = 32, .daddr = flow->daddr };
	struct spd_nat_target *t = bpf_map_lookup_elem(&spd_nat, &key);

	if (!t)
		return -1;
	*out = *t;
	return 0;
}

static __always_inline int spd_out_covered(const struct ipsnat_flow4 *flow)
{
	struct spd_dst_key key = { .prefixlen = 32, .daddr = flow->daddr };

	return bpf_map_lookup_elem(&spd_nat, &key) != 0;
}

#endif
