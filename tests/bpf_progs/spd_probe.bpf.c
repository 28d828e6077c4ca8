// SPDX-License-Identifier: GPL-2.0
/* Test-only BPF object: the SPD lookups of bpf/lib/spd.h as a program of their own. It is not
 * part of the product's object; tests/support/spd_probe.cpp loads it with the SPD maps of a
 * loaded ipsnat_bpf object (bpf_map__reuse_fd by name), so it reads what the loader wrote. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lib/parse.h"
#include "lib/spd.h"

char LICENSE[] SEC("license") = "GPL";

/* Runs the SPD lookups on a packet's flow and records the answers in spd_probe_res, so the
 * tests can compare the kernel-side lookup with the kernel's own choice and the reference.
 * Flow mark from skb->mark, if_id from skb->cb[0]. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spd_probe_result);
} spd_probe_res SEC(".maps");

SEC("tc")
int tc_spd_probe(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct spd_probe_result *r = bpf_map_lookup_elem(&spd_probe_res, &zero);
	struct iphdr hdr;
	int off = parse_l3_offset(skb, &hdr);

	if (!r || off < 0)
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + off;
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	struct ipsnat_flow4 f = {
		.saddr = ip->saddr, .daddr = ip->daddr, .proto = ip->protocol, .mark = skb->mark, .if_id = skb->cb[0],
	};
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		__be16 *ports = (void *)ip + sizeof(*ip); /* tests build ihl=5 */
		if ((void *)(ports + 2) > data_end)
			return TC_ACT_OK;
		f.sport = ports[0];
		f.dport = ports[1];
	}
	__u32 index = 0, verdict = 0;
	r->found = spd_lookup(&f, &index, &verdict, 0) == 0;
	r->policy_index = index;
	r->verdict = verdict;
	r->nat_found = spd_nat_target(&f, &r->nat, 0) == 0;
	r->covered = spd_out_covered(&f);
	r->runs++;
	return TC_ACT_OK;
}
