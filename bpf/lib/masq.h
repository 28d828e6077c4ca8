/* Masquerade on the uplink (`ipsnat attach DEV --masquerade`, policy mode; masq_addr in
 * maps/config.h ipsnat_dev_cfg): a packet that leaves DEV in cleartext because no IPsec
 * out-policy covers it, from an inside prefix, is translated to the masquerade address by NAPT,
 * in the same conntrack as the translation before IPsec (kind IPSNAT_CT_KIND_MASQ). Its replies
 * arrive in cleartext on DEV's ingress (lib/xlate.h, xlate_reverse). What keeps it exact:
 *  - the leak guard decides first, on every packet (xlate_guard): ESP/AH, the gateway's own IKE
 *    and every packet whose destination an out-policy covers for some source (so also for the
 *    masquerade address: the kernel would encrypt that packet) never get here;
 *  - only sources in an inside prefix (ipsnat_inside): the gateway's own traffic from the uplink's
 *    address, and transit traffic, pass untouched;
 *  - ports come from masq_port_min..masq_port_max, which the loader places outside the host's
 *    ip_local_port_range (never a port of the gateway's own connections), never 500/4500. */
#ifndef IPSNAT_BPF_LIB_MASQ_H
#define IPSNAT_BPF_LIB_MASQ_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/inside.h"
#include "maps/stats.h"
#include "lib/config.h"
#include "lib/ct.h"
#include "lib/frag.h"
#include "lib/icmp.h"
#include "lib/inside.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/spd.h"

/* An entry masqueraded to addr. Another address (the uplink's changed) or another kind (a
 * translation before IPsec whose policy went away) makes the flow bound anew. */
static __always_inline int masq_entry_current(const struct ipsnat_ct_entry *e, __be32 addr)
{
	return e->kind == IPSNAT_CT_KIND_MASQ && e->xlat_addr == addr;
}

/* An ICMP error an inside host (or the gateway, about a reply it forwarded) sends about a reply
 * of a masqueraded flow: the quote and the outer source become the masquerade address's. */
static __always_inline enum ipsnat_reason masq_icmp_error(struct __sk_buff *skb, const struct pkt4 *p, __be32 addr)
{
	struct ipsnat_ct_key k = ct_key_of_quote(&p->inner, IPSNAT_CT_ORIG);
	struct ipsnat_ct_entry *e = ct_lookup(&k);

	if (!e || !masq_entry_current(e, addr) || p->daddr != p->inner.saddr)
		return IPSNAT_R_PASS_ICMP_NO_CT;
	if (icmp_error_snat(skb, p, e))
		return IPSNAT_R_DROP_REWRITE;
	return IPSNAT_R_XLATE_ICMP_ERROR;
}

/* What the guard knows of a packet before its SPD decision: the ipsnat_dev generation (read
 * first), the device's masquerade unless the flow was cleared without it, and, for a packet with
 * ports (no ICMP error, no later fragment) on a masquerading device, its flow's ORIG entry (or
 * NULL), each looked up once. */
struct masq_flow {
	struct ipsnat_dev_cfg d;
	struct ipsnat_ct_key k;
	struct ipsnat_ct_entry *e;
	__u32 gen;
	__u32 pad;
};

/* The stamp of a masqueraded flow that the guard found not covered under SPD version spd_ver
 * with the packet's mark: IPSNAT_CT_SPD_CLEAR only for packets without a mark (the entry keeps
 * no mark, and a policy may cover one mark and not another). */
static __always_inline __u64 masq_stamp(struct __sk_buff *skb, __u64 spd_ver)
{
	return skb->mark ? spd_ver : spd_ver | IPSNAT_CT_SPD_CLEAR;
}

/* Whether the guard may let the packet of entry e go without its SPD lookup and without reading
 * ipsnat_dev: the guard found the flow covered by no out-policy under the current SPD version
 * spd_ver (read before any decision of this packet) for packets without a mark, this packet has
 * none, and the maps are healthy (fail-closed changes no version); and it found the entry's
 * address to be the masquerade address of its device under ipsnat_dev generation g.gen, which is
 * still current, with this device the only masquerading one (maps/config.h ipsnat_dev_gen): so
 * the device is the one the stamp was made on and its masquerade has not changed since. What the
 * SPD lookup would answer depends on nothing else: the destination, protocol and ports are the
 * entry's key. */
static __always_inline int masq_cleared(struct __sk_buff *skb, const struct ipsnat_ct_entry *e,
					struct ipsnat_dev_gen g, __u64 spd_ver)
{
	return e && !skb->mark && g.gen && g.masq_ifindex == skb->ifindex && e->kind == IPSNAT_CT_KIND_MASQ &&
	       e->reqid == g.gen && e->spd_version == (spd_ver | IPSNAT_CT_SPD_CLEAR) && !spd_fail_closed();
}

/* Fills m for packet p; returns whether its flow is cleared (masq_cleared: m->e is its entry,
 * m->d unread). */
static __always_inline int masq_flow_of(struct __sk_buff *skb, const struct pkt4 *p, struct masq_flow *m,
					__u64 spd_ver)
{
	struct ipsnat_dev_gen g = dev_gen_now();
	int ports = !p->icmp_error && p->frag != PKT_FRAG_LATER;
	int looked = ports && g.masq_ifindex == skb->ifindex;

	m->gen = g.gen;
	m->e = 0;
	if (ports)
		m->k = ct_key_of(p, IPSNAT_CT_ORIG);
	if (looked) {
		m->e = ct_lookup(&m->k);
		if (masq_cleared(skb, m->e, g, spd_ver))
			return 1;
	}
	m->d = dev_cfg(skb->ifindex);
	if (!m->d.masq_addr || !ports)
		m->e = 0;
	else if (!looked)
		m->e = ct_lookup(&m->k);
	return 0;
}

/* A flow conntrack does not know as masqueraded to the device's address: new, or bound
 * elsewhere (another address, a translation before IPsec). 0 with the translation in *x (the
 * packet accounted), or the reason. The entries take the guard's stamp (masq_stamp, and the
 * ipsnat_dev generation m->gen as reqid); the LWT hook checks the flow again when a policy comes
 * to cover it (lib/xlate.h, xlate_snat). */
static __always_inline enum ipsnat_reason masq_bind(struct __sk_buff *skb, const struct pkt4 *p,
						    const struct masq_flow *m, __u64 spd_ver, struct ct_xlat *x)
{
	const struct ipsnat_dev_cfg *d = &m->d;

	if (!(inside_flags(p->saddr) & INSIDE_PREFIX))
		return IPSNAT_R_PASS_NOT_INSIDE;
	if (!nat_tuple_supported(p))
		return IPSNAT_R_PASS_PROTO;
	if (m->e)
		ct_forget(&m->k, m->e);
	struct nat_request req = {
		.nat_addr = d->masq_addr,
		.reqid = m->gen,
		.kind = IPSNAT_CT_KIND_MASQ,
		.port_min = d->masq_port_min,
		.port_max = d->masq_port_max < d->masq_port_min ? d->masq_port_min : d->masq_port_max,
	};
	if (!req.port_min)
		cfg_port_range(&req.port_min, &req.port_max);
	int r = nat_bind_req(p, &req, masq_stamp(skb, spd_ver), x);
	if (r != NAT_BOUND_RACED)
		return r;
	struct ipsnat_ct_entry *e = ct_lookup(&m->k);
	if (!e)
		return IPSNAT_R_DROP_CT_FULL;
	*x = ct_xlat_of(e);
	ct_account(&m->k, e, p, p->ip_len);
	return 0;
}

/* The packet rewritten to its flow's translation x, which a first fragment remembers. */
static __always_inline enum ipsnat_reason masq_write(struct __sk_buff *skb, const struct pkt4 *p, struct ct_xlat x)
{
	if (nat_rewrite(skb, p, 1, x.addr, x.port))
		return IPSNAT_R_DROP_REWRITE;
	frag_remember(p, IPSNAT_CT_ORIG, x.addr);
	return IPSNAT_R_XLATE_MASQ;
}

/* A packet of the established masqueraded flow of entry e (key k): accounted and rewritten. */
static __always_inline enum ipsnat_reason masq_translate(struct __sk_buff *skb, const struct pkt4 *p,
							 const struct ipsnat_ct_key *k, struct ipsnat_ct_entry *e)
{
	ct_account(k, e, p, p->ip_len);
	return masq_write(skb, p, ct_xlat_of(e));
}

/* TC egress of the uplink, for a packet the leak guard let pass as not covered under SPD
 * version spd_ver; m from masq_flow_of. */
static __always_inline enum ipsnat_reason masq_egress(struct __sk_buff *skb, const struct pkt4 *p,
						      const struct masq_flow *m, __u64 spd_ver)
{
	__be32 addr = m->d.masq_addr;

	if (!addr)
		return IPSNAT_R_PASS_NOT_COVERED;
	if (p->icmp_error)
		return masq_icmp_error(skb, p, addr);
	if (p->frag == PKT_FRAG_LATER) {
		struct ipsnat_frag_entry *fe = frag_lookup(p, IPSNAT_CT_ORIG);

		if (!fe || fe->xlat_addr != addr)
			return IPSNAT_R_PASS_FRAG_UNKNOWN;
		if (nat_rewrite(skb, p, 1, addr, 0))
			return IPSNAT_R_DROP_REWRITE;
		return IPSNAT_R_XLATE_FRAG;
	}
	struct ipsnat_ct_entry *e = m->e;
	if (e && masq_entry_current(e, addr)) {
		/* Checked now: the next packets of the flow skip the lookups (masq_cleared). */
		__u64 stamp = masq_stamp(skb, spd_ver);
		if (!skb->mark && (e->spd_version != stamp || e->reqid != m->gen))
			ct_stamp(e, m->gen, stamp);
		return masq_translate(skb, p, &m->k, e);
	}
	struct ct_xlat x = {}; /* initialized: nat_bind_req's argument */
	enum ipsnat_reason why = masq_bind(skb, p, m, spd_ver, &x);
	return why ? why : masq_write(skb, p, x);
}

#endif
