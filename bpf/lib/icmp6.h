/* ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter problem) about
 * flows NAT66 (lib/nat66.h) or NPTv6 (lib/npt6.h) translated, on route-mode devices both ways and
 * on a policy-mode uplink the way back (need_sa: only through an SA of the flow's policy, as a
 * reply; lib/sa.h) and, in LWT xmit on its routes, the way out: lib/icmp.h's design for IPv6. The
 * quote is a packet of the flow going the other way: a NAT66 flow is found by the quote's tuple
 * swapped (the entry of the other direction), an NPTv6 rule by the quoted translated address. The
 * outer address is translated only when it is the quoted one (the error goes to the sender of the
 * quoted packet), as for IPv4.
 *   egress  (a LAN host reports an error about a reply): quote remote -> inside; the outer source,
 *           the quoted destination and, for NAT66, its port / echo identifier become the
 *           translated ones;
 *   reverse (the far side reports one about a translated packet): quote outside -> remote; the
 *           outer destination, the quoted source and, for NAT66, its port go back to the inside.
 * Checksums: NPTv6 keeps the sum of each address, so no checksum changes, the quoted ones
 * included. NAT66: the outer address is in the ICMPv6 pseudo-header (as nat66_rewrite); the quoted
 * address and port are ICMPv6 data and also in the quoted TCP/UDP/ICMPv6 checksum (its
 * pseudo-header, its port), which is updated as a plain field and whose own change is folded
 * into the ICMPv6 checksum (csum.h, icmp_quote_csum). The quote is walked like any IPv6 packet
 * (parse_ipv6_at: extension headers, a fragment header). */
#ifndef IPSNAT_BPF_LIB_ICMP6_H
#define IPSNAT_BPF_LIB_ICMP6_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/ct6.h"
#include "maps/npt6.h"
#include "maps/stats.h"
#include "lib/csum.h"
#include "lib/nat66.h"
#include "lib/npt6.h"
#include "lib/parse6.h"
#include "lib/sa.h"

#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4
#define ICMPV6_HDR_LEN 8 /* type, code, checksum, 4 bytes (MTU, pointer, unused); the quote follows */

/* An ICMPv6 error: the outer packet and the quote, and where the quote's fields lie. */
struct icmp6_err {
	struct pkt66 o;    /* the error; o.csum is the ICMPv6 checksum, o.sport = o.dport = 0 */
	struct pkt6 q;     /* the quote's headers (q.l4 counts from the quote); q.ports: its ports read */
	__u32 ql3;         /* absolute offset of the quoted IPv6 header */
	__u32 qcsum;       /* absolute offset of the quoted TCP/UDP/ICMPv6 checksum; 0: not quoted */
	__be16 qsport;     /* the quote's ports as ipsnat_ct6 keys them: ICMPv6 echo request */
	__be16 qdport;     /* (id, 0), reply (0, id) */
	__u8 quoted;       /* the quote's fixed header was read */
	__u8 pad[3];
};

/* Whether the packet may be an ICMPv6 error, from its first next-header byte alone: TCP and UDP,
 * nearly all the traffic, and ESP, all of a policy-mode uplink's IPsec, cost one byte's load.
 * l3_at_data as ipv6_load. */
static __always_inline int icmp6_may_be_error(struct __sk_buff *skb, int l3_at_data)
{
	__u8 next;

	if (ipv6_load(skb, __builtin_offsetof(struct ipv6hdr, nexthdr), &next, 1, l3_at_data) < 0)
		return 0;
	return next != IPPROTO_TCP && next != IPPROTO_UDP && next != IPPROTO_ESP;
}

/* Reads the quote's ports (TCP, UDP, ICMPv6 echo) and where its checksum is; leaves q.ports 0 for
 * anything else (a later fragment, another protocol, an error quoting an error). */
static __always_inline void icmp6_quote_ports(struct __sk_buff *skb, struct icmp6_err *m)
{
	__u32 l4 = m->ql3 + m->q.l4, csum;

	if (!m->q.ports)
		return;
	if (m->q.proto == IPPROTO_ICMPV6) {
		__be16 id;
		int request = m->q.icmp6_type == ICMPV6_ECHO_REQUEST;

		if ((!request && m->q.icmp6_type != ICMPV6_ECHO_REPLY) || bpf_skb_load_bytes(skb, l4 + 4, &id, 2) < 0) {
			m->q.ports = 0;
			return;
		}
		m->qsport = request ? id : 0;
		m->qdport = request ? 0 : id;
		csum = l4 + 2;
	} else {
		m->qsport = m->q.sport;
		m->qdport = m->q.dport;
		csum = l4 + (m->q.proto == IPPROTO_TCP ? 16 : 6);
	}
	m->qcsum = csum + 2 <= skb->len ? csum : 0;
}

/* 0 when the packet is an ICMPv6 error, with m filled as far as the quote could be read. */
static __always_inline int icmp6_parse(struct __sk_buff *skb, struct icmp6_err *m, int l3_at_data)
{
	struct ipv6hdr ip6;

	if (parse_ipv6(skb, &m->o.h, l3_at_data) < 0 || m->o.h.proto != IPPROTO_ICMPV6 || !m->o.h.ports ||
	    m->o.h.icmp6_type < ICMPV6_DEST_UNREACH || m->o.h.icmp6_type > ICMPV6_PARAMPROB)
		return -1;
	int l3 = npt6_l3_offset(skb, &ip6, l3_at_data);
	if (l3 < 0)
		return -1;
	m->o.l3 = l3;
	m->o.csum = l3 + m->o.h.l4 + 2;
	m->o.sport = m->o.dport = 0;
	m->ql3 = l3 + m->o.h.l4 + ICMPV6_HDR_LEN;
	m->qcsum = 0;
	m->qsport = m->qdport = 0;
	m->quoted = parse_ipv6_at(skb, m->o.h.l4 + ICMPV6_HDR_LEN, &m->q, l3_at_data) == 0;
	if (m->quoted && !m->q.unparsed)
		icmp6_quote_ports(skb, m);
	else
		m->q.ports = 0;
	return 0;
}

/* Rewrites the quoted source (src = 1) or destination address to `to` and its port to `port`. */
static __always_inline int icmp6_rewrite_quote(struct __sk_buff *skb, const struct icmp6_err *m, int src,
					       const __u8 *to, __be16 port)
{
	__u32 from_w[4], to_w[4];

	__builtin_memcpy(from_w, src ? m->q.saddr : m->q.daddr, 16);
	__builtin_memcpy(to_w, to, 16);
	__s64 diff = bpf_csum_diff(from_w, 16, to_w, 16, 0);
	if (diff < 0)
		return -1;
	if (m->qcsum && icmp_quote_csum(skb, m->o.csum, m->qcsum, 0, (__u32)diff, 0, m->q.proto))
		return -1;
	if (bpf_l3_csum_replace(skb, m->o.csum, 0, (__u32)diff, 0))
		return -1;
	if (bpf_skb_store_bytes(skb, m->ql3 + (src ? IPV6_SADDR_OFF : IPV6_DADDR_OFF), to_w, 16, 0))
		return -1;
	/* Read back rather than chosen from m: a choice between two fields of m compiles to a pointer
	 * OR the verifier refuses. */
	__u32 at = m->ql3 + m->q.l4 + (m->q.proto == IPPROTO_ICMPV6 ? 4 : src ? 0 : 2);
	__be16 old;
	if (bpf_skb_load_bytes(skb, at, &old, 2))
		return -1;
	if (m->qcsum && icmp_quote_csum(skb, m->o.csum, m->qcsum, old, port, 2, m->q.proto))
		return -1;
	return icmp_quote_store(skb, m->o.csum, at, old, port, 2);
}

/* The SA check of a policy-mode uplink (need_sa) for an error about a flow: 0 and the SA's reqid
 * in *sa_reqid, or pass-no-sa for cleartext (it stays addressed to the translated address). */
static __always_inline enum ipsnat_reason icmp6_sa_of(struct __sk_buff *skb, int need_sa, __u32 *sa_reqid)
{
	*sa_reqid = 0;
	return need_sa && skb_sa_reqid(skb, sa_reqid) ? IPSNAT_R_PASS_NO_SA : 0;
}

/* NAT66: the flow's entry of the other direction; pass-icmp-no-ct when there is none. need_sa
 * (the way back on a policy-mode uplink): the SA must be one the flow's reply may come through
 * (nat66_reply_admits), else pass-no-sa / pass-wrong-sa. out (a LAN host's error about a reply,
 * on a device of scope sc): pass-ct-stale while the flow's rule names another address than the
 * flow's since the last SPD change (nat66_error_flow_stale). */
static __always_inline enum ipsnat_reason icmp6_nat66(struct __sk_buff *skb, struct icmp6_err *m, struct npt6_scope sc,
						      int out, int need_sa)
{
	__u32 sa_reqid;

	struct ipsnat_ct6_key k = { .sport = m->qdport, .dport = m->qsport, .proto = m->q.proto,
				    .dir = out ? IPSNAT_CT_ORIG : IPSNAT_CT_REPLY };

	__builtin_memcpy(k.saddr, m->q.daddr, 16);
	__builtin_memcpy(k.daddr, m->q.saddr, 16);
	struct ipsnat_ct6_entry *e = bpf_map_lookup_elem(&ipsnat_ct6, &k);
	if (!e || !nat66_addr_equal(out ? m->o.h.saddr : m->o.h.daddr, out ? m->q.daddr : m->q.saddr))
		return IPSNAT_R_PASS_ICMP_NO_CT;
	if (out && nat66_error_flow_stale(&k, e, sc))
		return IPSNAT_R_PASS_CT_STALE;
	if (icmp6_sa_of(skb, need_sa, &sa_reqid))
		return IPSNAT_R_PASS_NO_SA;
	if (need_sa && !nat66_reply_admits(&k, e, sa_reqid))
		return IPSNAT_R_PASS_WRONG_SA;
	__u8 to[16];
	__builtin_memcpy(to, e->xlat_addr, 16);
	__be16 port = e->xlat_port;
	if (icmp6_rewrite_quote(skb, m, !out, to, port) || nat66_rewrite(skb, &m->o, out, to, 0))
		return IPSNAT_R_DROP_REWRITE;
	return IPSNAT_R_XLATE_ICMP_ERROR;
}

/* NPTv6: the rule of the quoted translated address (reverse: an NPT6_IN rule, and the quoted
 * destination is the policy's remote, as npt6_sender_rule asks of a sender) or of the error's
 * destination (egress: NPT6_OUT). IPSNAT_R_MAX when no rule explains the quote. need_sa: only
 * through an SA of the remote's policy (npt6_sa_admits), else pass-no-sa / pass-wrong-sa. */
static __always_inline enum ipsnat_reason icmp6_npt(struct __sk_buff *skb, struct icmp6_err *m, struct npt6_scope sc, int out,
						    int need_sa)
{
	__u32 sa_reqid;

	const __u8 *quoted = out ? m->q.daddr : m->q.saddr;
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = sc.if_id, .mark = sc.mark,
			      .dir = out ? NPT6_OUT : NPT6_IN };

	__builtin_memcpy(k.addr, out ? m->o.h.daddr : quoted, 16);
	struct npt6_rule *r = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	if (!r || r->kind != NPT6_KIND_PREFIX || !npt6_in_prefix(quoted, r) ||
	    !nat66_addr_equal(out ? m->o.h.saddr : m->o.h.daddr, quoted))
		return IPSNAT_R_MAX;
	if (!out) {
		struct npt6_rule *sender = npt6_sender_rule((const struct in6_addr *)m->q.daddr, sc, r);

		if (!sender)
			return IPSNAT_R_MAX;
		if (icmp6_sa_of(skb, need_sa, &sa_reqid))
			return IPSNAT_R_PASS_NO_SA;
		if (!npt6_sa_admits(sender, need_sa, sa_reqid))
			return IPSNAT_R_PASS_WRONG_SA;
	}
	__u8 addr[16];
	__builtin_memcpy(addr, quoted, 16);
	if (npt6_map(addr, r))
		return IPSNAT_R_DROP_NPT6_UNMAPPABLE;
	/* The sums are unchanged; the flag keeps a CHECKSUM_COMPLETE skb exact anyway. */
	if (bpf_skb_store_bytes(skb, m->ql3 + (out ? IPV6_DADDR_OFF : IPV6_SADDR_OFF), addr, 16, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, m->o.l3 + (out ? IPV6_SADDR_OFF : IPV6_DADDR_OFF), addr, 16, BPF_F_RECOMPUTE_CSUM))
		return IPSNAT_R_DROP_REWRITE;
	return IPSNAT_R_XLATE_ICMP_ERROR;
}

/* Whether the error goes to an address NPTv6 translates back (an NPT6_IN rule's prefix). */
static __always_inline int icmp6_to_npt6_prefix(const struct icmp6_err *m, struct npt6_scope sc)
{
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = sc.if_id, .mark = sc.mark, .dir = NPT6_IN };

	__builtin_memcpy(k.addr, m->o.h.daddr, 16);
	return bpf_map_lookup_elem(&ipsnat_npt6, &k) != 0;
}

/* Whether the error goes to a NAT66 address about a packet from it: the rule of the quoted
 * destination translates to the quoted source (an address of its pool), and the error is
 * addressed there. */
static __always_inline int icmp6_to_nat66_addr(const struct icmp6_err *m, struct npt6_scope sc)
{
	struct npt6_rule *r = nat66_rule(sc, m->q.daddr);

	return r && nat66_in_pool(m->q.saddr, r) && nat66_addr_equal(m->o.h.daddr, m->q.saddr);
}

/* An ICMPv6 error on a route-mode device (sc: its if_id and mark; flags: IPSNAT_DEV_BINAT enables NPTv6), at egress
 * (dir NPT6_OUT) or ingress (NPT6_IN), or on a policy-mode uplink (sc 0) at its ingress
 * (need_sa) or in LWT xmit on its routes (NPT6_OUT, l3_at_data as ipv6_load): the outcome, or
 * IPSNAT_R_MAX when the packet is no error about a flow ipsnat knows and the caller goes on as for
 * any packet. No flow on the way back: to an NPTv6 prefix it is dropped (drop-icmp-no-flow;
 * stateless NPTv6 would otherwise take it to a LAN host as a plain packet); to a NAT66 address
 * about a packet from that address it passes untouched to the gateway, whose own flows it may
 * concern (pass-icmp-no-ct, as IPv4's reverse_unexplained in route mode); into the LAN the caller's
 * drop-unsolicited applies. */
static __always_inline enum ipsnat_reason icmp6_error(struct __sk_buff *skb, struct npt6_scope sc, __u32 flags, __u32 dir,
						      int need_sa, int l3_at_data)
{
	int out = dir == NPT6_OUT;
	struct icmp6_err m;
	enum ipsnat_reason why;

	if (icmp6_parse(skb, &m, l3_at_data) || !m.quoted)
		return IPSNAT_R_MAX;
	if (m.q.ports && (!out || nat66_rule(sc, m.o.h.daddr))) {
		why = icmp6_nat66(skb, &m, sc, out, need_sa);
		if (why != IPSNAT_R_PASS_ICMP_NO_CT)
			return why;
	}
	if (flags & IPSNAT_DEV_BINAT) {
		why = icmp6_npt(skb, &m, sc, out, need_sa);
		if (why != IPSNAT_R_MAX)
			return why;
	}
	if (out)
		return IPSNAT_R_MAX;
	if ((flags & IPSNAT_DEV_BINAT) && icmp6_to_npt6_prefix(&m, sc))
		return IPSNAT_R_DROP_ICMP_NO_FLOW;
	return icmp6_to_nat66_addr(&m, sc) ? IPSNAT_R_PASS_ICMP_NO_CT : IPSNAT_R_MAX;
}

#endif
