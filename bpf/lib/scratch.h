/* The per-CPU scratch slot in which a new flow's keys and entries are built (IPv4 NAPT, lib/nat.h;
 * NAT66, lib/nat66.h) instead of on the stack: on Linux 6.1 the verifier adds the port search's
 * bpf_loop callback frame to the program's and rounds each frame up to 32 bytes, against the
 * 512-byte limit (docs/datapath.md, "Stack"). One program runs at a time per CPU (BH disabled at
 * TC and LWT xmit), and the slot holds nothing between two packets: not pinned. */
#ifndef IPSNAT_BPF_LIB_SCRATCH_H
#define IPSNAT_BPF_LIB_SCRATCH_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/ct.h"
#include "maps/ct6.h"

struct nat_new_flow {
	struct ipsnat_ct_key orig_k;
	struct ipsnat_ct_key reply_k;
	struct ipsnat_ct_entry orig_e;
	struct ipsnat_ct_entry reply_e;
};

struct nat66_flow {
	struct ipsnat_ct6_key orig_k;
	struct ipsnat_ct6_key reply_k;
	struct ipsnat_ct6_entry orig_e;
	struct ipsnat_ct6_entry reply_e;
};

union nat_scratch_slot {
	struct nat_new_flow v4;
	struct nat66_flow v6;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union nat_scratch_slot);
} ipsnat_scratch SEC(".maps");

static __always_inline union nat_scratch_slot *nat_scratch_slot(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ipsnat_scratch, &zero);
}

/* This CPU's slot for an IPv4 / an IPv6 flow, or NULL (never, for an array of one). */
static __always_inline struct nat_new_flow *nat_scratch(void)
{
	union nat_scratch_slot *s = nat_scratch_slot();

	return s ? &s->v4 : 0;
}

static __always_inline struct nat66_flow *nat66_scratch(void)
{
	union nat_scratch_slot *s = nat_scratch_slot();

	return s ? &s->v6 : 0;
}

#endif
