// SPDX-License-Identifier: GPL-2.0
/* Entry points of the ipsnat datapath. Each one runs a pipeline from bpf/lib/xlate.h, counts
 * the reason it returned, and turns it into the hook's verdict. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/config.h"
#include "lib/stats.h"
#include "lib/xlate.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline int tc_verdict(struct __sk_buff *skb, enum ipsnat_reason r)
{
	stats_count(r, skb->len);
	return xlate_is_drop(r) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* TC egress of a route-based tunnel device (xfrm interface, VTI): translate before the
 * device's own xfrm lookup. */
SEC("tc")
int tc_snat_egress(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_snat(skb, dev_cfg(skb->ifindex).if_id, 0));
}

/* TC ingress of the tunnel device (route-based) or of the uplink (policy-based, decrypted
 * packets only): translate replies back to the inside host. */
SEC("tc")
int tc_rev_ingress(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_reverse(skb));
}

/* TC egress of the uplink of policy-based SAs: nothing SPD-covered may leave in cleartext. */
SEC("tc")
int tc_guard_egress(struct __sk_buff *skb)
{
	return tc_verdict(skb, xlate_guard(skb));
}

/* LWT xmit on the routes ipsnat installs for SPD-covered destinations (policy-based): the
 * packet missed the SPD because of its source; translate and let the kernel re-route it
 * through a fresh xfrm lookup. */
SEC("lwt_xmit")
int lwt_snat_xmit(struct __sk_buff *skb)
{
	enum ipsnat_reason r = xlate_snat(skb, 0, 1);

	stats_count(r, skb->len);
	if (xlate_is_drop(r))
		return BPF_DROP;
	return xlate_is_translated(r) ? BPF_LWT_REROUTE : BPF_OK;
}
