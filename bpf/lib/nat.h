/* The SNAT decision and binding: what a new flow is translated to (from the SPD's
 * spd_nat_target) and which NAT port it gets; and the rewrite of a packet's address and port.
 *
 * NAPT: every inside host to one address; the original port is kept when it is in the
 * configured range and free (an echo id whenever it is free; a privileged port below the range
 * too, searched in its own class when taken: nat_privileged_class), otherwise the range is
 * searched from a random start with a bounded loop (NAT_PORT_TRIES probes). A port is claimed by inserting the flow's REPLY entry
 * with BPF_NOEXIST (ct_create), so two CPUs never get the same binding. Bindings are
 * endpoint-dependent (the REPLY key holds the remote address and port), so one NAT port serves
 * many remote endpoints. UDP and TCP ports 500 and 4500 are never used on the NAT address:
 * they belong to IKE/NAT-T (and IKE over TCP, RFC 8229), nor is a port-forward's outside port
 * (lib/fwd.h) on its address.
 * NAPT over a pool (nat_span > 0, maps/spd.h): the address is chosen per LAN source, not per
 * flow (spd_nat_pool_pick: one host keeps one address); the port search goes on to the pool's
 * next addresses (NAT_POOL_TRIES at most) only when it finds no free port on that one towards
 * the flow's remote endpoint, each address passed over counted as nat-pool-address-full. One
 * bpf_loop walks (address, port) pairs, so a pool costs the verifier nothing more.
 * PREFIX: 1:1 map of the inside prefix onto the NAT prefix; ports are kept.
 * Portless protocols (GRE, IP in IP, ...): the address alone, one binding per inside host,
 * remote address and protocol (nat_proto_portless). */
#ifndef IPSNAT_BPF_LIB_NAT_H
#define IPSNAT_BPF_LIB_NAT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/ct.h"
#include "maps/spd.h"
#include "maps/stats.h"
#include "lib/config.h"
#include "lib/csum.h"
#include "lib/ct.h"
#include "lib/fwd.h"
#include "lib/inside.h"
#include "lib/parse.h"
#include "lib/scratch.h"
#include "lib/stats.h"

#define NAT_PORT_TRIES 256
#define NAT_POOL_TRIES 4
#define NAT_CLAIM_ROUNDS 2

#ifndef IPPROTO_DCCP
#define IPPROTO_DCCP 33
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif

/* A protocol without ports that NAT translates by its address alone, as netfilter's generic
 * tracking does (GRE, IPv6 in IPv4, IP in IP, ...): one binding per inside host, remote
 * address and protocol, its ports 0 (a second inside host to the same remote address with the
 * same protocol finds the binding taken: drop-no-port). Not ICMP (echo only, by its id), not
 * ESP and AH (the gateway's own SAs with a remote peer are keyed alike and must never be
 * translated to an inside host; a LAN's own IPsec goes through NAT with NAT-T), not SCTP, DCCP
 * and UDP-Lite (they have ports; DCCP's and UDP-Lite's checksums cover the addresses). */
static __always_inline int nat_proto_portless(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_SCTP:
	case IPPROTO_DCCP:
	case IPPROTO_UDPLITE:
		return 0;
	}
	return 1;
}

/* The protocols NAT translates: TCP, UDP, ICMP (echo requests: nat_tuple_supported), portless
 * protocols. */
static __always_inline int nat_proto_translated(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_ICMP || nat_proto_portless(proto);
}

/* The tuples NAT can translate: TCP, UDP, ICMP echo requests, portless protocols. */
static __always_inline int nat_tuple_supported(const struct pkt4 *p)
{
	return p->proto == IPPROTO_ICMP ? p->icmp_type == ICMP_ECHO : nat_proto_translated(p->proto);
}

static __always_inline int nat_port_reserved(__u8 proto, __u16 port)
{
	return proto != IPPROTO_ICMP && (port == 500 || port == 4500);
}

/* A privileged source port (1-1023) below the NAT port range stays privileged, as in netfilter's
 * NAT (nf_nat_l4proto_unique_tuple): kept when free, else searched in 1-511 when it lies below
 * 512, in 600-1023 otherwise. Servers that trust only privileged ports (an NFS export's default
 * "secure" option, rsh) go on answering a LAN host behind the NAT. Returns whether port is one;
 * *min and *max then hold its class. Not for echo identifiers, which are not ports. */
static __always_inline int nat_privileged_class(__u16 port, __u32 *min, __u32 *max)
{
	if (!port || port >= 1024 || port >= *min)
		return 0;
	*min = port < 512 ? 1 : 600;
	*max = port < 512 ? 511 : 1023;
	return 1;
}

/* Already carrying the source the policy wants (the gateway's own traffic, or a packet that
 * comes round again after an LWT reroute). */
static __always_inline int nat_source_ok(const struct spd_nat_target *t, __be32 saddr)
{
	if (t->kind == SPD_NAT_PREFIX)
		return (saddr & t->nat_mask) == (t->nat_addr & t->nat_mask);
	/* Unsigned: an address below the pool wraps round above its span. */
	return bpf_ntohl(saddr) - bpf_ntohl(t->nat_addr) <= t->nat_span;
}

static __always_inline int nat_source_inside(const struct spd_nat_target *t, __be32 saddr)
{
	return inside_eligible(t, saddr);
}

/* PREFIX: the host part relative to the inside prefix, placed in the NAT prefix; 0 when it
 * does not fit (NAT prefix smaller than the inside one and the host beyond it). */
static __always_inline __be32 nat_prefix_map(const struct spd_nat_target *t, __be32 saddr)
{
	__be32 host = saddr & ~t->inside_mask;

	if (host & t->nat_mask)
		return 0;
	return (t->nat_addr & t->nat_mask) | host;
}

/* Tries one NAT port; returns an enum ct_create_result. */
static __always_inline int nat_try_port(struct nat_new_flow *n, __u16 port)
{
	n->orig_e.xlat_port = bpf_htons(port);
	n->reply_k.dport = bpf_htons(port);
	return ct_create(&n->orig_k, &n->orig_e, &n->reply_k, &n->reply_e);
}

/* The a-th address the NAPT of one source tries: its preferred one (first) and the next ones of
 * the pool of `size` addresses from base (host order). */
static __always_inline __be32 nat_pool_addr(__u32 base, __u32 size, __u32 first, __u32 a)
{
	return bpf_htonl(base + (first + a) % size);
}

struct nat_search {
	__u32 base; /* the pool (host order): size addresses from base, the source's is first */
	__u32 size;
	__u32 first;
	__u32 per_addr; /* probes per address */
	__u32 min;
	__u32 range;
	__u32 start;
	__u16 orig_port;
	__u8 proto;
	__u16 found; /* 0: none free */
	__u32 found_at; /* the address's place in the order tried (0: the preferred one) */
	/* The new flow, in this CPU's scratch slot: each probe writes the candidate into its REPLY
	 * key, so the key needs no copy in this stack frame (Linux 6.1 counts the frames of a call
	 * chain against 512 bytes: tests/stack/check-stack.py). */
	struct nat_new_flow *n;
};

/* Looks only: a port is a candidate when no REPLY entry holds it for this remote endpoint;
 * the caller claims it. Probe i looks at the (i / per_addr)-th address tried. (On the 6.1
 * kernel the claim after a taken port fails with drop-ct-full, inside or outside the callback
 * alike: docs/datapath.md, open.) */
static long nat_probe(__u32 i, void *ctx)
{
	struct nat_search *s = ctx;
	__u32 at = i / s->per_addr;
	__be32 addr = nat_pool_addr(s->base, s->size, s->first, at);
	__u16 port = s->min + (s->start + i) % s->range;

	if ((!at && port == s->orig_port) || nat_port_reserved(s->proto, port) ||
	    fwd_port_reserved(addr, s->proto, port))
		return 0;
	struct nat_new_flow *n = s->n;

	if (!n)
		return 1;
	n->reply_k.daddr = addr;
	n->reply_k.dport = bpf_htons(port);
	if (bpf_map_lookup_elem(&ipsnat_ct, &n->reply_k))
		return 0;
	s->found = port;
	s->found_at = at;
	return 1; /* stops the loop */
}

/* The addresses of a pool the port search passed over because each had no free port. */
static __always_inline void nat_pool_count_full(__u32 n, __u32 bytes)
{
	__u32 key = IPSNAT_R_NAT_POOL_ADDR_FULL;
	struct ipsnat_counter *c = n ? bpf_map_lookup_elem(&ipsnat_stats, &key) : 0;

	if (c) {
		c->packets += n;
		c->bytes += (__u64)n * bytes;
	}
}

/* nat_bind's answer when another CPU created the flow first: look its entry up. */
#define NAT_BOUND_RACED (-1)

static __always_inline int nat_bound(int result, const struct nat_new_flow *n, struct ct_xlat *x)
{
	if (result == CT_RACED)
		return NAT_BOUND_RACED;
	x->addr = n->orig_e.xlat_addr;
	x->port = n->orig_e.xlat_port;
	return 0;
}

/* What a new flow is bound to: the NAT address, how the binding was decided, the reqid of the
 * policy that protects it (0: none), and the NAPT port range (host order, inclusive). A NAPT
 * pool: pool_size addresses from pool_base (host order), nat_addr the preferred one, at place
 * pool_first; pool_size 0 or 1: nat_addr alone. */
struct nat_request {
	__be32 nat_addr;
	__u32 reqid;
	__u8 kind; /* enum ipsnat_ct_kind */
	__u8 pad[3];
	__u32 port_min;
	__u32 port_max;
	__u32 pool_base;
	__u32 pool_size;
	__u32 pool_first;
};

/* The two entries of a new flow of p bound as r asks (the NAT port still to be chosen). */
static __always_inline void nat_new_flow_init(struct nat_new_flow *n, const struct pkt4 *p,
					      const struct nat_request *r, __u64 spd_version)
{
	__u64 now = ct_now();

	n->orig_k = ct_key_of(p, IPSNAT_CT_ORIG);
	n->orig_e.xlat_addr = r->nat_addr;
	n->orig_e.kind = r->kind;
	n->orig_e.reqid = r->reqid;
	n->orig_e.created_ns = now;
	n->orig_e.last_ns = now;
	n->orig_e.spd_version = spd_version;
	n->reply_e = n->orig_e;
	n->reply_e.xlat_addr = p->saddr;
	n->reply_e.xlat_port = p->sport;
	n->reply_k.saddr = p->daddr;
	n->reply_k.daddr = r->nat_addr;
	n->reply_k.sport = p->dport;
	n->reply_k.proto = p->proto;
	n->reply_k.dir = IPSNAT_CT_REPLY;
	/* What ct_account would have recorded for this first packet. */
	n->orig_e.packets = 1;
	n->orig_e.bytes = p->ip_len;
	if (p->proto == IPPROTO_TCP)
		n->orig_e.seen = p->tcp_flags & CT_SEEN_MASK;
}

/* NAPT binding of new flow n (of packet p, as req asks) to req->nat_addr: the original port when
 * it is in the range and free (an echo id whenever it is free), else a searched one. Returns as
 * nat_bind. */
static __always_inline int nat_bind_napt(struct nat_new_flow *n, const struct pkt4 *p,
					 const struct nat_request *req, struct ct_xlat *x)
{
	__u16 orig_port = bpf_ntohs(p->sport);
	__u32 min = req->port_min, max = req->port_max;
	int r;

	/* Echo identifiers are arbitrary 16-bit values: the original is kept whatever the range.
	 * The masquerade keeps its range: below it lie the gateway's own sockets (lib/masq.h). */
	int privileged = p->proto != IPPROTO_ICMP && req->kind == IPSNAT_CT_KIND_NAPT &&
			 nat_privileged_class(orig_port, &min, &max);
	int keep = p->proto == IPPROTO_ICMP || privileged || (orig_port >= min && orig_port <= max);
	if (keep && !nat_port_reserved(p->proto, orig_port) &&
	    !fwd_port_reserved(req->nat_addr, p->proto, orig_port)) {
		r = nat_try_port(n, orig_port);
		if (r == CT_CREATED || r == CT_RACED)
			return nat_bound(r, n, x);
		if (r == CT_FULL)
			return IPSNAT_R_DROP_CT_FULL;
	}
	struct nat_search ns = {
		.base = bpf_ntohl(req->nat_addr),
		.size = 1,
		.min = min,
		.range = max - min + 1,
		.orig_port = orig_port,
		.proto = p->proto,
		.n = n,
	};
	if (req->pool_size > 1) {
		ns.base = req->pool_base;
		ns.size = req->pool_size;
		ns.first = req->pool_first;
	}
	ns.per_addr = ns.range < NAT_PORT_TRIES ? ns.range : NAT_PORT_TRIES;
	__u32 addrs = ns.size < NAT_POOL_TRIES ? ns.size : NAT_POOL_TRIES;
	/* A free port found by the search can be claimed by another CPU before this one inserts
	 * it: the claim (BPF_NOEXIST) tells, and the search runs again from elsewhere. */
	for (int round = 0; round < NAT_CLAIM_ROUNDS; round++) {
		ns.start = bpf_get_prandom_u32();
		ns.found = 0;
		/* bpf_loop: the verifier checks the probe once, not NAT_PORT_TRIES times. */
		bpf_loop(ns.per_addr * addrs, nat_probe, &ns, 0);
		if (!ns.found) {
			nat_pool_count_full(addrs > 1 ? addrs : 0, p->ip_len);
			return IPSNAT_R_DROP_NO_PORT;
		}
		n->orig_e.xlat_addr = n->reply_k.daddr; /* the found port's address (nat_probe) */
		r = nat_try_port(n, ns.found);
		if (r == CT_CREATED || r == CT_RACED) {
			nat_pool_count_full(ns.found_at, p->ip_len);
			return nat_bound(r, n, x);
		}
		if (r == CT_FULL)
			return IPSNAT_R_DROP_CT_FULL;
	}
	return IPSNAT_R_DROP_NO_PORT;
}

/* Creates the binding req asks for, its ORIG entry already accounting for packet p: PREFIX
 * kinds keep the port, the others are NAPT. Returns 0 with the translation in *x,
 * NAT_BOUND_RACED (another CPU created the flow meanwhile), or the drop reason. spd_version:
 * the SPD version read before the decision (docs/datapath.md).
 * A global function, never inlined: the verifier checks it once, on its own with its arguments
 * unknown, rather than once more for every path of its callers that reaches it. So the new-flow
 * search no longer multiplies the paths of xlate_snat and the guard's masquerade, which Linux
 * 6.1's verifier walks against its limit of 1,000,000 instructions (docs/datapath.md, "Verifier
 * budget"). The verifier takes its pointer arguments as possibly NULL: they are checked. */
__noinline int nat_bind_req(const struct pkt4 *p, const struct nat_request *req, __u64 spd_version,
			    struct ct_xlat *x)
{
	struct nat_new_flow *n = nat_scratch();

	if (!p || !req || !x || !n)
		return IPSNAT_R_DROP_CT_FULL;
	__builtin_memset(n, 0, sizeof(*n));
	nat_new_flow_init(n, p, req, spd_version);
	/* A portless protocol has nothing to search: its binding is the address. */
	if (req->kind != IPSNAT_CT_KIND_PREFIX && !nat_proto_portless(p->proto))
		return nat_bind_napt(n, p, req, x);
	int r = nat_try_port(n, bpf_ntohs(p->sport));
	if (r == CT_CREATED || r == CT_RACED)
		return nat_bound(r, n, x);
	return r == CT_FULL ? IPSNAT_R_DROP_CT_FULL : IPSNAT_R_DROP_NO_PORT;
}

/* The binding SPD target t implies for a new flow of p. */
static __always_inline int nat_bind(const struct pkt4 *p, const struct spd_nat_target *t, __u64 spd_version,
				    struct ct_xlat *x)
{
	struct nat_request req = { .reqid = t->reqid };

	*x = (struct ct_xlat){}; /* nat_bind_req's argument must be initialized memory */
	if (t->kind == SPD_NAT_PREFIX) {
		req.nat_addr = nat_prefix_map(t, p->saddr);
		req.kind = IPSNAT_CT_KIND_PREFIX;
	} else {
		req.kind = IPSNAT_CT_KIND_NAPT;
		cfg_port_range(&req.port_min, &req.port_max);
		req.pool_base = bpf_ntohl(t->nat_addr);
		req.pool_size = (__u32)t->nat_span + 1;
		req.pool_first = spd_nat_pool_pick(bpf_ntohl(p->saddr), t->nat_span);
		req.nat_addr = nat_pool_addr(req.pool_base, req.pool_size, req.pool_first, 0);
	}
	return nat_bind_req(p, &req, spd_version, x);
}

/* Offset of the 16-bit L4 field that carries the source (src = 1) or destination port: the
 * echo identifier for ICMP. */
static __always_inline __u32 nat_port_off(const struct pkt4 *p, int src)
{
	if (p->proto == IPPROTO_ICMP)
		return p->l4 + 4;
	return p->l4 + (src ? 0 : 2);
}

/* Rewrites the source (src = 1) or destination address, and the matching port unless the
 * packet is a later fragment, with every checksum. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt4 *p, int src,
				       __be32 addr, __be16 port)
{
	int has_l4 = p->frag != PKT_FRAG_LATER && p->l4_csum_off;
	int l4_csum = has_l4 ? (int)(p->l4 + p->l4_csum_off) : -1;
	int pseudo_csum = p->proto == IPPROTO_ICMP ? -1 : l4_csum;

	if (csum_rewrite_addr(skb, p->l3, src ? IPV4_SADDR_OFF : IPV4_DADDR_OFF,
			      src ? p->saddr : p->daddr, addr, pseudo_csum, p->proto))
		return -1;
	if (!has_l4)
		return 0;
	return csum_rewrite_port(skb, nat_port_off(p, src), src ? p->sport : p->dport, port, l4_csum,
				 p->proto);
}

#endif
