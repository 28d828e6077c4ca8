/* NAT66 with ports on route-mode devices: an IPv6 out-policy whose source selector is one address
 * (a NPT6_KIND_NAT66 rule of ipsnat_npt6, maps/npt6.h) takes every source of the IPv6 inside
 * set (every IPv6 LAN prefix; a [[nat]] rule's, its own inside prefix) to that address with a port from the NAPT range, as IPv4 NAPT does (lib/nat.h: the
 * original port when it is in the range and free, an echo identifier whenever it is free, a
 * privileged port in its class, else a
 * bounded search from a random start; the REPLY entry claims the port with BPF_NOEXIST). Replies
 * are translated back by IPv6 conntrack (ipsnat_ct6, maps/ct6.h) only: nothing from the far side
 * opens a flow. On a policy-mode uplink a reply comes back only from an SA of the reqid of the
 * policy protecting its flow (the flow's entries keep the rule's reqid, as IPv4's keep the SPD's).
 * An established flow is checked against its rule again after every SPD change (the entries'
 * spd_version, as IPv4's, docs/datapath.md "Established flows and SPD changes"): a flow whose rule
 * now names another address is bound anew, so it never leaves with an address no policy covers.
 * TCP, UDP and ICMPv6 echo; other protocols are not translated (their LAN source then matches no
 * policy at the device's xfrm lookup, as before attach). Fragments as IPv4's (lib/frag6.h): the
 * first one is translated by its flow and remembered, later ones take the remembered address; a
 * later fragment nothing remembers is dropped going out where its first would have been translated
 * (drop-frag-no-first: it must not leave with the LAN source) and passes untouched coming back
 * (pass-frag-unknown).
 * Checksums: the TCP, UDP and ICMPv6 checksums cover the addresses (pseudo-header); their change
 * is applied by difference with BPF_F_PSEUDO_HDR. Within IPv6 the address's change and the
 * checksum field's change cancel out in the packet's sum, so a CHECKSUM_COMPLETE skb->csum stays
 * as it is (BPF_F_IPV6; a kernel older than 6.16 refuses that flag and gets the call without it). */
#ifndef IPSNAT_BPF_LIB_NAT66_H
#define IPSNAT_BPF_LIB_NAT66_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/ct.h"
#include "maps/ct6.h"
#include "maps/npt6.h"
#include "maps/stats.h"
#include "lib/config.h"
#include "lib/ct.h"
#include "lib/frag6.h"
#include "lib/nat.h"
#include "lib/npt6.h"
#include "lib/parse6.h"
#include "lib/sa.h"
#include "lib/scratch.h"
#include "lib/spd.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IPSNAT_CT6_MAX_ENTRIES);
	__type(key, struct ipsnat_ct6_key);
	__type(value, struct ipsnat_ct6_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_ct6 SEC(".maps");

#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define IPV6_SADDR_OFF 8
#define IPV6_DADDR_OFF 24

/* An IPv6 packet NAT66 can translate: its tuple and where its fields lie. */
struct pkt66 {
	struct pkt6 h;
	__u32 l3;      /* offset of the IPv6 header from skb->data */
	__u32 csum;    /* absolute offset of the upper layer's checksum */
	__u32 port_off[2]; /* absolute offsets of the source [1] / destination [0] "port" field */
	__be16 sport;  /* ICMPv6 echo: (id, 0) for a request, (0, id) for a reply, as ipsnat_ct */
	__be16 dport;
	__u8 tcp_flags;
	__u8 pad[3];
};

/* Completes p, whose headers p->h parse_ipv6 read: 0, or -1 when the packet is not one NAT66
 * translates (a later fragment, an unfinished header chain, another protocol, an ICMPv6 message other
 * than an echo of `echo_type`). */
static __always_inline int nat66_parse(struct __sk_buff *skb, struct pkt66 *p, __u8 echo_type, int l3_at_data)
{
	struct ipv6hdr ip6;
	int l3 = npt6_l3_offset(skb, &ip6, l3_at_data);

	if (l3 < 0 || p->h.unparsed || !p->h.ports)
		return -1;
	p->l3 = l3;
	__u32 l4 = l3 + p->h.l4;
	p->tcp_flags = 0;
	if (p->h.proto == IPPROTO_ICMPV6) {
		__be16 id;

		if (p->h.icmp6_type != echo_type || bpf_skb_load_bytes(skb, l4 + 4, &id, 2) < 0)
			return -1;
		p->sport = echo_type == ICMPV6_ECHO_REQUEST ? id : 0;
		p->dport = echo_type == ICMPV6_ECHO_REQUEST ? 0 : id;
		p->csum = l4 + 2;
		p->port_off[0] = p->port_off[1] = l4 + 4;
		return 0;
	}
	p->sport = p->h.sport;
	p->dport = p->h.dport;
	p->port_off[1] = l4;
	p->port_off[0] = l4 + 2;
	if (p->h.proto == IPPROTO_UDP) {
		p->csum = l4 + 6;
		return 0;
	}
	p->csum = l4 + 16;
	if (bpf_skb_load_bytes(skb, l4 + 13, &p->tcp_flags, 1) < 0)
		return -1;
	return 0;
}

static __always_inline struct ipsnat_ct6_key ct6_key_of(const struct pkt66 *p, __u8 dir)
{
	struct ipsnat_ct6_key k = { .sport = p->sport, .dport = p->dport, .proto = p->h.proto, .dir = dir };

	__builtin_memcpy(k.saddr, p->h.saddr, 16);
	__builtin_memcpy(k.daddr, p->h.daddr, 16);
	return k;
}

static __always_inline void ct6_account(struct ipsnat_ct6_entry *e, const struct pkt66 *p)
{
	__u64 now = ct_now();

	if (e->last_ns != now)
		e->last_ns = now;
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, sizeof(struct ipv6hdr) + p->h.payload_len);
	__u32 seen = p->tcp_flags & CT_SEEN_MASK;
	/* A new connection on a tuple whose previous one ended starts with fresh flags (as
	 * ct_tcp_restart, for this direction: the GC then sees it opening, not closing). */
	if ((p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	    (e->seen & (IPSNAT_CT_SEEN_FIN | IPSNAT_CT_SEEN_RST))) {
		e->seen = seen;
		return;
	}
	if ((e->seen | seen) != e->seen)
		e->seen |= seen;
}

/* The NAT66 rule of a flow between `remote` (the policy's destination prefix holds it) and the
 * inside address `local` (NULL: any): the NPT6_OUT rule when it is NAT66's; beside a prefix rule
 * with NPT6_FLAG_REST (a 1:1 map of one LAN under a selector with room for more, maps/npt6.h) the
 * NPT6_OUT_REST rule, unless `local` is in the prefix rule's own LAN (NPTv6's). */
static __always_inline struct npt6_rule *nat66_rule_for(struct npt6_scope sc, const __u8 *remote, const __u8 *local)
{
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = sc.if_id, .mark = sc.mark, .dir = NPT6_OUT };

	__builtin_memcpy(k.addr, remote, 16);
	struct npt6_rule *r = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	if (r && r->kind == NPT6_KIND_PREFIX && (r->flags & NPT6_FLAG_REST)) {
		if (local && npt6_in_prefix(local, r))
			return 0;
		k.dir = NPT6_OUT_REST;
		r = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	}
	return r && r->kind == NPT6_KIND_NAT66 ? r : 0;
}

static __always_inline struct npt6_rule *nat66_rule(struct npt6_scope sc, const __u8 *remote)
{
	return nat66_rule_for(sc, remote, 0);
}

/* The IPv6 inside set's entry for addr (maps/npt6.h NPT6_INSIDE keys): NPT6_KIND_INSIDE (an inside
 * prefix, every LAN NAT66 translates, as ipsnat_inside is for IPv4 NAPT), NPT6_KIND_LOCAL (one of
 * the gateway's own addresses outside them), or -1. */
static __always_inline int nat66_source_kind(const __u8 *addr)
{
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = 0, .dir = NPT6_INSIDE };

	__builtin_memcpy(k.addr, addr, 16);
	struct npt6_rule *r = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	return r ? r->kind : -1;
}

/* Whether the rule takes the source addr: a rule with a source prefix (len > 0: a [[nat]] rule's
 * inside, maps/npt6.h) that prefix alone, else the IPv6 inside set, and in LWT xmit (lwt) also one
 * of the gateway's own addresses in a packet forwarded from a device ipsnat is not attached to: a
 * LAN packet a netfilter masquerade or SNAT rule rewrote before the hook (lib/config.h
 * forwarded_from_unattached), as IPv4's inside_masqueraded; netfilter's conntrack maps the reply
 * back to the LAN host. A [[nat]] rule's own prefix cannot tell which host it was. */
static __always_inline int nat66_takes(struct __sk_buff *skb, const struct npt6_rule *rule, const __u8 *addr, int lwt)
{
	if (rule->len)
		return npt6_in_prefix(addr, rule);
	int kind = nat66_source_kind(addr);
	return kind == NPT6_KIND_INSIDE || (lwt && kind == NPT6_KIND_LOCAL && forwarded_from_unattached(skb));
}

static __always_inline int nat66_addr_equal(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Whether addr is an address of the rule's pool: rule.to and the `span` after it (maps/npt6.h;
 * unsigned, so an address below the pool wraps round above its span). */
static __always_inline int nat66_in_pool(const __u8 *addr, const struct npt6_rule *rule)
{
	const __u32 *x = (const __u32 *)addr, *y = (const __u32 *)rule->to;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] &&
	       npt6_word32(addr, 12) - npt6_word32(rule->to, 12) <= rule->span;
}

/* Sets the last word of a pool address: the pool's first (host order) plus the place `at`. */
static __always_inline void nat66_pool_place(__u8 *addr, __u32 first_word, __u32 at)
{
	__be32 w = bpf_htonl(first_word + at);

	__builtin_memcpy(addr + 12, &w, 4);
}

/* Rewrites the source (src = 1) or destination address to `to` and its port field to `port`,
 * with the upper layer's checksum. */
static __always_inline int nat66_rewrite(struct __sk_buff *skb, const struct pkt66 *p, int src, const __u8 *to,
					 __be16 port)
{
	__u32 from_w[4], to_w[4];
	__u64 pseudo = BPF_F_PSEUDO_HDR | (p->h.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);

	__builtin_memcpy(from_w, src ? p->h.saddr : p->h.daddr, 16);
	__builtin_memcpy(to_w, to, 16);
	__s64 diff = bpf_csum_diff(from_w, 16, to_w, 16, 0);
	if (diff < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, p->csum, 0, diff, pseudo | BPF_F_IPV6) &&
	    bpf_l4_csum_replace(skb, p->csum, 0, diff, pseudo))
		return -1;
	if (bpf_skb_store_bytes(skb, p->l3 + (src ? IPV6_SADDR_OFF : IPV6_DADDR_OFF), to_w, 16, 0))
		return -1;
	__be16 old = src ? p->sport : p->dport;
	if (p->h.proto == IPPROTO_ICMPV6)
		old = p->sport | p->dport; /* the identifier, whichever side holds it */
	if (old == port)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum, old, port, 2 | (pseudo & BPF_F_MARK_MANGLED_0)))
		return -1;
	return bpf_skb_store_bytes(skb, p->port_off[src ? 1 : 0], &port, 2, 0);
}

/* Rewrites only the source (src = 1) or destination address, of a later fragment: its upper-layer
 * checksum lies in the first fragment. No checksum field balances the change in the packet's sum
 * here, so a CHECKSUM_COMPLETE skb->csum is updated (BPF_F_RECOMPUTE_CSUM). */
static __always_inline int nat66_rewrite_addr(struct __sk_buff *skb, int l3_at_data, int src, const __u8 *to)
{
	struct ipv6hdr ip6;
	int l3 = npt6_l3_offset(skb, &ip6, l3_at_data);
	__u32 to_w[4];

	if (l3 < 0)
		return -1;
	__builtin_memcpy(to_w, to, 16);
	return bpf_skb_store_bytes(skb, l3 + (src ? IPV6_SADDR_OFF : IPV6_DADDR_OFF), to_w, 16, BPF_F_RECOMPUTE_CSUM);
}

/* A later fragment going out from the inside prefix: the address its first fragment left, or what
 * that first fragment would have met (a protocol NAT66 translates, or an extension header that may
 * hide one: drop-frag-no-first; another: pass-proto; an ICMPv6 fragment counts as an echo
 * request's). */
static __always_inline enum ipsnat_reason nat66_later_fragment_out(struct __sk_buff *skb, const struct pkt6 *h,
								   const struct npt6_rule *rule, int l3_at_data, int lwt)
{
	struct ipsnat_frag6_entry *fe = frag6_lookup(h, IPSNAT_CT_ORIG);

	if (fe)
		return nat66_rewrite_addr(skb, l3_at_data, 1, fe->xlat_addr) ? IPSNAT_R_DROP_REWRITE : IPSNAT_R_XLATE_FRAG;
	if (!nat66_takes(skb, rule, h->saddr, lwt))
		return IPSNAT_R_PASS_NOT_INSIDE;
	if (h->proto != IPPROTO_TCP && h->proto != IPPROTO_UDP && h->proto != IPPROTO_ICMPV6 && !ipv6_ext_hdr(h->proto))
		return IPSNAT_R_PASS_PROTO;
	return IPSNAT_R_DROP_FRAG_NO_FIRST;
}

/* A later fragment coming back (TC ingress): 1 with the outcome in *why when its first fragment was
 * translated back, under nat66_reverse's SA rule (the reqid its first fragment was admitted with);
 * 0 with pass-frag-unknown otherwise. */
static __always_inline int nat66_later_fragment_back(struct __sk_buff *skb, const struct pkt6 *h, int need_sa,
						     enum ipsnat_reason *why)
{
	struct ipsnat_frag6_entry *fe = frag6_lookup(h, IPSNAT_CT_REPLY);
	__u32 reqid;

	if (!fe) {
		*why = IPSNAT_R_PASS_FRAG_UNKNOWN;
		return 0;
	}
	if (need_sa && skb_sa_reqid(skb, &reqid))
		*why = IPSNAT_R_PASS_NO_SA;
	else if (need_sa && !reqid_admits(fe->reqid, reqid))
		*why = IPSNAT_R_PASS_WRONG_SA;
	else
		*why = nat66_rewrite_addr(skb, 0, 0, fe->xlat_addr) ? IPSNAT_R_DROP_REWRITE : IPSNAT_R_XLATE_FRAG;
	return 1;
}

/* Claims NAT port `port` for flow n: REPLY entry first with BPF_NOEXIST, then ORIG (ct_create's
 * order and results). */
static __always_inline int nat66_claim(struct nat66_flow *n, __u16 port)
{
	n->orig_e.xlat_port = bpf_htons(port);
	n->reply_k.dport = bpf_htons(port);
	int err = (int)bpf_map_update_elem(&ipsnat_ct6, &n->reply_k, &n->reply_e, BPF_NOEXIST);
	if (err == -EEXIST)
		return CT_PORT_TAKEN;
	if (err)
		return CT_FULL;
	err = (int)bpf_map_update_elem(&ipsnat_ct6, &n->orig_k, &n->orig_e, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&ipsnat_ct6, &n->reply_k);
		return err == -EEXIST ? CT_RACED : CT_FULL;
	}
	return CT_CREATED;
}

struct nat66_search {
	__u32 base;     /* the pool: the last word of its first address (host order), size addresses */
	__u32 size;
	__u32 first;    /* the place of the source's own address */
	__u32 per_addr; /* probes per address */
	__u32 min;
	__u32 range;
	__u32 start;
	__u16 orig_port;
	__u8 proto;
	__u8 pad;
	__u32 found;    /* 0: none free */
	__u32 found_at; /* the address's place in the order tried (0: the source's own) */
};

/* Looks only, as nat_probe: a candidate is a port no REPLY entry holds for this remote endpoint
 * (the scratch flow's REPLY key with that address and port; probe i looks at the
 * (i / per_addr)-th address tried, which the key keeps when the port is free). */
static long nat66_probe(__u32 i, void *ctx)
{
	struct nat66_search *s = ctx;
	struct nat66_flow *n = nat66_scratch();
	__u32 at = i / s->per_addr;
	__u16 port = s->min + (s->start + i) % s->range;

	if (!n)
		return 1;
	if ((!at && port == s->orig_port) || nat_port_reserved(s->proto, port))
		return 0;
	nat66_pool_place(n->reply_k.daddr, s->base, (s->first + at) % s->size);
	n->reply_k.dport = bpf_htons(port);
	if (bpf_map_lookup_elem(&ipsnat_ct6, &n->reply_k))
		return 0;
	s->found = port;
	s->found_at = at;
	return 1;
}

#define NAT66_PORT_TAKEN (-2)

/* Claims `port` for flow n: nat66_bind's answer (0 with *out set, NAT_BOUND_RACED,
 * drop-ct-full), or NAT66_PORT_TAKEN when another flow holds it. */
static __always_inline int nat66_take(struct nat66_flow *n, __u16 port, __be16 *out)
{
	int r = nat66_claim(n, port);

	if (r == CT_CREATED) {
		*out = bpf_htons(port);
		return 0;
	}
	if (r == CT_RACED)
		return NAT_BOUND_RACED;
	return r == CT_FULL ? IPSNAT_R_DROP_CT_FULL : NAT66_PORT_TAKEN;
}

/* Binds a new flow of p to the rule's address (of its pool: the source's own, the next ones only
 * when that one has no free port towards the remote endpoint, NAT_POOL_TRIES at most, each passed
 * over counted as nat-pool-address-full, as IPv4's lib/nat.h), checked under SPD version
 * spd_version: 0 with the address in to[16] and the NAT port in *port, NAT_BOUND_RACED (another
 * CPU created the flow: look it up), or the drop reason. */
static __always_inline int nat66_bind(const struct pkt66 *p, const struct npt6_rule *rule, __u64 spd_version,
				      __u8 *to, __be16 *port)
{
	struct nat66_flow *n = nat66_scratch();
	__u64 now = ct_now();
	__u16 orig_port = bpf_ntohs(p->sport);
	__u32 min, max;
	int r;

	if (!n)
		return IPSNAT_R_DROP_CT_FULL;
	__builtin_memset(n, 0, sizeof(*n));
	n->orig_k = ct6_key_of(p, IPSNAT_CT_ORIG);
	__builtin_memcpy(n->orig_e.xlat_addr, rule->to, 16);
	n->orig_e.kind = IPSNAT_CT_KIND_NAT66;
	n->orig_e.reqid = rule->reqid;
	n->orig_e.spd_version = spd_version;
	n->orig_e.created_ns = now;
	n->orig_e.last_ns = now;
	n->reply_e = n->orig_e;
	__builtin_memcpy(n->reply_e.xlat_addr, p->h.saddr, 16);
	n->reply_e.xlat_port = p->sport;
	__builtin_memcpy(n->reply_k.saddr, p->h.daddr, 16);
	__builtin_memcpy(n->reply_k.daddr, rule->to, 16);
	n->reply_k.sport = p->dport;
	n->reply_k.proto = p->h.proto;
	n->reply_k.dir = IPSNAT_CT_REPLY;
	n->orig_e.packets = 1;
	n->orig_e.bytes = sizeof(struct ipv6hdr) + p->h.payload_len;
	n->orig_e.seen = p->tcp_flags & CT_SEEN_MASK;

	cfg_port_range(&min, &max);
	int echo = p->h.proto == IPPROTO_ICMPV6;
	int privileged = !echo && nat_privileged_class(orig_port, &min, &max);
	struct nat66_search s = {
		.base = npt6_word32(rule->to, 12),
		.size = (__u32)rule->span + 1,
		.min = min,
		.range = max - min + 1,
		.orig_port = orig_port,
		.proto = echo ? IPPROTO_ICMP : p->h.proto,
	};
	s.first = npt6_pool_pick(p->h.saddr, rule->span);
	nat66_pool_place(n->orig_e.xlat_addr, s.base, s.first);
	nat66_pool_place(n->reply_k.daddr, s.base, s.first);
	__builtin_memcpy(to, n->orig_e.xlat_addr, 16);
	if ((echo || privileged || (orig_port >= min && orig_port <= max)) && !nat_port_reserved(s.proto, orig_port)) {
		r = nat66_take(n, orig_port, port);
		if (r != NAT66_PORT_TAKEN)
			return r;
	}
	s.per_addr = s.range < NAT_PORT_TRIES ? s.range : NAT_PORT_TRIES;
	__u32 addrs = s.size < NAT_POOL_TRIES ? s.size : NAT_POOL_TRIES;
	__u32 bytes = sizeof(struct ipv6hdr) + p->h.payload_len;
	for (int round = 0; round < NAT_CLAIM_ROUNDS; round++) {
		s.start = bpf_get_prandom_u32();
		s.found = 0;
		bpf_loop(s.per_addr * addrs, nat66_probe, &s, 0);
		if (!s.found) {
			nat_pool_count_full(addrs > 1 ? addrs : 0, bytes);
			return IPSNAT_R_DROP_NO_PORT;
		}
		__builtin_memcpy(n->orig_e.xlat_addr, n->reply_k.daddr, 16);
		r = nat66_take(n, s.found, port);
		if (r != NAT66_PORT_TAKEN) {
			if (!r) {
				nat_pool_count_full(s.found_at, bytes);
				__builtin_memcpy(to, n->orig_e.xlat_addr, 16);
			}
			return r;
		}
	}
	return IPSNAT_R_DROP_NO_PORT;
}

/* The other direction's entry of the flow of entry e (key k), or NULL: absent, or its key by now
 * belongs to another flow (it does not point back at k). */
static __always_inline struct ipsnat_ct6_entry *ct6_partner(const struct ipsnat_ct6_key *k,
							    const struct ipsnat_ct6_entry *e)
{
	struct ipsnat_ct6_key pk = ct6_partner_key(k, e);
	struct ipsnat_ct6_entry *pe = bpf_map_lookup_elem(&ipsnat_ct6, &pk);
	int orig = k->dir == IPSNAT_CT_ORIG;

	if (pe && nat66_addr_equal(pe->xlat_addr, orig ? k->saddr : k->daddr) &&
	    pe->xlat_port == (orig ? k->sport : k->dport))
		return pe;
	return 0;
}

/* Records that entry e's flow is its rule's, of this reqid, under SPD version `version`: the
 * reqid before the version, as lib/ct.h ct_stamp (whose comment says what a race may pair). */
static __always_inline void ct6_stamp(struct ipsnat_ct6_entry *e, __u32 reqid, __u64 version)
{
	if (e->reqid != reqid)
		e->reqid = reqid;
	asm volatile("" ::: "memory");
	e->spd_version = version;
}

/* The flow of ORIG entry e (key k) still leaves as its rule's address under SPD version
 * `version`: both entries take the rule's reqid (IKE may have re-established the policy's SA
 * under a new one; the reply side compares the SA's reqid with the REPLY entry's) and the
 * version. One partner lookup per flow per SPD version, as lib/ct.h ct_flow_protected. */
static __always_inline void nat66_flow_protected(const struct ipsnat_ct6_key *k, struct ipsnat_ct6_entry *e,
						 __u32 reqid, __u64 version)
{
	struct ipsnat_ct6_entry *pe = ct6_partner(k, e);

	if (pe)
		ct6_stamp(pe, reqid, version);
	ct6_stamp(e, reqid, version);
}

/* Removes a flow whose rule now names another address, so that its tuple is bound anew: REPLY
 * first (the old address's port stops answering), then ORIG, as lib/ct.h ct_forget. */
static __always_inline void ct6_forget(const struct ipsnat_ct6_key *k, const struct ipsnat_ct6_entry *e)
{
	struct ipsnat_ct6_key pk = ct6_partner_key(k, e);

	if (ct6_partner(k, e))
		bpf_map_delete_elem(&ipsnat_ct6, &pk);
	bpf_map_delete_elem(&ipsnat_ct6, k);
}

/* Whether the SA of sa_reqid may deliver a packet of the flow of REPLY entry e (key k): the reqid
 * that counts is that of the policy whose NAT66 rule the flow's remote endpoint finds now, with
 * the flow's address. The entry's reqid is that one while it carries the current SPD version;
 * otherwise (IKE re-established the SA under a new reqid and no packet of the flow went out
 * since), or on a mismatch, the rule is asked and the entry takes its reqid and the version: a
 * reply through the current SA is never refused by a stale entry, one through the SA the policy
 * no longer names is refused. Where no such rule is left, the entry's reqid decides (as IPv4's
 * lib/xlate.h reply_sa_refusal). Policy mode only: its rules have if_id 0 and mark 0. */
static __always_inline int nat66_reply_admits(const struct ipsnat_ct6_key *k, struct ipsnat_ct6_entry *e,
					      __u32 sa_reqid)
{
	__u64 now = spd_version_now();

	if (e->spd_version == now && reqid_admits(e->reqid, sa_reqid))
		return 1;
	struct npt6_rule *rule = nat66_rule(NPT6_POLICY_MODE, k->saddr);
	__u32 reqid = rule && nat66_in_pool(k->daddr, rule) ? rule->reqid : e->reqid;
	if (!reqid_admits(reqid, sa_reqid))
		return 0;
	ct6_stamp(e, reqid, now);
	return 1;
}

/* A LAN host's error about a reply of the flow of ORIG entry k / e, on a device of scope sc (if_id, mark), follows
 * that flow, as IPv4's (lib/xlate.h icmp_error_flow_stale): whether the SPD changed since the flow
 * was last checked and the rule of its remote names another address now, or none. The error then
 * passes untranslated (pass-ct-stale); the flow's next packet binds the flow anew or passes too. */
static __always_inline int nat66_error_flow_stale(const struct ipsnat_ct6_key *k, const struct ipsnat_ct6_entry *e,
						  struct npt6_scope sc)
{
	if (e->spd_version == spd_version_now())
		return 0;
	struct npt6_rule *rule = nat66_rule(sc, k->daddr);
	return !rule || !nat66_in_pool(e->xlat_addr, rule);
}

/* TC egress of a route-mode device (its if_id and mark), or LWT xmit of a policy-mode route (both 0,
 * lwt 1; l3_at_data as parse_ipv6): 1 with the outcome in *why when the packet's destination is a NAT66 policy's; 0 when no NAT66 rule
 * concerns it (NPTv6 may). */
static __always_inline int nat66_egress(struct __sk_buff *skb, struct npt6_scope sc, int l3_at_data, int lwt,
					enum ipsnat_reason *why)
{
	struct pkt66 p;

	if (parse_ipv6(skb, &p.h, l3_at_data) < 0)
		return 0;
	/* Read before the rule: an entry stamped with it was checked on this SPD or a newer one. */
	__u64 spd_ver = spd_version_now();
	struct npt6_rule *rule = nat66_rule_for(sc, p.h.daddr, p.h.saddr);
	if (!rule)
		return 0;
	if (nat66_in_pool(p.h.saddr, rule)) {
		*why = IPSNAT_R_PASS_ALREADY_OK;
		return 1;
	}
	/* The inside set is asked where no state answers (a flow or fragment conntrack does not know,
	 * a packet NAT66 does not translate), as IPv4's: one LPM lookup per new flow, not per packet. */
	if (p.h.fragment == PKT6_FRAG_LATER && !p.h.unparsed) {
		*why = nat66_later_fragment_out(skb, &p.h, rule, l3_at_data, lwt);
		return 1;
	}
	if (nat66_parse(skb, &p, ICMPV6_ECHO_REQUEST, l3_at_data)) {
		*why = !nat66_takes(skb, rule, p.h.saddr, lwt) ? IPSNAT_R_PASS_NOT_INSIDE
		       : p.h.unparsed          ? IPSNAT_R_DROP_MALFORMED
					       : IPSNAT_R_PASS_PROTO;
		return 1;
	}
	struct ipsnat_ct6_key k = ct6_key_of(&p, IPSNAT_CT_ORIG);
	struct ipsnat_ct6_entry *e = bpf_map_lookup_elem(&ipsnat_ct6, &k);
	__u8 to[16];
	__be16 port;
	/* The SPD changed since the flow was last checked: it keeps its binding while its rule still
	 * names its address (and takes the rule's reqid); a rule of another address (the policy
	 * replaced, another virtual IP) makes it a new flow, or it would leave with an address no
	 * policy covers. Without a rule the packet did not get here: it passes untranslated and the
	 * entry stays, for the policy's return. */
	if (e && e->spd_version != spd_ver) {
		if (nat66_in_pool(e->xlat_addr, rule)) {
			nat66_flow_protected(&k, e, rule->reqid, spd_ver);
		} else {
			ct6_forget(&k, e);
			e = 0;
		}
	}
	if (!e && !nat66_takes(skb, rule, p.h.saddr, lwt)) {
		*why = IPSNAT_R_PASS_NOT_INSIDE;
		return 1;
	}
	if (e) {
		__builtin_memcpy(to, e->xlat_addr, 16);
		port = e->xlat_port;
		ct6_account(e, &p);
	} else {
		int r = nat66_bind(&p, rule, spd_ver, to, &port);
		if (r == NAT_BOUND_RACED) {
			e = bpf_map_lookup_elem(&ipsnat_ct6, &k);
			if (!e) {
				*why = IPSNAT_R_DROP_CT_FULL;
				return 1;
			}
			__builtin_memcpy(to, e->xlat_addr, 16);
			port = e->xlat_port;
			ct6_account(e, &p);
		} else if (r) {
			*why = r;
			return 1;
		}
	}
	if (nat66_rewrite(skb, &p, 1, to, port)) {
		*why = IPSNAT_R_DROP_REWRITE;
		return 1;
	}
	frag6_remember(&p.h, IPSNAT_CT_ORIG, to, 0);
	*why = IPSNAT_R_XLATE_NAT66;
	return 1;
}

/* TC ingress of a route-mode device, or of a policy-mode uplink (need_sa): 1 with the outcome in
 * *why for a reply of a NAT66 flow, translated back to the inside host; on the uplink only when an
 * SA of the flow's policy decrypted it (cleartext that looks like a reply passes untouched:
 * pass-no-sa; a reply another tunnel's SA brought, pass-wrong-sa). 0 for anything
 * else (p->h is then what parse_ipv6 read, or unset when even that failed: *parsed says). */
static __always_inline int nat66_reverse(struct __sk_buff *skb, struct pkt66 *p, int *parsed, int need_sa,
					 enum ipsnat_reason *why)
{
	__u32 reqid;

	*parsed = parse_ipv6(skb, &p->h, 0) == 0;
	if (!*parsed)
		return 0;
	if (p->h.fragment == PKT6_FRAG_LATER && !p->h.unparsed)
		return nat66_later_fragment_back(skb, &p->h, need_sa, why);
	if (nat66_parse(skb, p, ICMPV6_ECHO_REPLY, 0))
		return 0;
	struct ipsnat_ct6_key k = ct6_key_of(p, IPSNAT_CT_REPLY);
	struct ipsnat_ct6_entry *e = bpf_map_lookup_elem(&ipsnat_ct6, &k);
	if (!e)
		return 0;
	if (need_sa && skb_sa_reqid(skb, &reqid)) {
		*why = IPSNAT_R_PASS_NO_SA;
		return 1;
	}
	if (need_sa && !nat66_reply_admits(&k, e, reqid)) {
		*why = IPSNAT_R_PASS_WRONG_SA;
		return 1;
	}
	__u8 to[16];
	__builtin_memcpy(to, e->xlat_addr, 16);
	__be16 port = e->xlat_port;
	ct6_account(e, p);
	if (nat66_rewrite(skb, p, 0, to, port)) {
		*why = IPSNAT_R_DROP_REWRITE;
		return 1;
	}
	frag6_remember(&p->h, IPSNAT_CT_REPLY, to, e->reqid);
	*why = IPSNAT_R_XLATE_NAT66_REVERSE;
	return 1;
}

/* Whether a packet from `remote` to `local`, decrypted and explained by no flow, comes from the
 * destination of a NAT66 rule to where only that rule's replies may come: an IPv6 inside prefix
 * the rule takes (the policy sends only its one address, so nothing but that address's replies
 * comes back for the LANs; beside a 1:1 map, for the LANs NAT66 takes: the mapped one is NPTv6's),
 * or on a policy-mode uplink (uplink) one of the gateway's own addresses NAT66 takes as a
 * masqueraded source (NPT6_KIND_LOCAL, not the rule's own address or pool). Attach's fwd companion
 * for such an address would otherwise carry anything the far side sends through a netfilter DNAT
 * port-forward on it into the LAN, as IPv4's reverse_unexplained says. One rule and one inside-set
 * lookup. */
static __always_inline int nat66_unsolicited(struct npt6_scope sc, const __u8 *remote, const __u8 *local, int uplink)
{
	struct npt6_rule *rule = nat66_rule_for(sc, remote, local);

	if (!rule)
		return 0;
	if (rule->len)
		return npt6_in_prefix(local, rule);
	int kind = nat66_source_kind(local);
	return kind == NPT6_KIND_INSIDE || (uplink && kind == NPT6_KIND_LOCAL && !nat66_in_pool(local, rule));
}

#endif
