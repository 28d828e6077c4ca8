/* The SPD as the datapath sees it: what the loader compiled from the kernel's XFRM policies.
 * First form (to be replaced by the exact classifier; the function contract in bpf/lib/spd.h
 * stays): an LPM trie on the destination whose value says which inner source the covering
 * out-policy requires. */
#ifndef IPSNAT_MAPS_SPD_H
#define IPSNAT_MAPS_SPD_H

#include "maps/common.h"

#define IPSNAT_SPD_SCHEMA 1
#define IPSNAT_SPD_MAX_ENTRIES 65536

struct spd_dst_key {
	__u32 prefixlen; /* LPM trie: bits that follow, of daddr */
	__be32 daddr;
};
IPSNAT_ASSERT_SIZE(struct spd_dst_key, 8);

enum spd_nat_kind {
	SPD_NAT_NONE = 0,   /* covered, but the policy implies no translation (needs explicit config) */
	SPD_NAT_NAPT = 1,   /* every inside host to nat_addr, ports translated */
	SPD_NAT_PREFIX = 2, /* 1:1 map of inside_net/inside_mask onto nat_addr/nat_mask */
};

struct spd_nat_target {
	__be32 nat_addr;
	__be32 nat_mask;
	__be32 inside_net; /* sources eligible for translation */
	__be32 inside_mask;
	__u32 policy_index; /* the kernel's index of the out-policy that requires this source */
	__u32 reqid;
	__u8 kind; /* enum spd_nat_kind */
	__u8 pad[3];
};
IPSNAT_ASSERT_SIZE(struct spd_nat_target, 28);

#endif
