/* Incremental checksum updates with the kernel's helpers, correct for every ip_summed:
 * - an address is also part of the TCP/UDP pseudo-header: BPF_F_PSEUDO_HDR, so that a
 *   CHECKSUM_PARTIAL skb (GSO, TX offload) gets its pseudo-header sum adjusted and a
 *   CHECKSUM_COMPLETE skb gets skb->csum adjusted (BPF_PROG_TEST_RUN cannot show a missing
 *   flag; the netns tier with veth offload can);
 * - a port is covered by the L4 checksum only: no pseudo flag (on CHECKSUM_PARTIAL the helper
 *   rightly leaves the field alone, the device sums the payload);
 * - UDP: BPF_F_MARK_MANGLED_0, so a zero ("no checksum") stays zero and a computed zero is sent
 *   as 0xffff.
 * Bytes inside an ICMP error's quote are data of the ICMP message: their checksums are plain
 * fields, updated without the pseudo flag (which would wrongly touch skb->csum). */
#ifndef IPSNAT_BPF_LIB_CSUM_H
#define IPSNAT_BPF_LIB_CSUM_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define IPV4_CSUM_OFF 10
#define IPV4_SADDR_OFF 12
#define IPV4_DADDR_OFF 16

static __always_inline __u64 l4_csum_flags(__u8 proto, __u64 size)
{
	return size | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
}

/* The IPv4 header checksum after a 32-bit field changed from `from` to `to` (RFC 1624 eqn. 3,
 * as the kernel's csum_replace4). Byte order does not matter to a one's complement sum as long
 * as the checksum and the values are taken from memory alike. */
static __always_inline __u16 csum16_replace4(__u16 check, __be32 from, __be32 to)
{
	__u32 nfrom = ~from;
	__u32 sum = (__u16)~check;

	sum += (nfrom & 0xffff) + (nfrom >> 16) + (to & 0xffff) + (to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Rewrites the IPv4 address at l3 + field (IPV4_SADDR_OFF/IPV4_DADDR_OFF), the header checksum,
 * and, when l4_csum >= 0, the TCP/UDP checksum at that absolute offset (pseudo-header).
 * The IP header is written directly when it is in the linear data (always, in practice: the
 * parser read it there): the header checksum never involves skb->csum or offloads, so no
 * helper is needed, and bpf_skb_store_bytes without flags did nothing more. The L4 checksum
 * stays with the helper, which alone knows the skb's ip_summed. */
static __always_inline int csum_rewrite_addr(struct __sk_buff *skb, __u32 l3, __u32 field,
					     __be32 from, __be32 to, int l4_csum, __u8 proto)
{
	if (from == to)
		return 0;
	if (l4_csum >= 0 &&
	    bpf_l4_csum_replace(skb, l4_csum, from, to, BPF_F_PSEUDO_HDR | l4_csum_flags(proto, 4)))
		return -1;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (l3 <= 64) {
		struct iphdr *ip = data + l3;
		if ((void *)(ip + 1) <= data_end) {
			ip->check = csum16_replace4(ip->check, from, to);
			if (field == IPV4_SADDR_OFF)
				ip->saddr = to;
			else
				ip->daddr = to;
			return 0;
		}
	}
	if (bpf_l3_csum_replace(skb, l3 + IPV4_CSUM_OFF, from, to, 4))
		return -1;
	return bpf_skb_store_bytes(skb, l3 + field, &to, 4, 0);
}

/* Rewrites a 16-bit L4 field (port, echo id) covered by the checksum at l4_csum (< 0: none);
 * the field itself directly when it is in the linear data. */
static __always_inline int csum_rewrite_port(struct __sk_buff *skb, __u32 off, __be16 from, __be16 to,
					     int l4_csum, __u8 proto)
{
	if (from == to)
		return 0;
	if (l4_csum >= 0) {
		long err = proto == IPPROTO_ICMP ? bpf_l3_csum_replace(skb, l4_csum, from, to, 2)
						 : bpf_l4_csum_replace(skb, l4_csum, from, to,
								       l4_csum_flags(proto, 2));
		if (err)
			return -1;
	}
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (off <= 128) {
		__be16 *at = data + off;
		if ((void *)(at + 1) <= data_end) {
			*at = to;
			return 0;
		}
	}
	return bpf_skb_store_bytes(skb, off, &to, 2, 0);
}

static __always_inline int csum_load16(struct __sk_buff *skb, __u32 off, __be16 *v)
{
	return bpf_skb_load_bytes(skb, off, v, 2);
}

/* Inside an ICMP error: applies the change of a value (2 or 4 bytes) to the quoted checksum at
 * field_csum (quoted IP header, or quoted L4 for a pseudo-header or port change) and folds
 * that checksum's own change into the ICMP checksum at icmp_csum. A quoted UDP checksum of
 * zero means "none" and stays zero. */
static __always_inline int icmp_quote_csum(struct __sk_buff *skb, __u32 icmp_csum, __u32 field_csum,
					   __be32 from, __be32 to, __u32 size, __u8 field_proto)
{
	__be16 before, after;

	if (from == to)
		return 0;
	if (csum_load16(skb, field_csum, &before))
		return -1;
	if (field_proto == IPPROTO_UDP && before == 0)
		return 0;
	if (bpf_l3_csum_replace(skb, field_csum, from, to, size))
		return -1;
	if (csum_load16(skb, field_csum, &after))
		return -1;
	if (field_proto == IPPROTO_UDP && after == 0) {
		after = 0xffff;
		if (bpf_skb_store_bytes(skb, field_csum, &after, 2, 0))
			return -1;
	}
	return bpf_l3_csum_replace(skb, icmp_csum, before, after, 2);
}

/* Inside an ICMP error: stores the value and folds its change into the ICMP checksum. */
static __always_inline int icmp_quote_store(struct __sk_buff *skb, __u32 icmp_csum, __u32 off,
					    __be32 from, __be32 to, __u32 size)
{
	if (from == to)
		return 0;
	if (bpf_l3_csum_replace(skb, icmp_csum, from, to, size))
		return -1;
	if (size == 4)
		return bpf_skb_store_bytes(skb, off, &to, 4, 0);
	__be16 to16 = (__be16)to;
	return bpf_skb_store_bytes(skb, off, &to16, 2, 0);
}

#endif
