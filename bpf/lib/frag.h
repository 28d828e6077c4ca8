/* IPv4 fragments. Only the first fragment carries the L4 header, so it alone can be looked up
 * in conntrack; when it is translated, the new address is remembered under (src, dst, IP id,
 * proto, direction) and later fragments of the datagram get the same address (their data is
 * covered by the L4 checksum that was updated in the first fragment).
 * Limitation: a later fragment that arrives before its first fragment is not translated: on
 * the SNAT side it is dropped (drop-frag-no-first: it cannot be sent consistently and must not
 * leave with the inside address), on the reverse side passed untouched (pass-frag-unknown). */
#ifndef IPSNAT_BPF_LIB_FRAG_H
#define IPSNAT_BPF_LIB_FRAG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/ct.h"
#include "lib/parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IPSNAT_FRAG_MAX_ENTRIES);
	__type(key, struct ipsnat_frag_key);
	__type(value, struct ipsnat_frag_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_frag SEC(".maps");

static __always_inline struct ipsnat_frag_key frag_key_of(const struct pkt4 *p, __u8 dir)
{
	struct ipsnat_frag_key k = {
		.saddr = p->saddr,
		.daddr = p->daddr,
		.id = p->ipid,
		.proto = p->proto,
		.dir = dir,
	};
	return k;
}

static __always_inline void frag_remember(const struct pkt4 *p, __u8 dir, __be32 xlat_addr)
{
	if (p->frag != PKT_FRAG_FIRST)
		return;
	struct ipsnat_frag_key k = frag_key_of(p, dir);
	struct ipsnat_frag_entry e = {
		.xlat_addr = xlat_addr,
		.created_ns = bpf_ktime_get_boot_ns(),
	};
	bpf_map_update_elem(&ipsnat_frag, &k, &e, BPF_ANY);
}

static __always_inline struct ipsnat_frag_entry *frag_lookup(const struct pkt4 *p, __u8 dir)
{
	struct ipsnat_frag_key k = frag_key_of(p, dir);

	return bpf_map_lookup_elem(&ipsnat_frag, &k);
}

#endif
