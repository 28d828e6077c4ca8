/* IPv6 fragments of NAT66 flows, as lib/frag.h for IPv4: the first fragment (offset 0, M set)
 * carries the upper-layer header, is translated by its flow, and leaves the new address in
 * ipsnat_frag6 (maps/frag6.h); later fragments get that address (their data is covered by the
 * upper-layer checksum the first fragment's translation updated). The key names the fragment
 * header's next header, which every fragment carries alike, not the upper layer only the first
 * fragment's walk reaches (destination options may come between). */
#ifndef IPSNAT_BPF_LIB_FRAG6_H
#define IPSNAT_BPF_LIB_FRAG6_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/frag6.h"
#include "lib/parse6.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IPSNAT_FRAG6_MAX_ENTRIES);
	__type(key, struct ipsnat_frag6_key);
	__type(value, struct ipsnat_frag6_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_frag6 SEC(".maps");

static __always_inline struct ipsnat_frag6_key frag6_key_of(const struct pkt6 *p, __u8 dir)
{
	struct ipsnat_frag6_key k = { .id = p->frag_id, .proto = p->frag_next, .dir = dir };

	__builtin_memcpy(k.saddr, p->saddr, 16);
	__builtin_memcpy(k.daddr, p->daddr, 16);
	return k;
}

static __always_inline void frag6_remember(const struct pkt6 *p, __u8 dir, const __u8 *xlat_addr, __u32 reqid)
{
	if (p->fragment != PKT6_FRAG_FIRST)
		return;
	struct ipsnat_frag6_key k = frag6_key_of(p, dir);
	struct ipsnat_frag6_entry e = { .reqid = reqid, .created_ns = bpf_ktime_get_boot_ns() };

	__builtin_memcpy(e.xlat_addr, xlat_addr, 16);
	bpf_map_update_elem(&ipsnat_frag6, &k, &e, BPF_ANY);
}

static __always_inline struct ipsnat_frag6_entry *frag6_lookup(const struct pkt6 *p, __u8 dir)
{
	struct ipsnat_frag6_key k = frag6_key_of(p, dir);

	return bpf_map_lookup_elem(&ipsnat_frag6, &k);
}

#endif
