/* IPv6 coverage for the leak guard (maps/cover6.h): one LPM lookup of the destination. */
#ifndef IPSNAT_BPF_LIB_COVER6_H
#define IPSNAT_BPF_LIB_COVER6_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/cover6.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_COVER6_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spd_cover6_key);
	__type(value, struct spd_cover6);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_cover6 SEC(".maps");

/* True when an IPv6 IPsec out-policy's destination prefix contains daddr. */
static __always_inline int cover6_covered(const __u8 *daddr)
{
	struct spd_cover6_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.daddr, daddr, 16);
	return bpf_map_lookup_elem(&spd_cover6, &k) != 0;
}

#endif
