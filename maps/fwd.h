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
/* Bump when the meaning of ipsnat_fwd or ipsnat_fwd_cnt changes: both are then replaced together
 * (PinStore::drop_incompatible), so the count never starts below the entries present.
 * Schema 2: ipsnat_fwd_cnt counts ipsnat_fwd's entries (schema 1 had no count). */
#define IPSNAT_FWD_SCHEMA 2

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

/* Map "ipsnat_fwd_cnt": a one-entry ARRAY (BPF_F_MMAPABLE) holding an upper bound of the number of
 * entries in ipsnat_fwd. Every writer (loader/pins/fwd_map.h) adds 1 atomically BEFORE it inserts
 * an entry and subtracts 1 only AFTER it deleted one, so at every instant entries >= the map's
 * entries: a datapath that reads 0 knows no forward exists and skips the ipsnat_fwd lookups
 * (docs/datapath.md, "Port-forwards"). */
struct ipsnat_fwd_count {
	__u64 entries;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_fwd_count, 8);

#endif
