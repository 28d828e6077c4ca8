/* The flow key the datapath hands to its lookups (SPD, NAT plan, conntrack). */
#ifndef IPSNAT_MAPS_FLOW_H
#define IPSNAT_MAPS_FLOW_H

#include "maps/common.h"

struct ipsnat_flow4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* ICMP echo: the identifier; 0 where the protocol has no ports */
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
	__u32 mark;
	__u32 if_id;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_flow4, 24);

#endif
