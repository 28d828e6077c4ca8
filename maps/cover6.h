/* IPv6 destinations the leak guard must not let out in cleartext. ipsnat translates no IPv6,
 * so the guard fails closed for IPv6: every destination prefix of a kernel IPv6 out-policy that
 * requires IPsec (templates, if_id 0: the lookup at the uplink) is a key here, whatever the
 * policy's source, protocol, ports, mark or priority. The loader (loader/mirror/cover6.*) writes it
 * on every SPD change, new keys before old ones are deleted, so no covered prefix is ever absent.
 * Map: "spd_cover6", an LPM trie; the value counts the policies with that destination prefix. */
#ifndef IPSNAT_MAPS_COVER6_H
#define IPSNAT_MAPS_COVER6_H

#include "maps/common.h"

/* Bump on any layout or meaning change of spd_cover6. */
#define IPSNAT_COVER6_SCHEMA 1
#define IPSNAT_COVER6_MAX_ENTRIES 65536

struct spd_cover6_key {
	__u32 prefixlen; /* destination prefix length, 0..128 */
	__u8 daddr[16];
};
IPSNAT_ASSERT_SIZE(struct spd_cover6_key, 20);

struct spd_cover6 {
	__u32 policies; /* IPsec out-policies with exactly this destination prefix */
};
IPSNAT_ASSERT_SIZE(struct spd_cover6, 4);

#endif
