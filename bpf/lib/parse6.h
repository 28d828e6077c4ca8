/* IPv6 headers as far as the leak guard and NAT66 need them: the addresses, and the upper-layer
 * protocol, its offset and ports after walking the extension headers. Read relative to the
 * kernel's network header at TC (bpf_skb_load_bytes_relative), so the link-header length does not
 * matter; from skb->data in LWT xmit (ipv6_load). */
#ifndef IPSNAT_BPF_LIB_PARSE6_H
#define IPSNAT_BPF_LIB_PARSE6_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Extension headers walked before the walk gives up (RFC 8200 recommends at most one of each,
 * destination options twice). A chain longer than this is "unparsed": the guard fails closed. */
#define IPV6_MAX_EXT_HDRS 8
#define IPV6_FRAG_OFFSET_MASK 0xfff8
#define IPV6_FRAG_MORE 0x0001

/* pkt6.fragment: where the packet lies in its datagram. An atomic fragment (offset 0, M clear)
 * holds the whole datagram: PKT6_FRAG_NONE. */
enum pkt6_frag {
	PKT6_FRAG_NONE = 0,
	PKT6_FRAG_FIRST = 1, /* offset 0, M set: carries the upper-layer header */
	PKT6_FRAG_LATER = 2, /* offset > 0: no upper-layer header */
};

struct pkt6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport; /* TCP/UDP only, when `ports` */
	__be16 dport;
	__u8 proto;    /* upper-layer protocol (AH and ESP end the walk) */
	__u8 ports;    /* 1: sport/dport (TCP, UDP) or icmp6_type (ICMPv6) were read */
	__u8 unparsed; /* the walk did not reach the upper layer (too long, truncated) */
	__u8 hop_limit;
	__u8 icmp6_type; /* ICMPv6 only, when `ports` */
	__u8 fragment;   /* enum pkt6_frag */
	__u16 l4;        /* offset of the upper layer from the network header, when `ports` */
	__u16 payload_len;
	__u8 frag_next;  /* the fragment header's next header, when `fragment`: the same in every
			  * fragment of a datagram (RFC 8200 4.5), unlike `proto` */
	__u8 pad;
	__be32 frag_id;  /* the fragment header's identification, when `fragment` */
};

/* The extension headers the walk steps over. */
static __always_inline int ipv6_ext_hdr(__u8 next)
{
	return next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS || next == IPPROTO_FRAGMENT;
}

/* Reads len bytes at offset off of the IPv6 header: relative to the kernel's network header at TC;
 * from skb->data where the hook guarantees the header there (l3_at_data: LWT xmit, which cannot
 * use bpf_skb_load_bytes_relative). */
static __always_inline long ipv6_load(struct __sk_buff *skb, __u32 off, void *to, __u32 len, int l3_at_data)
{
	if (l3_at_data)
		return bpf_skb_load_bytes(skb, off, to, len);
	return bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_NET);
}

/* The IPv6 packet that starts `base` bytes after the network header (0: the packet itself; an
 * ICMPv6 error's quote further on): 0 when the fixed header was read (daddr valid, the rest as far
 * as it could be read; l4 counts from base); -1: not even the fixed header is there. l3_at_data
 * as ipv6_load. The walk ends at the fragment header of a later fragment: what follows it is the
 * datagram's data, not headers, and `proto` is then the header the fragment header names (an
 * extension header when the fragmentable part starts with one). */
static __always_inline int parse_ipv6_at(struct __sk_buff *skb, __u32 base, struct pkt6 *p, int l3_at_data)
{
	struct ipv6hdr ip6;

	__builtin_memset(p, 0, sizeof(*p));
	if (ipv6_load(skb, base, &ip6, sizeof(ip6), l3_at_data) < 0)
		return -1;
	__builtin_memcpy(p->saddr, &ip6.saddr, 16);
	__builtin_memcpy(p->daddr, &ip6.daddr, 16);
	p->payload_len = bpf_ntohs(ip6.payload_len);
	p->hop_limit = ip6.hop_limit;
	__u8 next = ip6.nexthdr;
	__u32 off = sizeof(ip6);
	int later_fragment = 0;
	for (int i = 0; i < IPV6_MAX_EXT_HDRS && !later_fragment; i++) {
		__u8 h[8];

		if (!ipv6_ext_hdr(next))
			break;
		if (ipv6_load(skb, base + off, h, sizeof(h), l3_at_data) < 0) {
			p->unparsed = 1;
			return 0;
		}
		if (next == IPPROTO_FRAGMENT) {
			__u16 frag = bpf_ntohs(*(__be16 *)&h[2]);

			if (frag & IPV6_FRAG_OFFSET_MASK)
				later_fragment = 1;
			p->fragment = later_fragment ? PKT6_FRAG_LATER : frag & IPV6_FRAG_MORE ? PKT6_FRAG_FIRST : PKT6_FRAG_NONE;
			p->frag_next = h[0];
			__builtin_memcpy(&p->frag_id, &h[4], 4);
			off += 8;
		} else {
			off += (h[1] + 1) * 8;
		}
		next = h[0];
	}
	p->proto = next;
	/* Still an extension header after the bound, or headers beyond the payload the fixed header
	 * announces (0: a BIG TCP packet, whose length only the skb knows). */
	__u16 payload = bpf_ntohs(ip6.payload_len);
	if ((ipv6_ext_hdr(next) && !later_fragment) || (payload && off > sizeof(ip6) + payload)) {
		p->unparsed = 1;
		return 0;
	}
	if (later_fragment)
		return 0;
	p->l4 = off;
	if (next == IPPROTO_ICMPV6) {
		if (ipv6_load(skb, base + off, &p->icmp6_type, 1, l3_at_data) < 0)
			p->unparsed = 1;
		else
			p->ports = 1;
		return 0;
	}
	if (next != IPPROTO_TCP && next != IPPROTO_UDP)
		return 0;
	__be16 ports[2];
	if (ipv6_load(skb, base + off, ports, sizeof(ports), l3_at_data) < 0) {
		p->unparsed = 1;
		return 0;
	}
	p->sport = ports[0];
	p->dport = ports[1];
	p->ports = 1;
	return 0;
}

/* 0: the fixed header was read (daddr valid, the rest as far as it could be read); -1: not even
 * the fixed header is there. l3_at_data as ipv6_load. */
static __always_inline int parse_ipv6(struct __sk_buff *skb, struct pkt6 *p, int l3_at_data)
{
	return parse_ipv6_at(skb, 0, p, l3_at_data);
}

/* Neighbour discovery (RFC 4861: router/neighbour solicitation and advertisement, redirect) the
 * host itself sends: hop limit 255, which receivers insist on and no forwarded packet keeps. */
static __always_inline int ipv6_own_nd(struct __sk_buff *skb, const struct pkt6 *p)
{
	return skb->ingress_ifindex == 0 && p->proto == IPPROTO_ICMPV6 && p->ports && p->hop_limit == 255 &&
	       p->icmp6_type >= 133 && p->icmp6_type <= 137;
}

/* Link-local unicast (fe80::/10) and link-local multicast (ff02::/16): never routed off the link,
 * so never a cleartext copy of traffic for a remote prefix (neighbour discovery, router
 * solicitations, DHCPv6 to the link). */
static __always_inline int ipv6_link_scope(const __u8 *daddr)
{
	return (daddr[0] == 0xfe && (daddr[1] & 0xc0) == 0x80) || (daddr[0] == 0xff && daddr[1] == 0x02);
}

#endif
