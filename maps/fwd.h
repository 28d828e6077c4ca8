/* Port-forwards into the LAN: map "ipsnat_fwd", a BPF_MAP_TYPE_HASH written by the loader
 * (`ipsnat attach --forward`, `[[forward]]` in the config). A connection arriving from the tunnel
 * (decrypted, with an SA in policy mode) for NAT address:port that no conntrack entry knows is
 * translated to the inside host, and both conntrack entries of the flow are created so the inside
 * host's replies leave with NAT address:port as their source. NAPT never hands out a forwarded
 * (address, proto, port) to an outgoing flow. */
#ifndef IPSNAT_MAPS_FWD_H
#define IPSNAT_MAPS_FWD_H

#include "maps/common.h"

#define IPSNAT_FWD_MAX_ENTRIES 1024

struct ipsnat_fwd_key {
	__be32 nat_addr; /* the outside address the port is on (a NAT address) */
	__be16 port;     /* outside port */
	__u8 proto;      /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_fwd_key, 8);

struct ipsnat_fwd_target {
	__be32 inside_addr;
	__be16 inside_port;
	__u16 pad;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_fwd_target, 8);

#endif
