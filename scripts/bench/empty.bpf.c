// SPDX-License-Identifier: GPL-2.0
/* Calibration for scripts/bench/progtime: what BPF_PROG_TEST_RUN reports for a TC program that
 * does nothing, i.e. the floor under every timing of ipsnat's programs. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int tc_empty(struct __sk_buff *skb)
{
	(void)skb;
	return TC_ACT_OK;
}
