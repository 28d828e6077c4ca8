/* BINAT (`ipsnat attach DEV --binat`: IPSNAT_DEV_BINAT in the device's ipsnat_dev_cfg.flags,
 * maps/config.h): a connection the far side opens to an address of a 1:1 map's NAT block (an
 * SPD_NAT_PREFIX target, maps/spd.h) reaches the LAN host the map translates to that address.
 * The reverse pipeline (lib/xlate.h, reverse_binat) asks only about a packet that no conntrack
 * entry, fragment memory or port-forward explains, and only after the SA check of the reverse
 * path: decrypted (policy mode: with an SA of the map's policy; route mode: the tunnel device's
 * own). Here: which LAN host, if any, and the flow's two conntrack entries (kind binat). What
 * keeps it exact:
 *  - the kernel's out-policy for the reply direction (mapped address -> sender, the packet's
 *    protocol, ports, mark and if_id) must be the IPsec policy whose 1:1 map holds the mapped
 *    address: the sender lies in that policy's destination selector, and the answers leave
 *    through its SA;
 *  - the host is the one the map translates to the mapped address: an address of the block
 *    beyond the LAN (a LAN smaller than the block) reaches nobody;
 *  - a TCP SYN or a UDP datagram opens a flow, as for a port-forward: a stray segment never does. */
#ifndef IPSNAT_BPF_LIB_BINAT_H
#define IPSNAT_BPF_LIB_BINAT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps/ct.h"
#include "maps/flow.h"
#include "maps/spd.h"
#include "lib/ct.h"
#include "lib/nat.h"
#include "lib/parse.h"
#include "lib/spd.h"

/* Whether packet p may open a flow from the far side (a port-forward's, BINAT's). */
static __always_inline int inbound_opens(const struct pkt4 *p)
{
	return p->proto == IPPROTO_UDP ||
	       (p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN);
}

/* The LAN host a BINAT flow reaches, and the reqid of the policy it goes through. */
struct binat_target {
	__be32 host;
	__u32 reqid;
};

/* For flow f, the reply direction of an arriving packet (source: the address it was sent to;
 * destination: its sender): 0 and *b when the kernel's out-policy for f is an IPsec policy whose
 * 1:1 map translates a LAN host to f's source; -1 otherwise. */
static __always_inline int binat_host(const struct ipsnat_flow4 *f, struct binat_target *b)
{
	struct spd_q q;
	__u32 index, verdict, reqid;

	spd_q_init(&q, f);
	struct spd_cell *cell = spd_dst_cell(&q, f);
	if (!cell)
		return -1;
	if (spd_lookup_in(&q, cell->cell, f->saddr, &index, &verdict, &reqid) || verdict != SPD_V_IPSEC)
		return -1;
	for (int i = 0; i < SPD_MAX_NAT; i++) {
		if (i >= cell->n_nat)
			break;
		struct spd_nat_target *t = &cell->nat[i];
		if (t->kind != SPD_NAT_PREFIX || t->policy_index != index ||
		    (f->saddr & t->nat_mask) != (t->nat_addr & t->nat_mask))
			continue;
		__be32 host = (t->inside_net & t->inside_mask) | (f->saddr & ~t->nat_mask);
		if (nat_prefix_map(t, host) != f->saddr)
			continue;
		b->host = host;
		b->reqid = reqid;
		return 0;
	}
	return -1;
}

/* Opens the BINAT flow of packet p to b's host (its port kept), checked against the SPD of
 * version spd_version. Returns the REPLY entry, or NULL when the table is full. */
static __always_inline struct ipsnat_ct_entry *binat_open(const struct pkt4 *p, const struct binat_target *b,
							  __u64 spd_version)
{
	struct ct_inbound in = {
		.inside_addr = b->host,
		.inside_port = p->dport,
		.kind = IPSNAT_CT_KIND_BINAT,
		.reqid = b->reqid,
		.spd_version = spd_version,
	};

	return ct_open_inbound(p, &in);
}

#endif
