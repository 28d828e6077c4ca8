// SPDX-License-Identifier: GPL-2.0
/* Entry points of the ipsnat datapath. Each one runs a pipeline from bpf/lib/xlate.h, counts
 * the reason it returned, and turns it into the hook's verdict. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/in.h>
#ifndef AF_INET
#define AF_INET 2 /* not in the uapi headers BPF programs can include */
#endif
#include <bpf/bpf_helpers.h>

#include "lib/config.h"
#include "lib/spoof.h"
#include "lib/stats.h"
#include "lib/xlate.h"

char LICENSE[] SEC("license") = "GPL";

/* A packet ipsnat lets through, translated or not, goes on to the hook's next program
 * (TC_ACT_UNSPEC is TCX_NEXT for tcx, "continue" for cls_bpf): TC_ACT_OK would end the
 * classification and silently skip every later filter (docs/datapath.md, "Verdicts"). */
static __always_inline int tc_verdict(struct __sk_buff *skb, enum ipsnat_reason r)
{
	stats_count(r, skb->len);
	return xlate_is_drop(r) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

/* Sends a packet translated back to an inside host out of the device the routing table
 * names for it (the tunnel device's egress cannot re-route). bpf_redirect_neigh expects an
 * Ethernet header in front of the IP header and drops the packet otherwise (filter.c:
 * __bpf_redirect_neigh, "mac_header >= network_header"); on an L3 device (xfrm interface,
 * VTI) the IP header is at skb->data, so a blank one is pushed first. The neighbour
 * subsystem fills in the real addresses. */
static __always_inline int tc_redirect_inside(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = { .family = AF_INET, .ifindex = skb->ifindex };
	struct iphdr ip;
	int l3 = parse_l3_offset(skb, &ip);

	if (l3 < 0)
		return TC_ACT_SHOT;
	fib.ipv4_src = ip.saddr;
	fib.ipv4_dst = ip.daddr;
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_SHOT;
	if (l3 == 0) {
		__be16 proto = bpf_htons(ETH_P_IP);

		if (bpf_skb_change_head(skb, ETH_HLEN, 0) ||
		    bpf_skb_store_bytes(skb, 2 * ETH_ALEN, &proto, sizeof(proto), 0))
			return TC_ACT_SHOT;
	}
	struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = fib.ipv4_dst };
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

/* tc_verdict, except that an error of this host's translated back (xlate-icmp-local) is sent to
 * the inside host. */
static __always_inline int tc_verdict_local(struct __sk_buff *skb, enum ipsnat_reason r)
{
	if (r != IPSNAT_R_XLATE_ICMP_LOCAL)
		return tc_verdict(skb, r);
	stats_count(r, skb->len);
	return tc_redirect_inside(skb);
}

/* TC egress of a route-based tunnel device (xfrm interface, VTI): translate before the
 * device's own xfrm lookup, with the if_id / mark that lookup will use. */
/* Its IPv4 and IPv6 paths are two BPF subprograms, each with its own stack frame: inlined into
 * one function their locals together exceed the BPF stack's 512 bytes (clang does not lay the
 * two paths' locals into the same slots), and the verdict's locals live in each so that the
 * entry's own frame stays empty (the verifier adds the frames of a call chain). */
static __noinline int tc_snat_egress4(struct __sk_buff *skb)
{
	return tc_verdict_local(skb, xlate_snat(skb, 1, 0));
}

static __noinline int tc_snat_egress6(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_snat6_dev(skb));
}

/* Not a TC verdict: the packet is no ICMPv6 error about a translated flow. */
#define TC_NOT_ICMP6_ERROR 0x7fffffff

/* ICMPv6 errors about translated flows (egress: dir NPT6_OUT, ingress: NPT6_IN): the verdict, or
 * TC_NOT_ICMP6_ERROR. A subprogram beside the IPv6 path rather than inside it: the frames of a
 * call chain add up, and the IPv6 path's with this one's would exceed 512 bytes. */
static __noinline int tc_icmp6_error(struct __sk_buff *skb, __u32 dir)
{
	enum ipsnat_reason r = xlate_icmp6_dev(skb, dir);

	return r == IPSNAT_R_MAX ? TC_NOT_ICMP6_ERROR : tc_verdict(skb, r);
}

SEC("tc")
int tc_snat_egress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		int verdict = tc_icmp6_error(skb, NPT6_OUT);

		return verdict != TC_NOT_ICMP6_ERROR ? verdict : tc_snat_egress6(skb);
	}
	return tc_snat_egress4(skb);
}

/* TC egress of lo (route mode): the kernel's own ICMP errors about translated packets when the
 * NAT address is local reach the inside host; the rest of lo's traffic passes. */
SEC("tc")
int tc_lo_egress(struct __sk_buff *skb)
{
	return tc_verdict_local(skb, xlate_loopback(skb));
}

/* TC ingress of the tunnel device (route-based) or of the uplink (policy-based, decrypted
 * packets only): translate replies back to the inside host. */
/* Its IPv4 and IPv6 paths are two subprograms, as tc_snat_egress's: the IPv4 path's frame would
 * otherwise add to the ICMPv6 error subprogram's. */
static __noinline int tc_rev_ingress4(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_reverse(skb));
}

static __noinline int tc_rev_ingress6(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_reverse6_dev(skb));
}

SEC("tc")
int tc_rev_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		int verdict = tc_icmp6_error(skb, NPT6_IN);

		return verdict != TC_NOT_ICMP6_ERROR ? verdict : tc_rev_ingress6(skb);
	}
	return tc_rev_ingress4(skb);
}

/* TC egress of the uplink of policy-based SAs: nothing SPD-covered may leave in cleartext. */
SEC("tc")
int tc_guard_egress(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_guard(skb));
}

/* LWT xmit on the routes ipsnat installs for SPD-covered destinations (policy-based): the
 * packet missed the SPD because of its source; translate and let the kernel re-route it
 * through a fresh xfrm lookup. IPv4 and IPv6 are two subprograms, as in tc_snat_egress. */
static __always_inline int lwt_verdict(struct __sk_buff *skb, enum ipsnat_reason r)
{
	stats_count(r, skb->len);
	if (xlate_is_drop(r))
		return BPF_DROP;
	return xlate_is_translated(r) ? BPF_LWT_REROUTE : BPF_OK;
}

static __noinline int lwt_snat_xmit4(struct __sk_buff *skb)
{
	return lwt_verdict(skb, xlate_snat(skb, 0, 1));
}

static __noinline int lwt_snat_xmit6(struct __sk_buff *skb)
{
	return lwt_verdict(skb, xlate_snat6_lwt(skb));
}

/* A LAN host's ICMPv6 error about a reply: the verdict, or TC_NOT_ICMP6_ERROR. A subprogram beside
 * the IPv6 path, as tc_icmp6_error. */
static __noinline int lwt_icmp6_error(struct __sk_buff *skb)
{
	enum ipsnat_reason r = xlate_icmp6_lwt(skb);

	return r == IPSNAT_R_MAX ? TC_NOT_ICMP6_ERROR : lwt_verdict(skb, r);
}

SEC("lwt_xmit")
int lwt_snat_xmit(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		int verdict = lwt_icmp6_error(skb);

		return verdict != TC_NOT_ICMP6_ERROR ? verdict : lwt_snat_xmit6(skb);
	}
	return lwt_snat_xmit4(skb);
}

/* XDP on the uplink (`attach --xdp-prefilter`, native mode only): drops spoofed cleartext the
 * kernel's inbound policy check would drop later (bpf/lib/spoof.h). */
SEC("xdp")
int xdp_spoof_drop(struct xdp_md *ctx)
{
	enum ipsnat_reason r = spoof_filter(ctx);

	stats_count(r, (__u32)(ctx->data_end - ctx->data));
	return r == IPSNAT_R_DROP_XDP_SPOOF ? XDP_DROP : XDP_PASS;
}
