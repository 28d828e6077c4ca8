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

/* A later fragment's leading bytes, kept across netfilter's second look at it (policy mode beside
 * a masquerade or SNAT rule on the uplink). netfilter NATs the whole datagram in POSTROUTING, the
 * kernel then fragments it for the LWT route, and each fragment that lwt_snat_xmit translates and
 * reroutes meets POSTROUTING again in xfrm4_output: the connection's binding is applied once more
 * (nf_nat_ipv4_manip_pkt does not look at the fragment offset), so a later fragment's first bytes
 * are written as if they were the L4 header (the port, the checksum: UDP bytes 0-1 and 6-7, TCP
 * 0-1 and 16-17, an ICMP echo's 2-5). nf_xfrm_me_harder then sends the fragment through the LWT
 * route again (docs/datapath.md, "Masqueraded sources"). That second pass runs nested in the
 * first one's reroute, on the same CPU and before any other packet, so the first pass keeps the
 * bytes in this CPU's slot and the second puts them back. Not pinned: it holds nothing between
 * two packets' passes. */
#define FRAG_HEAD_MAX 20 /* the most netfilter writes: a TCP header's */

struct frag_head {
	__be32 saddr;
	__be32 daddr;
	__be32 id_off;  /* the IP header's id and flags/offset word, as on the wire */
	__be32 now_off; /* the same word of the fragment at hand */
	__u8 proto;
	__u8 len;       /* bytes kept; 0: the slot is empty */
	__u8 pad[2];
	__u8 bytes[FRAG_HEAD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct frag_head);
} ipsnat_fraghd SEC(".maps");

/* Keeps the leading bytes of later fragment p (first pass), or puts back the bytes its first pass
 * kept (the second). netfilter drops a fragment shorter than the 8 bytes it writes
 * (skb_ensure_writable fails), so such a fragment is padded to 8 bytes past its IP header's total
 * length, which stays as it is, and the second pass cuts the padding off again. Nonzero: the
 * packet could not be changed. */
static __always_inline int frag_head_guard(struct __sk_buff *skb, const struct pkt4 *p)
{
	__u32 zero = 0;
	struct frag_head *h = bpf_map_lookup_elem(&ipsnat_fraghd, &zero);
	__u32 end = p->l3 + p->ip_len;

	if (!h || bpf_skb_load_bytes(skb, p->l3 + 4, &h->now_off, sizeof(h->now_off)))
		return 0;
	if (h->len && h->saddr == p->saddr && h->daddr == p->daddr && h->id_off == h->now_off &&
	    h->proto == p->proto) {
		__u8 len = h->len;

		h->len = 0;
		if (len == FRAG_HEAD_MAX)
			return bpf_skb_store_bytes(skb, p->l4, h->bytes, FRAG_HEAD_MAX, 0);
		if (bpf_skb_store_bytes(skb, p->l4, h->bytes, 8, 0))
			return -1;
		return skb->len > end ? bpf_skb_change_tail(skb, end, 0) : 0;
	}
	h->len = 0;
	if (end >= p->l4 + FRAG_HEAD_MAX) {
		if (bpf_skb_load_bytes(skb, p->l4, h->bytes, FRAG_HEAD_MAX))
			return 0;
		h->len = FRAG_HEAD_MAX;
	} else {
		if (skb->len < p->l4 + 8 && bpf_skb_change_tail(skb, p->l4 + 8, 0))
			return -1;
		if (bpf_skb_load_bytes(skb, p->l4, h->bytes, 8))
			return 0;
		h->len = 8;
	}
	h->saddr = p->saddr;
	h->daddr = p->daddr;
	h->id_off = h->now_off;
	h->proto = p->proto;
	return 0;
}

#endif
