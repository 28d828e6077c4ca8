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
#include "lib/binat.h"
#include "lib/config.h"
#include "lib/cover6.h"
#include "lib/ct.h"
#include "lib/frag.h"
#include "lib/fwd.h"
#include "lib/icmp.h"
#include "lib/icmp6.h"
#include "lib/masq.h"
#include "lib/nat.h"
#include "lib/nat66.h"
#include "lib/npt6.h"
#include "lib/parse.h"
#include "lib/parse6.h"
#include "lib/sa.h"
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
	case IPSNAT_R_DROP_LEAK_GUARD6:
	case IPSNAT_R_DROP_GUARD_UNPARSED:
	case IPSNAT_R_DROP_UNSOLICITED:
	case IPSNAT_R_DROP_SPD_UNREPRESENTABLE:
	case IPSNAT_R_DROP_NPT6_UNMAPPABLE:
	case IPSNAT_R_DROP_ICMP_NO_FLOW:
		return 1;
	default:
		return 0;
	}
}

static __always_inline int xlate_is_translated(enum ipsnat_reason r)
{
	return r == IPSNAT_R_XLATE_SNAT || r == IPSNAT_R_XLATE_REVERSE ||
	       r == IPSNAT_R_XLATE_ICMP_ERROR || r == IPSNAT_R_XLATE_FRAG || r == IPSNAT_R_XLATE_ICMP_LOCAL ||
	       r == IPSNAT_R_XLATE_FORWARD || r == IPSNAT_R_XLATE_MASQ || r == IPSNAT_R_XLATE_BINAT ||
	       r == IPSNAT_R_XLATE_NPT6 || r == IPSNAT_R_XLATE_NPT6_REVERSE || r == IPSNAT_R_XLATE_NAT66 ||
	       r == IPSNAT_R_XLATE_NAT66_REVERSE;
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

/* Whether the SPD still sends flow f (the untranslated tuple as the SPD lookup sees it),
 * translated by x, into IPsec: the kernel's out-policy for the translated tuple (the one its xfrm
 * lookup sees after this hook) has templates. *reqid (unless NULL): that policy's reqid. */
static __always_inline int snat_still_protected(struct ipsnat_flow4 f, const struct ct_xlat *x, __u32 *reqid)
{
	__u32 index, verdict;

	f.saddr = x->addr;
	f.sport = x->port;
	return spd_lookup(&f, &index, &verdict, reqid) == 0 && verdict == SPD_V_IPSEC;
}

/* An ICMP error an inside host raises about a reply of the flow of entry e follows that flow:
 * while the SPD changed since the flow was last checked and no longer protects its translated
 * tuple, the flow's packets pass untranslated (pass-ct-stale), and so does the error. */
static __always_inline int icmp_error_flow_stale(struct __sk_buff *skb, const struct pkt4 *p, int use_dev,
						 const struct ipsnat_ct_entry *e)
{
	if (ct_checked_under(e, spd_version_now()))
		return 0;
	struct ipsnat_flow4 f = snat_flow_of(skb, p, use_dev);
	struct ct_xlat x = ct_xlat_of(e);

	/* The flow's own tuple: the quote is a reply of it, reversed. */
	f.saddr = p->inner.daddr;
	f.daddr = p->inner.saddr;
	f.sport = p->inner.dport;
	f.dport = p->inner.sport;
	f.proto = p->inner.proto;
	return !snat_still_protected(f, &x, 0);
}

/* What the SPD and the inside set say about translating p's source: 0 and the target in *t, or
 * the pass reason. Shared by a packet that opens a flow and a later fragment whose first one is
 * unknown (no ports: the lookups use ports 0), so both judge a source alike. */
static __always_inline enum ipsnat_reason snat_target_head(struct __sk_buff *skb, const struct pkt4 *p, int use_dev,
							   struct spd_nat_target *t)
{
	struct ipsnat_flow4 f = snat_flow_of(skb, p, use_dev);
	int found = spd_nat_target(&f, t, !use_dev);

	if (found == SPD_NAT_PORTS_LOST)
		return IPSNAT_R_PASS_REROUTE_PORTS;
	if (found)
		return IPSNAT_R_PASS_NOT_COVERED;
	if (t->kind == SPD_NAT_NONE)
		return IPSNAT_R_PASS_NO_TARGET;
	if (nat_source_ok(t, p->saddr))
		return IPSNAT_R_PASS_ALREADY_OK;
	if (!nat_source_inside(t, p->saddr) || (t->kind == SPD_NAT_PREFIX && !nat_prefix_map(t, p->saddr))) {
		/* LWT xmit only: a LAN packet netfilter masqueraded before this hook. NAPT of the
		 * inside set takes it (netfilter's conntrack maps the reply back to the LAN host);
		 * a 1:1 target or a configured block cannot know which host it was. */
		if (use_dev || !inside_masqueraded(skb, p->saddr))
			return IPSNAT_R_PASS_NOT_INSIDE;
		if (t->kind != SPD_NAT_NAPT || !(t->flags & SPD_NAT_INSIDE_SET))
			return IPSNAT_R_PASS_MASQUERADED;
	}
	return 0;
}

/* What a new flow of p is translated to: 0 and *t, or the pass reason. */
static __always_inline enum ipsnat_reason snat_target_of(struct __sk_buff *skb, const struct pkt4 *p, int use_dev,
							 struct spd_nat_target *t)
{
	enum ipsnat_reason why = snat_target_head(skb, p, use_dev, t);

	if (why)
		return why;
	return nat_tuple_supported(p) ? 0 : IPSNAT_R_PASS_PROTO;
}

/* Whether the flow's translated address `a` is one of the gateway's own (INSIDE_LOCAL) that the
 * pool of the flow's target leaves out now (the loader leaves the gateway's addresses out of NAPT
 * pools, spd/nat.h implied_nats): the flow is then bound anew, as a NAT66 flow whose pool no longer
 * holds its address, or its ports would collide with the gateway's sockets on it. Asked once per
 * flow and SPD version: one inside lookup, and the target only for a flow on a gateway address (a
 * one-address policy's virtual IP, which its target holds). *t: scratch. */
static __always_inline int snat_left_its_pool(struct __sk_buff *skb, const struct pkt4 *p, int use_dev, __be32 a,
					      struct spd_nat_target *t)
{
	if (!(inside_flags(a) & INSIDE_LOCAL))
		return 0;
	return !snat_target_of(skb, p, use_dev, t) && t->kind == SPD_NAT_NAPT && !nat_source_ok(t, a);
}

/* A later fragment whose first fragment left no memory (lost, or not arrived yet): what its
 * first fragment would have met. Where that is a translation, the fragment cannot be translated
 * consistently and is dropped; otherwise it passes for the same reason. Its ICMP type is
 * unknown: an ICMP fragment counts as an echo request's. */
static __always_inline enum ipsnat_reason snat_later_fragment(struct __sk_buff *skb, const struct pkt4 *p,
							      int use_dev)
{
	struct spd_nat_target t;
	enum ipsnat_reason why = snat_target_head(skb, p, use_dev, &t);

	if (why)
		return why;
	if (!nat_proto_translated(p->proto))
		return IPSNAT_R_PASS_PROTO;
	return IPSNAT_R_DROP_FRAG_NO_FIRST;
}

/* An error this host raised about a packet already translated here: the tunnel device's
 * "fragmentation needed" comes after the NAT, addressed to the NAT address, and would die in
 * the tunnel or, when the NAT address is local, at the host itself. Translated back for the
 * inside host (the quote is the translated flow's packet, so its tuple is the reply key); the
 * caller delivers it there (docs/datapath.md, "Kernel path": MTU). */
static __always_inline enum ipsnat_reason xlate_local_error(struct __sk_buff *skb, const struct pkt4 *p)
{
	struct ipsnat_ct_key k = ct_key_of_quote(&p->inner, IPSNAT_CT_REPLY);
	struct ipsnat_ct_entry *e = ct_lookup(&k);

	if (!e || p->daddr != p->inner.saddr)
		return IPSNAT_R_PASS_ICMP_NO_CT;
	if (icmp_error_rev(skb, p, e))
		return IPSNAT_R_DROP_REWRITE;
	return IPSNAT_R_XLATE_ICMP_LOCAL;
}

/* The reverse side of IPv6 (TC ingress): NAT66 replies (lib/nat66.h), then NPTv6 under --binat
 * (flags), else the packet passes as before attach, unless it enters a NAT66 rule's inside prefix
 * from the far side with an SA, or on a policy-mode uplink one of the gateway's addresses NAT66
 * takes as a masqueraded source: nothing the LAN sent explains it, and only an fwd companion would
 * admit it (drop-unsolicited, as reverse_unexplained for IPv4). On a policy-mode uplink (need_sa)
 * only what an SA decrypted is translated: cleartext that looks like a reply never reaches the LAN
 * (its NPTv6 address finds no route there: the blackhole or nothing). */
static __always_inline enum ipsnat_reason ipv6_reverse(struct __sk_buff *skb, struct npt6_scope sc, __u32 flags, int need_sa)
{
	enum ipsnat_reason why = IPSNAT_R_PASS_NOT_IPV4;
	struct pkt66 p;
	int parsed;
	__u32 reqid = 0;

	if (nat66_reverse(skb, &p, &parsed, need_sa, &why))
		return why;
	int decrypted = parsed && !skb_sa_reqid(skb, &reqid);
	if ((flags & IPSNAT_DEV_BINAT) && (decrypted || !need_sa)) {
		why = npt6_reverse(skb, sc, need_sa, reqid);
		if (why != IPSNAT_R_PASS_NOT_COVERED)
			return why;
	}
	if (decrypted && nat66_unsolicited(sc, p.h.saddr, p.h.daddr, need_sa))
		return IPSNAT_R_DROP_UNSOLICITED;
	return why;
}

/* IPv6 on a device: NAT66 with ports for policies whose source is one address (bpf/lib/nat66.h:
 * stateful, replies only), and NPTv6 with --binat (bpf/lib/npt6.h). NPTv6 is stateless: the
 * reverse rule that brings replies back also lets the far side open connections to every mapped
 * LAN host, so only a device whose user asked for that (IPSNAT_DEV_BINAT, as lib/binat.h) applies
 * it. A tunnel device (route mode) translates both ways at TC, with its if_id and mark (a VTI's
 * okey); a policy-mode uplink only the reverse side here, with both 0 (its out side is LWT xmit:
 * xlate_snat6_lwt). */
static __always_inline enum ipsnat_reason ipv6_on_device(struct __sk_buff *skb, enum npt6_dir dir)
{
	enum ipsnat_reason why;

	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return IPSNAT_R_PASS_NOT_IPV4;
	struct ipsnat_dev_cfg d = dev_cfg(skb->ifindex);
	if (d.mode != IPSNAT_DEV_ROUTE)
		return dir == NPT6_IN ? ipv6_reverse(skb, NPT6_POLICY_MODE, d.flags, 1) : IPSNAT_R_PASS_NOT_IPV4;
	struct npt6_scope sc = npt6_scope_of(&d);
	if (dir == NPT6_IN)
		return ipv6_reverse(skb, sc, d.flags, 0);
	if (nat66_egress(skb, sc, 0, 0, &why))
		return why;
	return d.flags & IPSNAT_DEV_BINAT ? npt6_egress(skb, sc, 0) : IPSNAT_R_PASS_NOT_IPV4;
}

/* IPv6 in LWT xmit on the routes policy mode installs for an IPv6 out-policy's destination: the
 * LAN source becomes the policy's (NAT66 with ports; NPTv6 when the route's device has --binat),
 * before the kernel's xfrm lookup after the reroute. The policies bound to no interface and
 * unmarked: if_id 0, mark 0. */
static __always_inline enum ipsnat_reason xlate_snat6_lwt(struct __sk_buff *skb)
{
	enum ipsnat_reason why;

	if (nat66_egress(skb, NPT6_POLICY_MODE, 1, 1, &why))
		return why;
	if (dev_cfg(skb->ifindex).flags & IPSNAT_DEV_BINAT)
		return npt6_egress(skb, NPT6_POLICY_MODE, 1);
	return IPSNAT_R_PASS_NOT_COVERED;
}

/* SNAT side of IPv4, before the xfrm lookup (TC egress of a tunnel device, LWT xmit). Malformed
 * and truncated packets are dropped: nothing here may leave half-understood. */
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
			if (icmp_error_flow_stale(skb, &p, use_dev, e))
				return IPSNAT_R_PASS_CT_STALE;
			if (icmp_error_snat(skb, &p, e))
				return IPSNAT_R_DROP_REWRITE;
			return IPSNAT_R_XLATE_ICMP_ERROR;
		}
		return xlate_local_error(skb, &p);
	}

	if (p.frag == PKT_FRAG_LATER) {
		struct ipsnat_frag_entry *fe = frag_lookup(&p, IPSNAT_CT_ORIG);

		if (fe) {
			/* LWT xmit: netfilter's masquerade wrote the source and looks at the
			 * fragment again after the reroute (lib/frag.h frag_head_guard). */
			if (!use_dev && inside_masqueraded(skb, p.saddr) && frag_head_guard(skb, &p))
				return IPSNAT_R_DROP_REWRITE;
			if (nat_rewrite(skb, &p, 1, fe->xlat_addr, 0))
				return IPSNAT_R_DROP_REWRITE;
			return IPSNAT_R_XLATE_FRAG;
		}
		return snat_later_fragment(skb, &p, use_dev);
	}

	struct ipsnat_ct_key k = ct_key_of(&p, IPSNAT_CT_ORIG);
	/* Read before any SPD decision below: an entry stamped with it was decided on this SPD
	 * version or a newer one, never an older one. */
	__u64 spd_ver = spd_version_now();
	struct ipsnat_ct_entry *e = ct_lookup(&k);
	struct ct_xlat x;
	int have_target = 0;
	/* The SPD changed since this flow was last checked: its translated source must still be
	 * sent into IPsec, or it would leave uncovered (a removed policy, another virtual IP), and
	 * must not be a gateway address its pool left out; the flow takes the reqid of the policy
	 * that protects it now (IKE re-established the SA). */
	if (e && !ct_checked_under(e, spd_ver)) {
		__u32 reqid;

		x = ct_xlat_of(e);
		if (snat_still_protected(snat_flow_of(skb, &p, use_dev), &x, &reqid) &&
		    !snat_left_its_pool(skb, &p, use_dev, x.addr, &t)) {
			ct_flow_protected(&k, e, reqid, spd_ver);
		} else {
			/* Handled as a new flow: with no target now it passes untranslated and the
			 * entry stays (the policy may come back with the same binding); with another
			 * target the old binding is removed and a new one made. */
			if (snat_target_of(skb, &p, use_dev, &t))
				return IPSNAT_R_PASS_CT_STALE;
			ct_forget(&k, e);
			e = 0;
			have_target = 1;
		}
	}
	if (e) {
		x = ct_xlat_of(e);
		ct_account(&k, e, &p, p.ip_len);
	} else {
		if (!have_target) {
			enum ipsnat_reason why = snat_target_of(skb, &p, use_dev, &t);

			if (why)
				return why;
		}
		/* Created here: the new entries already count this packet. Raced: another CPU's. */
		int r = nat_bind(&p, &t, spd_ver, &x);
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

/* IPv6 on the egress of a route-mode device (tc_snat_egress dispatches it before the IPv4 parse:
 * bpf/ipsnat.bpf.c says why). */
static __always_inline enum ipsnat_reason xlate_snat6_dev(struct __sk_buff *skb)
{
	return ipv6_on_device(skb, NPT6_OUT);
}

/* The SA a reply came with. On a device in policy mode (or unknown) it must have come with an
 * SA: 0 and its reqid in *sa_reqid, or pass-no-sa (a cleartext packet from the WAN that looks
 * like a reply is never let into the LAN). On a tunnel device (route mode) the device's own SAs
 * decrypted everything: 0 and *checked = 0. Asked only once a packet matched a flow, so the
 * uplink's other traffic costs no ipsnat_dev lookup. */
static __always_inline enum ipsnat_reason reverse_sa_of(struct __sk_buff *skb, int *checked, __u32 *sa_reqid)
{
	*sa_reqid = 0;
	*checked = dev_cfg(skb->ifindex).mode != IPSNAT_DEV_ROUTE;
	if (!*checked)
		return 0;
	if (skb_sa_reqid(skb, sa_reqid))
		return IPSNAT_R_PASS_NO_SA;
	return 0;
}

/* Whether a packet that opens a flow, or one whose flow is not known by its reqid (a later
 * fragment), may be translated: only for the SA requirement above. Returns 0 or the reason to
 * pass it untouched; *sa_reqid is the SA's reqid (0 in route mode). */
static __always_inline enum ipsnat_reason reverse_sa_refusal(struct __sk_buff *skb, __u32 *sa_reqid)
{
	int checked;

	return reverse_sa_of(skb, &checked, sa_reqid);
}

/* Whether the SA of sa_reqid may deliver a packet of the flow of REPLY entry e (key k): the
 * reqid that counts is that of the out-policy protecting the flow under the current SPD. The
 * entry's reqid is that one while the entry is stamped with the current SPD version (one array
 * lookup per packet). Otherwise (the SPD changed, e.g. IKE re-established the SA under a new
 * reqid and no packet of the flow went out since), or when the SA's reqid differs from the
 * entry's, the SPD is asked for the policy of the flow's translated tuple, and the entry takes
 * that policy's reqid and the version: a reply through the current SA is never refused by a
 * stale entry. The reply side knows neither the mark nor the if_id the flow's packets leave
 * with; where that lookup finds no IPsec policy, the entry's reqid decides, as before the
 * change. */
static __always_inline enum ipsnat_reason reply_sa_refusal(const struct ipsnat_ct_key *k, struct ipsnat_ct_entry *e,
							   __u32 sa_reqid)
{
	__u64 now = spd_version_now();
	__u32 reqid;

	if (e->spd_version == now && reqid_admits(e->reqid, sa_reqid))
		return 0;
	struct ipsnat_flow4 f = {
		.saddr = e->xlat_addr,
		.daddr = k->saddr,
		.sport = e->xlat_port,
		.dport = k->sport,
		.proto = k->proto,
	};
	struct ct_xlat x = { .addr = k->daddr, .port = k->dport };
	if (!snat_still_protected(f, &x, &reqid))
		reqid = e->reqid;
	if (!reqid_admits(reqid, sa_reqid))
		return IPSNAT_R_PASS_WRONG_SA;
	ct_stamp(e, reqid, now);
	return 0;
}

/* A reply of a masqueraded flow (lib/masq.h) needs no SA but the opposite: it arrives in
 * cleartext, on the device that masquerades to its destination address. A decrypted packet for
 * such a tuple is not this flow's; on another device neither. */
static __always_inline enum ipsnat_reason masq_reply_refusal(struct __sk_buff *skb, __be32 masq_addr)
{
	__u32 reqid;

	if (dev_cfg(skb->ifindex).masq_addr != masq_addr)
		return IPSNAT_R_PASS_NO_CT;
	return skb_sa_reqid(skb, &reqid) ? 0 : IPSNAT_R_PASS_WRONG_SA;
}

/* The SA check of a packet of the flow of REPLY entry e (key k); see the two above. */
static __always_inline enum ipsnat_reason reverse_flow_sa_refusal(struct __sk_buff *skb, const struct ipsnat_ct_key *k,
								  struct ipsnat_ct_entry *e)
{
	int checked;
	__u32 sa_reqid;

	if (e->kind == IPSNAT_CT_KIND_MASQ)
		return masq_reply_refusal(skb, k->daddr);
	enum ipsnat_reason refused = reverse_sa_of(skb, &checked, &sa_reqid);

	if (refused || !checked)
		return refused;
	return reply_sa_refusal(k, e, sa_reqid);
}

/* Whether the kernel's out-policies send the reply direction of p (its destination, a LAN host
 * or the gateway, towards its sender) through IPsec: then the IKE daemon's own in/fwd policies,
 * which mirror that out-policy, admit p and decide as they did before attach. */
static __always_inline int reply_direction_protected(const struct pkt4 *p, __u32 mark, __u32 if_id)
{
	struct ipsnat_flow4 f = { .saddr = p->daddr, .daddr = p->saddr, .sport = p->dport, .dport = p->sport,
				  .proto = p->proto, .mark = mark, .if_id = if_id };
	__u32 index = 0, verdict = 0, reqid = 0;

	if (spd_lookup(&f, &index, &verdict, &reqid) != 0)
		return 0;
	return verdict == SPD_V_IPSEC;
}

/* A packet for which no conntrack entry, fragment memory or port-forward exists, decrypted (on
 * the uplink in policy mode, or on an xfrm interface, which keeps the sec path for its fwd
 * check; a VTI clears it before this hook and its own in-policy has decided). Admitted before
 * attach only by the IKE daemon's in/fwd policies, which mirror its out-policies; after attach
 * also by ipsnat's companions (`REMOTE -> LAN`, and on a policy-mode uplink `REMOTE -> the
 * uplink's address` for replies to LAN flows the gateway's masquerade rewrote, which have a
 * conntrack entry). The IKE daemon's SAs carry no selector, so a companion admits whatever the
 * peer sends. So a packet into an inside prefix, or to one of the gateway's own addresses on a
 * policy-mode uplink, whose reply direction no out-policy sends through IPsec is dropped as
 * drop-unsolicited (the LAN host, or a netfilter DNAT port-forward on the uplink's address,
 * would otherwise be open to the far side). Anything else passes with reason `pass`. Cheapest
 * test first: most of the uplink's traffic is cleartext. */
static __always_inline enum ipsnat_reason reverse_unexplained(struct __sk_buff *skb, const struct pkt4 *p,
							      enum ipsnat_reason pass)
{
	__u32 reqid;

	if (skb_sa_reqid(skb, &reqid))
		return pass;
	__u32 flags = inside_flags(p->daddr);
	struct ipsnat_dev_cfg d = dev_cfg(skb->ifindex);
	if (!(flags & INSIDE_PREFIX) && (!(flags & INSIDE_LOCAL) || d.mode == IPSNAT_DEV_ROUTE))
		return pass;
	return reply_direction_protected(p, skb->mark, d.if_id) ? pass : IPSNAT_R_DROP_UNSOLICITED;
}

/* BINAT (lib/binat.h) for a packet p that opens a flow and that no conntrack entry or
 * port-forward explains: 0 and the new flow's REPLY entry in *e, drop-ct-full, or the pass reason
 * with which the caller decides as without BINAT: pass-no-ct (the device has no --binat, the
 * packet is cleartext on a policy-mode uplink, no 1:1 map of the policy for its reply direction
 * holds its destination) or pass-wrong-sa (in policy mode another policy's SA decrypted it). The
 * SA check is the reverse path's (reverse_sa_of). */
static __always_inline enum ipsnat_reason reverse_binat(struct __sk_buff *skb, const struct pkt4 *p,
							struct ipsnat_ct_entry **e)
{
	struct ipsnat_dev_cfg d = dev_cfg(skb->ifindex);
	struct binat_target b;
	__u32 sa_reqid;
	int checked;

	if (!(d.flags & IPSNAT_DEV_BINAT) || reverse_sa_of(skb, &checked, &sa_reqid))
		return IPSNAT_R_PASS_NO_CT;
	/* Read before the SPD decision, as on the SNAT side. */
	__u64 spd_ver = spd_version_now();
	struct ipsnat_flow4 reply = { .saddr = p->daddr, .daddr = p->saddr, .sport = p->dport, .dport = p->sport,
				      .proto = p->proto, .mark = skb->mark, .if_id = d.if_id };
	if (binat_host(&reply, &b))
		return IPSNAT_R_PASS_NO_CT;
	if (checked && !reqid_admits(b.reqid, sa_reqid))
		return IPSNAT_R_PASS_WRONG_SA;
	*e = binat_open(p, &b, spd_ver);
	return *e ? 0 : IPSNAT_R_DROP_CT_FULL;
}

/* Reverse side: replies to translated flows, and ICMP errors about them. On a device in policy
 * mode only decrypted packets (with an SA in their sec path) are translated: a cleartext
 * packet from the WAN that looks like a reply must never be let into the LAN. Everything that
 * is not ours passes untouched (this hook sees all of the uplink's traffic). */
static __always_inline enum ipsnat_reason xlate_reverse(struct __sk_buff *skb)
{
	enum ipsnat_reason refused;
	__u32 sa_reqid;
	struct pkt4 p;

	switch (parse_ipv4(skb, &p, 0)) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return IPSNAT_R_PASS_NOT_IPV4; /* IPv6: xlate_reverse6_dev */
	default:
		return IPSNAT_R_PASS_MALFORMED;
	}
	if (p.icmp_error) {
		struct ipsnat_ct_key k = ct_key_of_quote(&p.inner, IPSNAT_CT_REPLY);
		struct ipsnat_ct_entry *e = ct_lookup(&k);

		if (!e || p.daddr != p.inner.saddr)
			return reverse_unexplained(skb, &p, IPSNAT_R_PASS_ICMP_NO_CT);
		refused = reverse_flow_sa_refusal(skb, &k, e);
		if (refused)
			return refused;
		if (icmp_error_rev(skb, &p, e))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_ICMP_ERROR;
	}

	if (p.frag == PKT_FRAG_LATER) {
		struct ipsnat_frag_entry *fe = frag_lookup(&p, IPSNAT_CT_REPLY);

		if (!fe)
			return reverse_unexplained(skb, &p, IPSNAT_R_PASS_FRAG_UNKNOWN);
		/* The fragment memory keeps no reqid: an SA is required, its first fragment's
		 * flow was checked against the reqid; or, for the masquerade address of this
		 * device, its absence. */
		if (dev_cfg(skb->ifindex).masq_addr == p.daddr)
			refused = masq_reply_refusal(skb, p.daddr);
		else
			refused = reverse_sa_refusal(skb, &sa_reqid);
		if (refused)
			return refused;
		if (nat_rewrite(skb, &p, 0, fe->xlat_addr, 0))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_FRAG;
	}

	struct ipsnat_ct_key k = ct_key_of(&p, IPSNAT_CT_REPLY);
	struct ipsnat_ct_entry *e = ct_lookup(&k);
	enum ipsnat_reason done = IPSNAT_R_XLATE_REVERSE;
	if (!e) {
		/* A new connection to a port-forward, else to a 1:1-mapped address (BINAT): TCP only
		 * from its SYN, so a stray segment never opens a flow. */
		int opens = inbound_opens(&p);
		struct ipsnat_fwd_target *t = opens ? fwd_lookup(p.daddr, p.proto, p.dport) : 0;

		if (t) {
			refused = reverse_sa_refusal(skb, &sa_reqid);
			if (refused)
				return refused;
			/* The flow is bound to the SA that opened it. */
			e = fwd_open(&p, t, sa_reqid);
			if (!e)
				return IPSNAT_R_DROP_CT_FULL;
			done = IPSNAT_R_XLATE_FORWARD;
		} else {
			refused = opens ? reverse_binat(skb, &p, &e) : IPSNAT_R_PASS_NO_CT;
			if (refused == IPSNAT_R_DROP_CT_FULL)
				return refused;
			if (refused)
				return reverse_unexplained(skb, &p, refused);
			done = IPSNAT_R_XLATE_BINAT;
		}
	} else {
		refused = reverse_flow_sa_refusal(skb, &k, e);
		if (refused)
			return refused;
	}
	struct ct_xlat x = ct_xlat_of(e);
	ct_account(&k, e, &p, p.ip_len);
	if (nat_rewrite(skb, &p, 0, x.addr, x.port))
		return IPSNAT_R_DROP_REWRITE;
	frag_remember(&p, IPSNAT_CT_REPLY, x.addr);
	return done;
}

/* An ICMPv6 error about a translated flow (bpf/lib/icmp6.h) on a route-mode device, at egress
 * (NPT6_OUT) or ingress (NPT6_IN), or at the ingress of a policy-mode uplink (the rules of no
 * interface, through an SA only; its out side is LWT xmit): the outcome, or IPSNAT_R_MAX when the
 * IPv6 path decides. The entry points call it before that path, each in a subprogram of its own
 * (bpf/ipsnat.bpf.c). */
static __always_inline enum ipsnat_reason xlate_icmp6_dev(struct __sk_buff *skb, enum npt6_dir dir)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6) || !icmp6_may_be_error(skb, 0))
		return IPSNAT_R_MAX;
	struct ipsnat_dev_cfg d = dev_cfg(skb->ifindex);
	int route = d.mode == IPSNAT_DEV_ROUTE;
	if (!route && dir != NPT6_IN)
		return IPSNAT_R_MAX;
	return icmp6_error(skb, route ? npt6_scope_of(&d) : NPT6_POLICY_MODE, d.flags, dir, !route, 0);
}

/* A LAN host's ICMPv6 error about a reply, in LWT xmit on a policy-mode route (the rules of no
 * interface; NPTv6 when the route's device has --binat): translated as on a route-mode device's
 * egress, so that after the reroute the kernel's xfrm lookup sees the policy's source. The
 * outcome, or IPSNAT_R_MAX when xlate_snat6_lwt decides. */
static __always_inline enum ipsnat_reason xlate_icmp6_lwt(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6) || !icmp6_may_be_error(skb, 1))
		return IPSNAT_R_MAX;
	return icmp6_error(skb, NPT6_POLICY_MODE, dev_cfg(skb->ifindex).flags, NPT6_OUT, 0, 1);
}

/* IPv6 on the ingress of a route-mode device (tc_rev_ingress dispatches it before the IPv4
 * parse, as tc_snat_egress does). */
static __always_inline enum ipsnat_reason xlate_reverse6_dev(struct __sk_buff *skb)
{
	return ipv6_on_device(skb, NPT6_IN);
}

static __always_inline int is_ike_port(__be16 port)
{
	return port == bpf_htons(500) || port == bpf_htons(4500);
}

/* The gateway's own IKE: UDP 500/4500 (NAT-T, ESP in UDP) and TCP 4500 (RFC 8229, whose
 * initiator uses an ephemeral source port), from or to the IKE port. Only packets the gateway
 * generates: at TC egress, ingress_ifindex is 0 for those and the input device for forwarded
 * ones, so a LAN host's packet with an IKE port is guarded like any other. */
static __always_inline int guard_own_ike(struct __sk_buff *skb, __u8 proto, __be16 sport, __be16 dport)
{
	return skb->ingress_ifindex == 0 && (proto == IPPROTO_UDP || proto == IPPROTO_TCP) &&
	       (is_ike_port(sport) || is_ike_port(dport));
}

static __always_inline enum ipsnat_reason guard_covered_reason(int covered, enum ipsnat_reason drop)
{
	switch (covered) {
	case 0:
		return IPSNAT_R_PASS_NOT_COVERED;
	case SPD_OUT_FAIL_CLOSED:
		return IPSNAT_R_DROP_SPD_INCOMPLETE;
	case SPD_OUT_UNREPRESENTABLE:
		return IPSNAT_R_DROP_SPD_UNREPRESENTABLE;
	default:
		return drop;
	}
}

/* An IPv4 packet the parser refused (malformed, truncated, options it cannot read): its ports
 * and maybe its protocol are unknown, so it may leave only when no ports would make its
 * destination covered. Without even a 20-byte header there is no destination to route by. */
static __always_inline enum ipsnat_reason guard_unparsed4(struct __sk_buff *skb)
{
	struct iphdr iph;

	if (bpf_skb_load_bytes_relative(skb, 0, &iph, sizeof(iph), BPF_HDR_START_NET) < 0)
		return IPSNAT_R_PASS_MALFORMED;
	struct ipsnat_flow4 f = { .saddr = iph.saddr, .daddr = iph.daddr, .proto = iph.protocol, .mark = skb->mark };
	int covered = spd_out_covered_some_ports(&f);
	return covered ? guard_covered_reason(covered, IPSNAT_R_DROP_GUARD_UNPARSED) : IPSNAT_R_PASS_MALFORMED;
}

/* IPv6 fails closed (ipsnat translates no IPv6): cleartext to a destination an IPv6 IPsec
 * out-policy covers is dropped, whatever its ports (maps/cover6.h). An extension-header chain
 * the walk cannot finish is judged by its destination alone. Link-scope destinations and the
 * host's own neighbour discovery never leave the link and pass. */
static __always_inline enum ipsnat_reason guard_ipv6(struct __sk_buff *skb)
{
	struct pkt6 p;

	if (parse_ipv6(skb, &p, 0) < 0)
		return IPSNAT_R_PASS_MALFORMED;
	if (!p.unparsed && (p.proto == IPPROTO_ESP || p.proto == IPPROTO_AH))
		return IPSNAT_R_PASS_IPSEC;
	if (p.ports && guard_own_ike(skb, p.proto, p.sport, p.dport))
		return IPSNAT_R_PASS_IPSEC;
	if (ipv6_link_scope(p.daddr) || ipv6_own_nd(skb, &p))
		return IPSNAT_R_PASS_NOT_COVERED;
	if (cover6_covered(p.daddr))
		return IPSNAT_R_DROP_LEAK_GUARD6;
	return guard_covered_reason(spd_fail_closed(), IPSNAT_R_DROP_LEAK_GUARD6);
}

/* Leak guard, TC egress of the uplink of policy-based SAs. Whatever the kernel encrypted
 * arrives here as ESP (or ESP in UDP 4500); the gateway's own IKE passes (guard_own_ike). Any
 * other packet whose flow an out-policy covers is cleartext that should have been encrypted
 * (translation missing, SA missing, a port-restricted policy after an LWT reroute): dropped and
 * counted. Where the ports are unknown (later fragments, packets the parser refuses) the
 * destination is covered when some ports would make it so. */
static __always_inline enum ipsnat_reason xlate_guard(struct __sk_buff *skb)
{
	struct pkt4 p;

	switch (parse_ipv4(skb, &p, 0)) {
	case PARSE_OK:
		break;
	case PARSE_NOT_IPV4:
		return skb->protocol == bpf_htons(ETH_P_IPV6) ? guard_ipv6(skb) : IPSNAT_R_PASS_NOT_IPV4;
	default:
		return guard_unparsed4(skb);
	}
	if (p.proto == IPPROTO_ESP || p.proto == IPPROTO_AH)
		return IPSNAT_R_PASS_IPSEC;
	if (p.frag != PKT_FRAG_LATER && guard_own_ike(skb, p.proto, p.sport, p.dport))
		return IPSNAT_R_PASS_IPSEC;
	/* Read before the SPD decision: a stamp made with it is never newer than that decision. */
	__u64 spd_ver = spd_version_now();
	struct masq_flow m;
	if (masq_flow_of(skb, &p, &m, spd_ver))
		return masq_translate(skb, &p, &m.k, m.e);
	struct ipsnat_flow4 f = flow_of(&p, skb->mark, 0);
	int covered = p.frag == PKT_FRAG_LATER ? spd_out_covered_some_ports(&f) : spd_out_covered(&f);
	enum ipsnat_reason r = guard_covered_reason(covered, IPSNAT_R_DROP_LEAK_GUARD);
	/* Cleartext no out-policy covers: the device's masquerade, if any, takes it. */
	return r == IPSNAT_R_PASS_NOT_COVERED ? masq_egress(skb, &p, &m, spd_ver) : r;
}

/* TC egress of lo: the host's packets to itself. Only an ICMP error the kernel raised about a
 * translated packet and addressed to the NAT address, which is a local address (strongSwan's
 * virtual IP), is taken: it goes back to the inside host as on the tunnel device. Everything
 * else on lo passes untouched after a one-byte look at the protocol. */
static __always_inline enum ipsnat_reason xlate_loopback(struct __sk_buff *skb)
{
	__u8 proto;
	struct pkt4 p;

	if (skb->protocol != bpf_htons(ETH_P_IP) ||
	    bpf_skb_load_bytes_relative(skb, __builtin_offsetof(struct iphdr, protocol), &proto, 1, BPF_HDR_START_NET) ||
	    proto != IPPROTO_ICMP)
		return IPSNAT_R_PASS_LOOPBACK;
	if (parse_ipv4(skb, &p, 0) != PARSE_OK || !p.icmp_error)
		return IPSNAT_R_PASS_LOOPBACK;
	return xlate_local_error(skb, &p);
}

#endif
