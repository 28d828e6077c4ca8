/* Packet parsing into struct pkt4. Headers are read with bpf_skb_load_bytes (works for
 * non-linear and GSO skbs; no direct-access bounds to re-prove after every helper call).
 *
 * Where the IPv4 header starts is found per packet: the kernel's network header is the truth
 * (read with bpf_skb_load_bytes_relative(BPF_HDR_START_NET)); its distance from skb->data is
 * 0 on L3 devices at egress and in LWT xmit, 14 on Ethernet devices, and 14 again at TC
 * ingress of xfrm interfaces/VTIs, whose decrypted packets start with a stale outer Ethernet
 * header (docs/datapath.md, "Kernel path"). The device type cannot tell, so we compare bytes. */
#ifndef IPSNAT_BPF_LIB_PARSE_H
#define IPSNAT_BPF_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* linux/icmp.h drags in libc's socket headers; the few ICMP types needed are here. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define IP_MF_BIT 0x2000
#define IP_OFFSET_MASK 0x1fff

enum pkt_frag {
	PKT_FRAG_NONE = 0,
	PKT_FRAG_FIRST = 1, /* offset 0, MF: carries the L4 header */
	PKT_FRAG_LATER = 2, /* offset > 0: no L4 header */
};

enum parse_result {
	PARSE_OK = 0,
	PARSE_NOT_IPV4,
	PARSE_MALFORMED, /* claims IPv4 but the header makes no sense */
	PARSE_TRUNCATED, /* shorter than its headers say */
};

/* A quoted ("inner") packet inside an ICMP error. */
struct pkt4_inner {
	__u32 l3;     /* absolute offset of the quoted IP header */
	__u32 l4;     /* absolute offset of the quoted L4 header */
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* normalised like the outer tuple (echo id: request sport, reply dport) */
	__be16 dport;
	__u8 proto;
	__u8 l4_csum_off; /* offset of the quoted L4 checksum inside its header; 0: absent */
	__u8 icmp_type;
	__u8 pad;
};

struct pkt4 {
	__u32 l3;     /* offset of the IPv4 header from skb->data */
	__u32 l4;     /* offset of the L4 header (l3 + ihl * 4) */
	__u32 ip_len; /* IPv4 total length (GSO packets beyond 64 KiB: from skb->len) */
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* TCP/UDP ports; ICMP echo: request (id, 0), reply (0, id); else 0 */
	__be16 dport;
	__be16 ipid;
	__u8 proto;
	__u8 frag;        /* enum pkt_frag */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 l4_csum_off; /* offset of the L4 checksum inside the L4 header; 0: none to update */
	__u8 icmp_error;  /* 1: ICMP error with a parsed quote in `inner` */
	struct pkt4_inner inner;
};

static __always_inline int ipv4_hdr_equal(const struct iphdr *a, const struct iphdr *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* Offset of the network header from skb->data, or -1. */
static __always_inline int parse_l3_offset(struct __sk_buff *skb, struct iphdr *iph)
{
	struct iphdr at;

	if (bpf_skb_load_bytes_relative(skb, 0, iph, sizeof(*iph), BPF_HDR_START_NET) < 0)
		return -1;
	/* Both candidates straight from the linear data when it holds them (the usual case):
	 * two helper calls less per packet. */
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	int zero, eth;
	if (data + ETH_HLEN + sizeof(at) <= data_end) {
		zero = ipv4_hdr_equal(data, iph);
		eth = ipv4_hdr_equal(data + ETH_HLEN, iph);
	} else {
		zero = bpf_skb_load_bytes(skb, 0, &at, sizeof(at)) == 0 && ipv4_hdr_equal(&at, iph);
		eth = bpf_skb_load_bytes(skb, ETH_HLEN, &at, sizeof(at)) == 0 && ipv4_hdr_equal(&at, iph);
	}

	if (zero && eth) /* identical bytes at both places: the header length decides */
		return skb->len == bpf_ntohs(iph->tot_len) ? 0 : ETH_HLEN;
	if (zero)
		return 0;
	if (eth)
		return ETH_HLEN;
	return -1;
}

static __always_inline int is_icmp_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* L4 ports (normalised) and checksum offset. `end` bounds what may be read. Returns 0, or
 * PARSE_TRUNCATED when the header is not all there. */
/* Copies len (8 or 20) bytes at off into h: from the linear data when it holds them (no helper
 * call), else with bpf_skb_load_bytes. off is at most 14 + 60 for an outer L4 header. */
static __always_inline int load_hdr(struct __sk_buff *skb, __u32 off, __u8 *h, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off <= 128) {
		__u8 *at = data + off;
		if (len == 20 && at + 20 <= (__u8 *)data_end) {
			__builtin_memcpy(h, at, 20);
			return 0;
		}
		if (len == 8 && at + 8 <= (__u8 *)data_end) {
			__builtin_memcpy(h, at, 8);
			return 0;
		}
	}
	return bpf_skb_load_bytes(skb, off, h, len);
}

static __always_inline int parse_l4(struct __sk_buff *skb, __u32 l4, __u32 end, __u8 proto,
				    __be16 *sport, __be16 *dport, __u8 *csum_off, __u8 *tcp_flags,
				    __u8 *icmp_type)
{
	__u8 h[20];

	switch (proto) {
	case IPPROTO_TCP:
		if (l4 + 20 > end || load_hdr(skb, l4, h, 20) < 0)
			return PARSE_TRUNCATED;
		*sport = *(__be16 *)&h[0];
		*dport = *(__be16 *)&h[2];
		*tcp_flags = h[13];
		*csum_off = 16;
		return 0;
	case IPPROTO_UDP:
		if (l4 + 8 > end || load_hdr(skb, l4, h, 8) < 0)
			return PARSE_TRUNCATED;
		*sport = *(__be16 *)&h[0];
		*dport = *(__be16 *)&h[2];
		*csum_off = 6;
		return 0;
	case IPPROTO_ICMP:
		if (l4 + 8 > end || load_hdr(skb, l4, h, 8) < 0)
			return PARSE_TRUNCATED;
		*icmp_type = h[0];
		*csum_off = 2;
		if (h[0] == ICMP_ECHO)
			*sport = *(__be16 *)&h[4];
		else if (h[0] == ICMP_ECHOREPLY)
			*dport = *(__be16 *)&h[4];
		return 0;
	}
	return 0;
}

/* The packet quoted by an ICMP error: IP header (options allowed) and the first 8 bytes of its
 * L4 header must be present (RFC 792). The quoted L4 checksum is updated only when quoted. */
static __always_inline int parse_icmp_inner(struct __sk_buff *skb, struct pkt4 *p, __u32 end)
{
	struct pkt4_inner *in = &p->inner;
	struct iphdr iph;
	__u8 h[8];

	in->l3 = p->l4 + 8;
	if (in->l3 + sizeof(iph) > end || bpf_skb_load_bytes(skb, in->l3, &iph, sizeof(iph)) < 0)
		return PARSE_TRUNCATED;
	if (iph.version != 4 || iph.ihl < 5)
		return PARSE_MALFORMED;
	in->l4 = in->l3 + iph.ihl * 4;
	in->saddr = iph.saddr;
	in->daddr = iph.daddr;
	in->proto = iph.protocol;
	if (bpf_ntohs(iph.frag_off) & IP_OFFSET_MASK)
		return PARSE_OK; /* quotes a later fragment: no ports, address-only translation */
	if (in->l4 + 8 > end || bpf_skb_load_bytes(skb, in->l4, h, 8) < 0)
		return PARSE_TRUNCATED;
	switch (in->proto) {
	case IPPROTO_TCP:
		in->sport = *(__be16 *)&h[0];
		in->dport = *(__be16 *)&h[2];
		in->l4_csum_off = in->l4 + 18 <= end ? 16 : 0;
		break;
	case IPPROTO_UDP:
		in->sport = *(__be16 *)&h[0];
		in->dport = *(__be16 *)&h[2];
		in->l4_csum_off = 6;
		break;
	case IPPROTO_ICMP:
		in->icmp_type = h[0];
		in->l4_csum_off = 2;
		if (h[0] == ICMP_ECHO)
			in->sport = *(__be16 *)&h[4];
		else if (h[0] == ICMP_ECHOREPLY)
			in->dport = *(__be16 *)&h[4];
		break;
	}
	return PARSE_OK;
}

/* l3_at_data: the hook guarantees the IP header at skb->data (LWT xmit, which also cannot use
 * bpf_skb_load_bytes_relative); otherwise it is located with parse_l3_offset. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt4 *p, int l3_at_data)
{
	struct iphdr iph;
	int l3;

	__builtin_memset(p, 0, sizeof(*p));
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;
	if (l3_at_data)
		l3 = bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0 ? -1 : 0;
	else
		l3 = parse_l3_offset(skb, &iph);
	if (l3 < 0)
		return PARSE_TRUNCATED;
	if (iph.version != 4 || iph.ihl < 5)
		return PARSE_MALFORMED;
	p->l3 = l3;
	p->l4 = l3 + iph.ihl * 4;
	p->ip_len = bpf_ntohs(iph.tot_len);
	if (p->ip_len == 0 && skb->gso_size) /* IPv4 BIG TCP */
		p->ip_len = skb->len - l3;
	if (p->ip_len < iph.ihl * 4)
		return PARSE_MALFORMED;
	__u32 end = p->l3 + p->ip_len;
	if (end > skb->len)
		return PARSE_TRUNCATED;
	if (p->l4 > end)
		return PARSE_MALFORMED;
	p->saddr = iph.saddr;
	p->daddr = iph.daddr;
	p->proto = iph.protocol;
	p->ipid = iph.id;
	__u16 frag = bpf_ntohs(iph.frag_off);
	if (frag & IP_OFFSET_MASK) {
		p->frag = PKT_FRAG_LATER;
		return PARSE_OK;
	}
	if (frag & IP_MF_BIT)
		p->frag = PKT_FRAG_FIRST;
	int r = parse_l4(skb, p->l4, end, p->proto, &p->sport, &p->dport, &p->l4_csum_off,
			 &p->tcp_flags, &p->icmp_type);
	if (r)
		return r;
	if (p->proto == IPPROTO_ICMP && is_icmp_error(p->icmp_type)) {
		if (p->frag != PKT_FRAG_NONE)
			return PARSE_OK; /* errors are < 576 bytes; a fragmented one is left alone */
		r = parse_icmp_inner(skb, p, end);
		if (r)
			return r;
		p->icmp_error = 1;
	}
	return PARSE_OK;
}

#endif
