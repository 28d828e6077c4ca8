/* The inside set (maps/inside.h): which sources a NAPT target marked SPD_NAT_INSIDE_SET
 * translates. One LPM lookup, made only for a flow conntrack does not know yet. */
#ifndef IPSNAT_BPF_LIB_INSIDE_H
#define IPSNAT_BPF_LIB_INSIDE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/inside.h"
#include "maps/spd.h"
#include "lib/config.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_INSIDE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipsnat_inside_key);
	__type(value, struct ipsnat_inside_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_inside SEC(".maps");

/* The flags of the longest inside entry containing addr, 0 when none does. */
static __always_inline __u32 inside_flags(__be32 addr)
{
	struct ipsnat_inside_key k = { .prefixlen = 32, .addr = addr };
	struct ipsnat_inside_val *v = bpf_map_lookup_elem(&ipsnat_inside, &k);

	return v ? v->flags : 0;
}

/* Whether target t translates source saddr: its block, or for an inside-set target a source
 * within a LAN prefix. */
static __always_inline int inside_eligible(const struct spd_nat_target *t, __be32 saddr)
{
	if ((saddr & t->inside_mask) != (t->inside_net & t->inside_mask))
		return 0;
	if (!(t->flags & SPD_NAT_INSIDE_SET))
		return 1;
	return (inside_flags(saddr) & INSIDE_PREFIX) != 0;
}

/* A LAN packet netfilter's SNAT/MASQUERADE rewrote in POSTROUTING, before the LWT xmit hook: its
 * source is one of the gateway's own addresses (those rules always pick one), yet it was forwarded
 * from a device ipsnat is not attached to (lib/config.h). */
static __always_inline int inside_masqueraded(struct __sk_buff *skb, __be32 saddr)
{
	return forwarded_from_unattached(skb) && (inside_flags(saddr) & INSIDE_LOCAL) != 0;
}

#endif
