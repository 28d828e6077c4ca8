// SPDX-License-Identifier: GPL-2.0
/* Entry points of the ipsnat datapath. Each one parses, calls into bpf/lib, returns. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/parse.h"
#include "lib/stats.h"
#include "lib/spd.h"

char LICENSE[] SEC("license") = "GPL";

/* TC egress of a route-based tunnel device (xfrm interface, VTI): translate before the
 * device's own xfrm lookup. */
SEC("tc")
int tc_snat_egress(struct __sk_buff *skb)
{
	if (parse_l3_offset(skb) < 0) {
		stats_count(IPSNAT_R_PASS_NOT_IPV4, skb->len);
		return TC_ACT_OK;
	}
	stats_count(IPSNAT_R_PASS_NOT_COVERED, skb->len);
	return TC_ACT_OK;
}

/* TC ingress of the tunnel device (route-based) or of the uplink (policy-based, decrypted
 * packets only): translate replies back to the inside host. */
SEC("tc")
int tc_rev_ingress(struct __sk_buff *skb)
{
	if (parse_l3_offset(skb) < 0)
		stats_count(IPSNAT_R_PASS_NOT_IPV4, skb->len);
	return TC_ACT_OK;
}

/* TC egress of the uplink of policy-based SAs: nothing SPD-covered may leave in cleartext. */
SEC("tc")
int tc_guard_egress(struct __sk_buff *skb)
{
	if (parse_l3_offset(skb) < 0)
		stats_count(IPSNAT_R_PASS_NOT_IPV4, skb->len);
	return TC_ACT_OK;
}

/* LWT xmit on the routes ipsnat installs for SPD-covered destinations (policy-based): the
 * packet missed the SPD because of its source; translate and let the kernel re-route it
 * through a fresh xfrm lookup. */
SEC("lwt_xmit")
int lwt_snat_xmit(struct __sk_buff *skb)
{
	(void)skb;
	return BPF_OK;
}
