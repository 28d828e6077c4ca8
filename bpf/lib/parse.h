/* Packet parsing. The IP header's offset is found per packet: at TC ingress of xfrm interfaces
 * and VTIs the packet starts with a stale 14-byte Ethernet header although the device is L3
 * (DESIGN-NOTES §1), so the device type cannot tell. */
#ifndef IPSNAT_BPF_LIB_PARSE_H
#define IPSNAT_BPF_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Returns the offset of the IPv4 header from skb->data, or -1 when the packet is not IPv4. */
static __always_inline int parse_l3_offset(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	/* network_header is not exposed to TC programs; the distance from data is what we need,
	 * found by where an IPv4 header with a plausible length starts. */
	struct iphdr *ip0 = data;
	if ((void *)(ip0 + 1) <= data_end && ip0->version == 4 && ip0->ihl >= 5 &&
	    bpf_ntohs(ip0->tot_len) == skb->len)
		return 0;
	struct iphdr *ip14 = data + ETH_HLEN;
	if ((void *)(ip14 + 1) <= data_end && ip14->version == 4 && ip14->ihl >= 5)
		return ETH_HLEN;
	return -1;
}

#endif
