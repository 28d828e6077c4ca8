/* The three per-packet pipelines the entry points run. Each returns the reason that explains
 * the outcome (maps/stats.h); xlate_is_drop/xlate_is_translated turn it into a verdict. */
#ifndef IPSNAT_BPF_LIB_XLATE_H
#define IPSNAT_BPF_LIB_XLATE_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/stats.h"
#include "lib/config.h"
#include "lib/ct.h"
#include "lib/frag.h"
#include "lib/fwd.h"
#include "lib/icmp.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/spd.h"

static __always_inline int xlate_is_drop(enum ipsnat_reason r)
{
	switch (r) {
	case IPSNAT_R_DROP_TRUNCATED:
	case IPSNAT_R_DROP_LEAK_GUARD:
	case IPSNAT_R_DROP_MALFORMED:
	case IPSNAT_R_DROP_FRAG_NO_FIRST:
	case IPSNAT_R_DROP_NO_PORT:
	case IPSNAT_R_DROP_CT_FULL:
	case IPSNAT_R_DROP_REWRITE:
	case IPSNAT_R_DROP_SPD_INCOMPLETE:
		return 1;
	default:
		return 0;
	}
}

static __always_inline int xlate_is_translated(enum ipsnat_reason r)
{
	return r == IPSNAT_R_XLATE_SNAT || r == IPSNAT_R_XLATE_REVERSE ||
	       r == IPSNAT_R_XLATE_ICMP_ERROR || r == IPSNAT_R_XLATE_FRAG || r == IPSNAT_R_XLATE_ICMP_LOCAL ||
	       r == IPSNAT_R_XLATE_FORWARD;
}

static __always_inline struct ipsnat_flow4 flow_of(const struct pkt4 *p, __u32 mark, __u32 if_id)
{
	struct ipsnat_flow4 f = {
		.saddr = p->saddr,
		.daddr = p->daddr,
		.sport = p->sport,
		.dport = p->dport,
		.proto = p->proto,
		.mark = mark,
		.if_id = if_id,
	};
	return f;
}

/* The flow the SPD lookup sees. At TC egress of a tunnel device it takes the device's if_id and,
 * for a VTI, its okey as mark (the kernel's own lookup there uses that key); in LWT xmit neither.
 * Called only when a flow is not in conntrack: an established packet costs no ipsnat_dev lookup. */
static __always_inline struct ipsnat_flow4 snat_flow_of(struct __sk_buff *skb, const struct pkt4 *p,
							int use_dev)
{
	struct ipsnat_dev_cfg d = {};

	if (use_dev)
		d = dev_cfg(skb->ifindex);
	return flow_of(p, d.mark ? d.mark : skb->mark, d.if_id);
}

/* SNAT side, before the xfrm lookup (TC egress of a tunnel device, LWT xmit). Malformed and
 * truncated packets are dropped: nothing here may leave half-understood. */
static __always_inline enum ipsnat_reason xlate_snat(struct __sk_buff *skb, int use_dev, int l3_at_data)
{
	struct pkt4 p;
	struct spd_nat_target t;

	switch (parse_ipv4(skb, &p, l3_at_data)) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return IPSNAT_R_PASS_NOT_IPV4;
	case PARSE_TRUNCATED:
		return IPSNAT_R_DROP_TRUNCATED;
	default:
		return IPSNAT_R_DROP_MALFORMED;
	}

	if (p.icmp_error) {
		struct ipsnat_ct_key k = ct_key_of_quote(&p.inner, IPSNAT_CT_ORIG);
		struct ipsnat_ct_entry *e = ct_lookup(&k);

		if (e && p.daddr == p.inner.saddr) {
			if (icmp_error_snat(skb, &p, e))
				return IPSNAT_R_DROP_REWRITE;
			return IPSNAT_R_XLATE_ICMP_ERROR;
		}
		/* An error this host raised about a packet already translated here: the tunnel
		 * device's "fragmentation needed" comes after the NAT, addressed to the NAT address,
		 * and would die in the tunnel. Translate it back for the inside host; the caller
		 * delivers it there (DESIGN-NOTES: MTU and ICMP). */
		k = ct_key_of_quote(&p.inner, IPSNAT_CT_REPLY);
		e = ct_lookup(&k);
		if (!e || p.daddr != p.inner.saddr)
			return IPSNAT_R_PASS_ICMP_NO_CT;
		if (icmp_error_rev(skb, &p, e))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_ICMP_LOCAL;
	}

	if (p.frag == PKT_FRAG_LATER) {
		struct ipsnat_frag_entry *fe = frag_lookup(&p, IPSNAT_CT_ORIG);

		if (fe) {
			if (nat_rewrite(skb, &p, 1, fe->xlat_addr, 0))
				return IPSNAT_R_DROP_REWRITE;
			return IPSNAT_R_XLATE_FRAG;
		}
		struct ipsnat_flow4 f = snat_flow_of(skb, &p, use_dev);
		if (spd_nat_target(&f, &t))
			return IPSNAT_R_PASS_NOT_COVERED;
		if (t.kind == SPD_NAT_NONE)
			return IPSNAT_R_PASS_NO_TARGET;
		if (nat_source_ok(&t, p.saddr))
			return IPSNAT_R_PASS_ALREADY_OK;
		if (!nat_source_inside(&t, p.saddr))
			return IPSNAT_R_PASS_NOT_INSIDE;
		return IPSNAT_R_DROP_FRAG_NO_FIRST;
	}

	struct ipsnat_ct_key k = ct_key_of(&p, IPSNAT_CT_ORIG);
	struct ipsnat_ct_entry *e = ct_lookup(&k);
	struct ct_xlat x;
	if (e) {
		x = ct_xlat_of(e);
		ct_account(&k, e, &p, p.ip_len);
	} else {
		struct ipsnat_flow4 f = snat_flow_of(skb, &p, use_dev);

		if (spd_nat_target(&f, &t))
			return IPSNAT_R_PASS_NOT_COVERED;
		if (t.kind == SPD_NAT_NONE)
			return IPSNAT_R_PASS_NO_TARGET;
		if (nat_source_ok(&t, p.saddr))
			return IPSNAT_R_PASS_ALREADY_OK;
		if (!nat_source_inside(&t, p.saddr) ||
		    (t.kind == SPD_NAT_PREFIX && !nat_prefix_map(&t, p.saddr)))
			return IPSNAT_R_PASS_NOT_INSIDE;
		if (!nat_tuple_supported(&p))
			return IPSNAT_R_PASS_PROTO;
		/* Created here: the new entries already count this packet. Raced: another CPU's. */
		int r = nat_bind(&p, &t, &x);
		if (r == NAT_BOUND_RACED) {
			e = ct_lookup(&k);
			if (!e)
				return IPSNAT_R_DROP_CT_FULL;
			x = ct_xlat_of(e);
			ct_account(&k, e, &p, p.ip_len);
		} else if (r) {
			return r;
		}
	}
	if (nat_rewrite(skb, &p, 1, x.addr, x.port))
		return IPSNAT_R_DROP_REWRITE;
	frag_remember(&p, IPSNAT_CT_ORIG, x.addr);
	return IPSNAT_R_XLATE_SNAT;
}

static __always_inline int skb_has_sa(struct __sk_buff *skb)
{
	struct bpf_xfrm_state st;

	return bpf_skb_get_xfrm_state(skb, 0, &st, sizeof(st), 0) == 0;
}

/* Whether a reply must have come with an SA to be translated back: on a device in policy mode
 * (or unknown) yes; on a tunnel device (route mode) everything was decrypted. Asked only once a
 * packet matched a flow, so the uplink's other traffic costs no ipsnat_dev lookup. */
static __always_inline int reverse_needs_sa(struct __sk_buff *skb)
{
	return dev_cfg(skb->ifindex).mode != IPSNAT_DEV_ROUTE && !skb_has_sa(skb);
}

/* Reverse side: replies to translated flows, and ICMP errors about them. On a device in policy
 * mode only decrypted packets (with an SA in their sec path) are translated: a cleartext
 * packet from the WAN that looks like a reply must never be let into the LAN. Everything that
 * is not ours passes untouched (this hook sees all of the uplink's traffic). */
static __always_inline enum ipsnat_reason xlate_reverse(struct __sk_buff *skb)
{
	struct pkt4 p;

	switch (parse_ipv4(skb, &p, 0)) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return IPSNAT_R_PASS_NOT_IPV4;
	default:
		return IPSNAT_R_PASS_MALFORMED;
	}
	if (p.icmp_error) {
		struct ipsnat_ct_key k = ct_key_of_quote(&p.inner, IPSNAT_CT_REPLY);
		struct ipsnat_ct_entry *e = ct_lookup(&k);

		if (!e || p.daddr != p.inner.saddr)
			return IPSNAT_R_PASS_ICMP_NO_CT;
		if (reverse_needs_sa(skb))
			return IPSNAT_R_PASS_NO_SA;
		if (icmp_error_rev(skb, &p, e))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_ICMP_ERROR;
	}

	if (p.frag == PKT_FRAG_LATER) {
		struct ipsnat_frag_entry *fe = frag_lookup(&p, IPSNAT_CT_REPLY);

		if (!fe)
			return IPSNAT_R_PASS_FRAG_UNKNOWN;
		if (reverse_needs_sa(skb))
			return IPSNAT_R_PASS_NO_SA;
		if (nat_rewrite(skb, &p, 0, fe->xlat_addr, 0))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_FRAG;
	}

	struct ipsnat_ct_key k = ct_key_of(&p, IPSNAT_CT_REPLY);
	struct ipsnat_ct_entry *e = ct_lookup(&k);
	enum ipsnat_reason done = IPSNAT_R_XLATE_REVERSE;
	if (!e) {
		/* A new connection to a port-forward: TCP only from its SYN, so a stray segment
		 * never opens a flow. */
		if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP)
			return IPSNAT_R_PASS_NO_CT;
		if (p.proto == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return IPSNAT_R_PASS_NO_CT;
		struct ipsnat_fwd_target *t = fwd_lookup(p.daddr, p.proto, p.dport);
		if (!t)
			return IPSNAT_R_PASS_NO_CT;
		if (reverse_needs_sa(skb))
			return IPSNAT_R_PASS_NO_SA;
		e = fwd_open(&p, t, 0);
		if (!e)
			return IPSNAT_R_DROP_CT_FULL;
		done = IPSNAT_R_XLATE_FORWARD;
	} else if (reverse_needs_sa(skb)) {
		return IPSNAT_R_PASS_NO_SA;
	}
	struct ct_xlat x = ct_xlat_of(e);
	ct_account(&k, e, &p, p.ip_len);
	if (nat_rewrite(skb, &p, 0, x.addr, x.port))
		return IPSNAT_R_DROP_REWRITE;
	frag_remember(&p, IPSNAT_CT_REPLY, x.addr);
	return done;
}

static __always_inline int is_ike_port(__be16 port)
{
	return port == bpf_htons(500) || port == bpf_htons(4500);
}

/* Leak guard, TC egress of the uplink of policy-based SAs. Whatever the kernel encrypted
 * arrives here as ESP (or ESP in UDP 4500); the IKE daemon's own packets come from UDP/TCP
 * port 500/4500. Any other packet whose flow an out-policy covers is cleartext that should
 * have been encrypted (translation missing, SA missing, a port-restricted policy after an LWT
 * reroute): dropped and counted. */
static __always_inline enum ipsnat_reason xlate_guard(struct __sk_buff *skb)
{
	struct pkt4 p;

	switch (parse_ipv4(skb, &p, 0)) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return IPSNAT_R_PASS_NOT_IPV4;
	default:
		return IPSNAT_R_PASS_MALFORMED;
	}
	if (p.proto == IPPROTO_ESP || p.proto == IPPROTO_AH)
		return IPSNAT_R_PASS_IPSEC;
	if ((p.proto == IPPROTO_UDP || p.proto == IPPROTO_TCP) && is_ike_port(p.sport))
		return IPSNAT_R_PASS_IPSEC;
	struct ipsnat_flow4 f = flow_of(&p, skb->mark, 0);
	switch (spd_out_covered(&f)) {
	case 0:
		return IPSNAT_R_PASS_NOT_COVERED;
	case SPD_OUT_FAIL_CLOSED:
		return IPSNAT_R_DROP_SPD_INCOMPLETE;
	default:
		return IPSNAT_R_DROP_LEAK_GUARD;
	}
}

#endif
