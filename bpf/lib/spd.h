/* SPD lookups for the datapath, on the maps the loader compiles (maps/spd.h, docs/spd.md).
 * Contract used by the entry points:
 *   spd_nat_target(flow, &t, reroute) -> 0 and t filled when an IPsec out-policy covers flow's
 *                                 destination and, with the flow's source translated by t, is the
 *                                 very policy the kernel would choose; with reroute (LWT
 *                                 BPF_LWT_REROUTE, whose lookup carries no ports) also the policy it
 *                                 chooses for the translated flow with ports 0. -1 otherwise;
 *                                 SPD_NAT_PORTS_LOST when only the reroute's lost ports stood in
 *                                 the way (a port-restricted policy, or one ahead that port 0 meets).
 *   spd_out_covered(flow)     -> true when a cleartext packet of this flow must not leave: for some
 *                                 source the kernel would choose an IPsec out-policy for this
 *                                 destination, protocol, ports, mark and if_id (SPD_OUT_COVERED),
 *                                 or the maps are stale and fail closed (SPD_OUT_FAIL_CLOSED), or
 *                                 for some source the kernel might choose a policy the maps cannot
 *                                 express (SPD_V_UNKNOWN; SPD_OUT_UNREPRESENTABLE).
 *   spd_out_covered_some_ports(flow) -> the same for a flow whose ports are unknown: covered when
 *                                 some ports would make it covered.
 * Cost: two LPM lookups and a list of <= SPD_MAX_CANDIDATES per evaluation, whatever the SPD size.
 * Ports: the kernel's xfrm ports, i.e. transport ports for TCP/UDP/UDP-Lite/SCTP/DCCP, else 0
 * (the compiler refuses policies with ports on other protocols). NAPT keeps the source port for
 * the check (a policy restricted by source port is checked with the inside port). */
#ifndef IPSNAT_BPF_LIB_SPD_H
#define IPSNAT_BPF_LIB_SPD_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/flow.h"
#include "maps/spd.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spd_active);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spd_dst_key);
	__type(value, struct spd_cell);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_dst SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spd_src_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IPSNAT_SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spd_list_key);
	__type(value, struct spd_list);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_lists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spd_health);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} spd_health SEC(".maps");

/* SPD_OUT_FAIL_CLOSED: the maps are stale (the SPD did not fit, maps/spd.h spd_health): every
 * flow the active generation does not cover is treated as covered. SPD_OUT_UNREPRESENTABLE: not
 * covered by a policy the maps express, but the kernel might choose one they cannot
 * (SPD_V_UNKNOWN) for this flow: treated as covered. */
#define SPD_OUT_COVERED 1
#define SPD_OUT_FAIL_CLOSED 2
#define SPD_OUT_UNREPRESENTABLE 3

static __always_inline int spd_fail_closed(void)
{
	__u32 zero = 0;
	struct spd_health *h = bpf_map_lookup_elem(&spd_health, &zero);

	return h && (h->flags & SPD_HEALTH_FAIL_CLOSED) ? SPD_OUT_FAIL_CLOSED : 0;
}

struct spd_q {
	__u32 gen;
	__u32 mark;
	__u16 sport; /* host order xfrm ports */
	__u16 dport;
	__u8 proto;
};

/* The SPD version the datapath reads now (maps/spd.h spd_active): conntrack entries remember
 * the one their translation was last checked against. An array lookup the verifier inlines. */
static __always_inline __u64 spd_version_now(void)
{
	__u32 zero = 0;
	struct spd_active *a = bpf_map_lookup_elem(&spd_active, &zero);

	return a ? a->version : 0;
}

static __always_inline void spd_q_init(struct spd_q *q, const struct ipsnat_flow4 *f)
{
	__u32 zero = 0;
	struct spd_active *a = bpf_map_lookup_elem(&spd_active, &zero);

	q->gen = a ? a->gen : 0;
	q->mark = f->mark;
	q->proto = f->proto;
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_UDPLITE ||
	    f->proto == IPPROTO_SCTP || f->proto == IPPROTO_DCCP) {
		q->sport = bpf_ntohs(f->sport);
		q->dport = bpf_ntohs(f->dport);
	} else {
		q->sport = 0;
		q->dport = 0;
	}
}

static __always_inline struct spd_cell *spd_dst_cell(const struct spd_q *q, const struct ipsnat_flow4 *f)
{
	struct spd_dst_key k = { .prefixlen = 96, .gen = q->gen, .if_id = f->if_id, .daddr = f->daddr };

	return bpf_map_lookup_elem(&spd_dst, &k);
}

/* First matching candidate of a list: 0 and its index/verdict (and reqid, its first template's,
 * unless NULL), or -1. */
static __always_inline int spd_eval_list(const struct spd_q *q, __u32 list, __u32 *index, __u32 *verdict,
					 __u32 *reqid)
{
	struct spd_list_key k = { .gen = q->gen, .list = list };
	struct spd_list *l = bpf_map_lookup_elem(&spd_lists, &k);

	if (!l)
		return -1;
	for (int i = 0; i < SPD_MAX_CANDIDATES; i++) {
		if (i >= l->n)
			break;
		struct spd_cand *c = &l->c[i];
		if ((c->proto == 0 || c->proto == q->proto) && ((q->sport ^ c->sport) & c->sport_mask) == 0 &&
		    ((q->dport ^ c->dport) & c->dport_mask) == 0 && (q->mark & c->mark_m) == c->mark_v) {
			*index = c->policy_index;
			*verdict = c->verdict;
			if (reqid)
				*reqid = c->reqid;
			return 0;
		}
	}
	return -1;
}

/* The kernel's out-policy choice for (saddr, the cell's destination, q): 0 and index/verdict
 * (reqid unless NULL), or -1. */
static __always_inline int spd_lookup_in(const struct spd_q *q, __u32 cell, __be32 saddr, __u32 *index,
					 __u32 *verdict, __u32 *reqid)
{
	struct spd_src_key k = { .prefixlen = 96, .gen = q->gen, .cell = cell, .saddr = saddr };
	__u32 *list = bpf_map_lookup_elem(&spd_src, &k);

	if (!list)
		return -1;
	return spd_eval_list(q, *list, index, verdict, reqid);
}

/* The kernel's out-policy choice for the flow itself. */
static __always_inline int spd_lookup(const struct ipsnat_flow4 *f, __u32 *index, __u32 *verdict, __u32 *reqid)
{
	struct spd_q q;

	spd_q_init(&q, f);
	struct spd_cell *cell = spd_dst_cell(&q, f);
	if (!cell)
		return -1;
	return spd_lookup_in(&q, cell->cell, f->saddr, index, verdict, reqid);
}

#define SPD_NAT_PORTS_LOST (-2)

/* The source target t gives saddr: PREFIX maps the host part; NAPT names nat_addr, or over a pool
 * the address this source prefers (spd_nat_pool_pick). */
static __always_inline __be32 spd_nat_source(const struct spd_nat_target *t, __be32 saddr)
{
	if (t->kind == SPD_NAT_PREFIX)
		return (t->nat_addr & t->nat_mask) | (saddr & ~t->inside_mask);
	if (!t->nat_span)
		return t->nat_addr;
	return bpf_htonl(bpf_ntohl(t->nat_addr) + spd_nat_pool_pick(bpf_ntohl(saddr), t->nat_span));
}

static __always_inline int spd_nat_target(const struct ipsnat_flow4 *f, struct spd_nat_target *out, int reroute)
{
	struct spd_q q;
	int lost = 0;

	spd_q_init(&q, f);
	struct spd_cell *cell = spd_dst_cell(&q, f);
	if (!cell)
		return -1;
	struct spd_q portless = q;
	portless.sport = 0;
	portless.dport = 0;
	for (int i = 0; i < SPD_MAX_NAT; i++) {
		if (i >= cell->n_nat)
			break;
		struct spd_nat_target *t = &cell->nat[i];
		if ((f->saddr & t->inside_mask) != t->inside_net || (f->daddr & t->dst_mask) != t->dst_net)
			continue;
		__be32 x = spd_nat_source(t, f->saddr);
		__u32 index, verdict;
		if (spd_lookup_in(&q, cell->cell, x, &index, &verdict, 0) || index != t->policy_index)
			continue;
		if (reroute && (spd_lookup_in(&portless, cell->cell, x, &index, &verdict, 0) || index != t->policy_index)) {
			lost = 1;
			continue;
		}
		*out = *t;
		return 0;
	}
	return lost ? SPD_NAT_PORTS_LOST : -1;
}

/* What a list's first match for the flow means for the guard: SPD_OUT_COVERED (IPsec),
 * SPD_OUT_UNREPRESENTABLE (a policy the maps cannot express), or 0. */
static __always_inline int spd_verdict_cover(__u32 verdict)
{
	return verdict == SPD_V_IPSEC ? SPD_OUT_COVERED : verdict == SPD_V_UNKNOWN ? SPD_OUT_UNREPRESENTABLE : 0;
}

/* A list's candidates as they match a flow whose ports are unknown: SPD_OUT_COVERED when for
 * some ports the first match is an IPsec policy (SPD_OUT_UNREPRESENTABLE: one the maps cannot
 * express). A candidate with port conditions may or may not match, so it covers when it is
 * IPsec (or unknown) and is stepped over otherwise; one without port conditions matches every
 * port, so it ends the list (covering when IPsec). */
static __always_inline int spd_list_covers_some_ports(const struct spd_q *q, __u32 list)
{
	struct spd_list_key k = { .gen = q->gen, .list = list };
	struct spd_list *l = bpf_map_lookup_elem(&spd_lists, &k);

	if (!l)
		return 0;
	for (int i = 0; i < SPD_MAX_CANDIDATES; i++) {
		if (i >= l->n)
			break;
		struct spd_cand *c = &l->c[i];
		if ((c->proto != 0 && c->proto != q->proto) || (q->mark & c->mark_m) != c->mark_v)
			continue;
		int cover = spd_verdict_cover(c->verdict);
		if (cover)
			return cover;
		if (c->sport_mask == 0 && c->dport_mask == 0)
			return 0;
	}
	return 0;
}

/* some_ports: the flow's ports are unknown (spd_out_covered_some_ports). */
static __always_inline int spd_out_covered_as(const struct ipsnat_flow4 *f, int some_ports)
{
	struct spd_q q;

	spd_q_init(&q, f);
	struct spd_cell *cell = spd_dst_cell(&q, f);
	if (!cell)
		return spd_fail_closed();
	if (cell->flags & SPD_CELL_ALWAYS_COVERED)
		return SPD_OUT_COVERED;
	int unknown = 0;
	for (int i = 0; i < SPD_MAX_COVER; i++) {
		if (i >= cell->n_cover)
			break;
		__u32 index, verdict;
		int cover = 0;
		if (some_ports)
			cover = spd_list_covers_some_ports(&q, cell->cover[i]);
		else if (spd_eval_list(&q, cell->cover[i], &index, &verdict, 0) == 0)
			cover = spd_verdict_cover(verdict);
		if (cover == SPD_OUT_COVERED)
			return SPD_OUT_COVERED;
		unknown |= cover;
	}
	return unknown ? SPD_OUT_UNREPRESENTABLE : spd_fail_closed();
}

static __always_inline int spd_out_covered(const struct ipsnat_flow4 *f)
{
	return spd_out_covered_as(f, 0);
}

/* spd_out_covered for a packet whose ports cannot be read (a later fragment, a header the parser
 * refuses): covered when some ports would make the flow covered. f's ports are ignored. */
static __always_inline int spd_out_covered_some_ports(const struct ipsnat_flow4 *f)
{
	return spd_out_covered_as(f, 1);
}

#endif
