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
