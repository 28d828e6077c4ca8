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

/* The device's masquerade and, for a packet with ports (no ICMP error, no later fragment), its
 * flow's ORIG entry (or NULL): looked up once, before the guard's SPD decision, whose lookup an
 * established flow may skip (masq_cleared). */
struct masq_flow {
	struct ipsnat_dev_cfg d;
	struct ipsnat_ct_key k;
	struct ipsnat_ct_entry *e;
};

static __always_inline void masq_flow_of(struct __sk_buff *skb, const struct pkt4 *p, struct masq_flow *m)
{
	m->d = dev_cfg(skb->ifindex);
	m->e = 0;
	if (!m->d.masq_addr || p->icmp_error || p->frag == PKT_FRAG_LATER)
		return;
	m->k = ct_key_of(p, IPSNAT_CT_ORIG);
	m->e = ct_lookup(&m->k);
}

/* The stamp of a masqueraded flow that the guard found not covered under SPD version spd_ver
 * with the packet's mark: IPSNAT_CT_SPD_CLEAR only for packets without a mark (the entry keeps
 * no mark, and a policy may cover one mark and not another). */
static __always_inline __u64 masq_stamp(struct __sk_buff *skb, __u64 spd_ver)
{
	return skb->mark ? spd_ver : spd_ver | IPSNAT_CT_SPD_CLEAR;
}

/* Whether the guard may let the packet of m go without its SPD lookup: its flow is masqueraded
 * to the device's address and was found covered by no out-policy under the current SPD version
 * spd_ver (read before any decision of this packet) for packets without a mark, this packet has
 * none, and the maps are healthy (fail-closed changes no version). What the lookup would
 * answer depends on nothing else: the destination, protocol and ports are the entry's key. */
static __always_inline int masq_cleared(struct __sk_buff *skb, const struct masq_flow *m, __u64 spd_ver)
{
	return m->e && !skb->mark && m->e->spd_version == (spd_ver | IPSNAT_CT_SPD_CLEAR) &&
	       masq_entry_current(m->e, m->d.masq_addr) && !spd_fail_closed();
}

/* A flow conntrack does not know as masqueraded to the device's address: new, or bound
 * elsewhere (another address, a translation before IPsec). 0 with the translation in *x (the
 * packet accounted), or the reason. The entries take the guard's stamp (masq_stamp); the LWT
 * hook checks the flow again when a policy comes to cover it (lib/xlate.h, xlate_snat). */
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
		/* Checked now: the next packets of the flow skip the lookup (masq_cleared). */
		__u64 stamp = masq_stamp(skb, spd_ver);
		if (!skb->mark && e->spd_version != stamp)
			e->spd_version = stamp;
		return masq_translate(skb, p, &m->k, e);
	}
	struct ct_xlat x;
	enum ipsnat_reason why = masq_bind(skb, p, m, spd_ver, &x);
	return why ? why : masq_write(skb, p, x);
}

#endif
