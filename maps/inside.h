/* The inside set: which sources NAPT translates. Map "ipsnat_inside", an LPM_TRIE written by the
 * SPD mirror (loader/mirror/inside_map.*) from the inside prefixes attach chose (or --inside) and
 * the gateway's own addresses; read by bpf/lib/inside.h for every NAPT target the loader marks
 * SPD_NAT_INSIDE_SET (maps/spd.h). PREFIX (1:1) targets keep their own block. */
#ifndef IPSNAT_MAPS_INSIDE_H
#define IPSNAT_MAPS_INSIDE_H

#include "maps/common.h"

#define IPSNAT_INSIDE_SCHEMA 1
#define IPSNAT_INSIDE_MAX_ENTRIES 1024

enum ipsnat_inside_flags {
	INSIDE_PREFIX = 1, /* within a LAN prefix: translated */
	INSIDE_LOCAL = 2,  /* an address of the gateway itself (/32) */
};

struct ipsnat_inside_key {
	__u32 prefixlen;
	__be32 addr;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_inside_key, 8);

struct ipsnat_inside_val {
	__u32 flags; /* enum ipsnat_inside_flags */
};
IPSNAT_ASSERT_SIZE(struct ipsnat_inside_val, 4);

#endif
