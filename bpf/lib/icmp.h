/* ICMP errors (destination unreachable incl. fragmentation needed, time exceeded, parameter
 * problem) that belong to a translated flow. The quote is a packet of the flow going the other
 * way, so the entry is found with the quote's tuple swapped (ct_key_of_quote). Translated: the
 * outer address (the NAT side always sees the NAT address, whoever sent the error, as
 * netfilter does), the quoted address and port/echo id, the quoted IP header checksum, the
 * quoted L4 checksum when it is within the quote (pseudo-header and port), and the ICMP
 * checksum for every byte changed in the quote.
 *   SNAT side:    quote remote -> inside;      outer src, quote dst and dport become the NAT's.
 *   reverse side: quote NAT -> remote;         outer dst, quote src and sport become inside's. */
#ifndef IPSNAT_BPF_LIB_ICMP_H
#define IPSNAT_BPF_LIB_ICMP_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps/ct.h"
#include "lib/csum.h"
#include "lib/parse.h"

/* Rewrites the quoted packet's source (src = 1) or destination address and port. */
static __always_inline int icmp_rewrite_quote(struct __sk_buff *skb, const struct pkt4 *p, int src,
					      __be32 addr, __be16 port)
{
	const struct pkt4_inner *q = &p->inner;
	__u32 icmp_csum = p->l4 + 2;
	__be32 old_addr = src ? q->saddr : q->daddr;
	__be16 old_port = src ? q->sport : q->dport;
	int has_l4_csum = q->l4_csum_off != 0;
	__u32 l4_csum = q->l4 + q->l4_csum_off;

	/* The quoted TCP/UDP checksum covers the address through its pseudo-header. */
	if (has_l4_csum && q->proto != IPPROTO_ICMP &&
	    icmp_quote_csum(skb, icmp_csum, l4_csum, old_addr, addr, 4, q->proto))
		return -1;
	if (icmp_quote_csum(skb, icmp_csum, q->l3 + IPV4_CSUM_OFF, old_addr, addr, 4, 0))
		return -1;
	if (icmp_quote_store(skb, icmp_csum, q->l3 + (src ? IPV4_SADDR_OFF : IPV4_DADDR_OFF), old_addr,
			     addr, 4))
		return -1;
	if (q->proto != IPPROTO_TCP && q->proto != IPPROTO_UDP && q->proto != IPPROTO_ICMP)
		return 0;
	__u32 port_off = q->proto == IPPROTO_ICMP ? q->l4 + 4 : q->l4 + (src ? 0 : 2);
	if (has_l4_csum && icmp_quote_csum(skb, icmp_csum, l4_csum, old_port, port, 2, q->proto))
		return -1;
	return icmp_quote_store(skb, icmp_csum, port_off, old_port, port, 2);
}

/* SNAT side: the inside host (or a router inside) reports an error about a reply. */
static __always_inline int icmp_error_snat(struct __sk_buff *skb, const struct pkt4 *p,
					   const struct ipsnat_ct_entry *e)
{
	if (icmp_rewrite_quote(skb, p, 0, e->xlat_addr, e->xlat_port))
		return -1;
	return csum_rewrite_addr(skb, p->l3, IPV4_SADDR_OFF, p->saddr, e->xlat_addr, -1, IPPROTO_ICMP);
}

/* Reverse side: a router or the remote host reports an error about a translated packet. */
static __always_inline int icmp_error_rev(struct __sk_buff *skb, const struct pkt4 *p,
					  const struct ipsnat_ct_entry *e)
{
	if (icmp_rewrite_quote(skb, p, 1, e->xlat_addr, e->xlat_port))
		return -1;
	return csum_rewrite_addr(skb, p->l3, IPV4_DADDR_OFF, p->daddr, e->xlat_addr, -1, IPPROTO_ICMP);
}

#endif
