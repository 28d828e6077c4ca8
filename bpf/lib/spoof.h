/* The XDP pre-filter on the uplink: drops IPv4 cleartext that the kernel's inbound policy check
 * would drop later anyway (a source in a remote prefix the SPD protects, arriving neither as
 * IPsec nor as IKE), before an skb exists. It only ever drops what the kernel drops; when unsure
 * it passes and the kernel decides (docs/datapath.md, "XDP pre-filter").
 *
 * The kernel checks a cleartext packet (no sec path) against the `in` policies when it delivers it
 * locally and against the `fwd` policies when it forwards it, and refuses it when the first policy
 * that matches requires a template (XfrmInTmplMismatch). The drop set (maps/spoof.h) holds only
 * boxes where both checks refuse every packet whatever its protocol, ports or mark, so the
 * program needs no routing decision, except for UDP: a local UDP tunnel socket (VXLAN, WireGuard,
 * L2TP, ...) takes its packets before the kernel's `in` check, so UDP is dropped only when the
 * routing table forwards it. */
#ifndef IPSNAT_BPF_LIB_SPOOF_H
#define IPSNAT_BPF_LIB_SPOOF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/spoof.h"
#include "lib/parse.h"
#include "maps/stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xdp_spoof_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_spoof4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_spoof_act SEC(".maps");

static __always_inline int spoof_in_set(__be32 saddr, __be32 daddr)
{
	__u32 zero = 0;
	__u32 *act = bpf_map_lookup_elem(&xdp_spoof_act, &zero);
	if (!act)
		return 0;
	__u32 slot = *act & 1;
	const struct xdp_spoof_set *set = bpf_map_lookup_elem(&xdp_spoof4, &slot);
	if (!set)
		return 0;
	__u32 n = set->n;
	for (__u32 i = 0; i < XDP_SPOOF_MAX; i++) {
		if (i >= n)
			break;
		const struct xdp_spoof_box *b = &set->box[i];
		if ((saddr & b->src_mask) == b->src && (daddr & b->dst_mask) == b->dst)
			return 1;
	}
	return 0;
}

/* IKE and NAT-T (UDP 500/4500, ESP in UDP 4500, IKE over TCP 4500 per RFC 8229) from or to the IKE
 * ports: the IKE daemon's sockets carry their own bypass policy, and an IKE peer's outer address may
 * lie in a protected prefix. */
static __always_inline int spoof_ike_port(__be16 port)
{
	return port == bpf_htons(500) || port == bpf_htons(4500);
}

/* Whether the routing table forwards the packet (a local, broadcast or unroutable destination is
 * not forwarded). */
static __always_inline int spoof_forwarded(struct xdp_md *ctx, const struct iphdr *ip)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.l4_protocol = ip->protocol,
		.tot_len = bpf_ntohs(ip->tot_len),
		.ifindex = ctx->ingress_ifindex,
		.ipv4_src = ip->saddr,
		.ipv4_dst = ip->daddr,
	};
	int rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);

	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH;
}

static __always_inline enum ipsnat_reason spoof_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	/* Not IPv4 behind a plain Ethernet header (VLAN tags, IPv6, ARP), IPv4 options (router alert
	 * goes to its sockets before the `fwd` check) and fragments (checked by the kernel after
	 * reassembly, or without ports): the kernel decides. */
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl != 5)
		return IPSNAT_R_PASS_XDP_KERNEL;
	if (ip->frag_off & bpf_htons(IP_MF_BIT | IP_OFFSET_MASK))
		return IPSNAT_R_PASS_XDP_KERNEL;
	__u8 proto = ip->protocol;
	if (proto == IPPROTO_ESP || proto == IPPROTO_AH)
		return IPSNAT_R_PASS_XDP_IPSEC;
	if (proto == IPPROTO_UDP || proto == IPPROTO_TCP) {
		__be16 *ports = (void *)(ip + 1);
		if ((void *)(ports + 2) > data_end)
			return IPSNAT_R_PASS_XDP_KERNEL;
		if (spoof_ike_port(ports[0]) || spoof_ike_port(ports[1]))
			return IPSNAT_R_PASS_XDP_IPSEC;
	}
	/* Multicast: the multicast router forwards without the `fwd` check. */
	if ((ip->daddr & bpf_htonl(0xf0000000)) == bpf_htonl(0xe0000000))
		return IPSNAT_R_PASS_XDP_KERNEL;
	if (!spoof_in_set(ip->saddr, ip->daddr))
		return IPSNAT_R_PASS_XDP_KERNEL;
	if (proto == IPPROTO_UDP && !spoof_forwarded(ctx, ip))
		return IPSNAT_R_PASS_XDP_KERNEL;
	return IPSNAT_R_DROP_XDP_SPOOF;
}

#endif
