/* The SA that decrypted a packet, from its sec path: the reverse paths of IPv4 (lib/xlate.h) and
 * IPv6 (lib/nat66.h) translate a reply on a policy-mode uplink only when an SA brought it. */
#ifndef IPSNAT_BPF_LIB_SA_H
#define IPSNAT_BPF_LIB_SA_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Test seam: set only by the bpf tier before load (tests/support/datapath.h); the loader never
 * sets it. BPF_PROG_TEST_RUN cannot give a packet a sec path, so there the SA's reqid is read
 * from skb->mark (0: no SA). Read-only data: the verifier removes the branch not taken. */
const volatile __u32 ipsnat_test_sa_from_mark = 0;

/* The reqid of the SA that decrypted skb: 0 and *reqid, or -1 for a cleartext packet. */
static __always_inline int skb_sa_reqid(struct __sk_buff *skb, __u32 *reqid)
{
	struct bpf_xfrm_state st;

	if (ipsnat_test_sa_from_mark) {
		if (!skb->mark)
			return -1;
		*reqid = skb->mark;
		return 0;
	}
	if (bpf_skb_get_xfrm_state(skb, 0, &st, sizeof(st), 0))
		return -1;
	*reqid = st.reqid;
	return 0;
}

/* An SA of sa_reqid may deliver a flow's packet when the flow's policy names it (reqid 0:
 * not known, any SA). */
static __always_inline int reqid_admits(__u32 flow_reqid, __u32 sa_reqid)
{
	return !flow_reqid || flow_reqid == sa_reqid;
}

#endif
