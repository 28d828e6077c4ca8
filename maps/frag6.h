/* IPv6 fragments of NAT66 flows (bpf/lib/frag6.h): map "ipsnat_frag6", an LRU_HASH with the design
 * of ipsnat_frag (maps/ct.h) widened to IPv6: written when a first fragment (offset 0, M set) is
 * translated, under (addresses, fragment identification, the fragment header's next header,
 * direction) as the fragment carried them; later fragments of the datagram carry no upper-layer
 * header and take the address found here. Losing an entry to LRU only costs the rest of that datagram. */
#ifndef IPSNAT_MAPS_FRAG6_H
#define IPSNAT_MAPS_FRAG6_H

#include "maps/common.h"

/* Bump when the layout or meaning of ipsnat_frag6 entries changes. */
#define IPSNAT_FRAG6_SCHEMA 2
#define IPSNAT_FRAG6_MAX_ENTRIES 8192

struct ipsnat_frag6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 id;  /* the fragment header's identification */
	__u8 proto; /* the fragment header's next header, alike in every fragment (lib/parse6.h) */
	__u8 dir;   /* enum ipsnat_ct_dir: ORIG replaces the source, REPLY the destination */
	__u8 pad[2];
};
IPSNAT_ASSERT_SIZE(struct ipsnat_frag6_key, 40);

struct ipsnat_frag6_entry {
	__u8 xlat_addr[16]; /* ORIG: the NAT66 address; REPLY: the inside host */
	__u32 reqid;        /* REPLY: the flow's reqid when its first fragment came back (0: any SA) */
	__u32 pad;
	__u64 created_ns;   /* bpf_ktime_get_boot_ns() */
};
IPSNAT_ASSERT_SIZE(struct ipsnat_frag6_entry, 32);

#endif
