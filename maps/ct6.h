/* IPv6 connection tracking for NAT66 with ports (bpf/lib/nat66.h): map "ipsnat_ct6", a
 * preallocated BPF_MAP_TYPE_HASH with the design of ipsnat_ct (maps/ct.h), widened to IPv6
 * addresses: TWO entries per flow, one per direction, each keyed by the tuple as it is seen on the
 * wire in that direction:
 *   ORIG  key (inside addr, remote addr, inside port, remote port)  value: xlat = (nat addr, nat port)
 *   REPLY key (remote addr, nat addr, remote port, nat port)        value: xlat = (inside addr, port)
 * The partner of an entry is derived from its key and value (ct6_partner_key), so the GC and
 * `ipsnat flows` find and delete both together. ICMPv6 echo: the identifier is the "port"; a
 * request is keyed (id, 0), a reply (0, id). A separate map, not a wider ipsnat_ct: the IPv4 key
 * stays 16 bytes, so IPv4 lookups hash no more than before. Timestamps and TCP flags as in
 * ipsnat_ct (the conntrack clock, bpf/lib/ct.h ct_now; IPSNAT_CT_SEEN_*). Both entries carry the
 * reqid of the policy that protects the flow (its NAT66 rule's, maps/npt6.h): a policy-mode uplink
 * takes a reply back only from an SA of that reqid (bpf/lib/nat66.h); and the SPD version under
 * which that was last checked, as ipsnat_ct's: another version makes the next packet check the
 * flow against the rule again. */
#ifndef IPSNAT_MAPS_CT6_H
#define IPSNAT_MAPS_CT6_H

#include "maps/common.h"
#include "maps/ct.h"

/* Bump when the layout or meaning of ipsnat_ct6 entries changes.
 * Schema 2: entries carry the protecting policy's reqid (64 B, was 56).
 * Schema 3: entries carry the SPD version they were last checked against (72 B). */
#define IPSNAT_CT6_SCHEMA 3
/* Entries (2 per flow): 32768 flows, about 180 bytes per entry preallocated. */
#define IPSNAT_CT6_MAX_ENTRIES 65536

struct ipsnat_ct6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum ipsnat_ct_dir */
	__u8 pad[2];
};
IPSNAT_ASSERT_SIZE(struct ipsnat_ct6_key, 40);

struct ipsnat_ct6_entry {
	__u8 xlat_addr[16]; /* ORIG: new source; REPLY: new destination */
	__be16 xlat_port;   /* ORIG: new source port / echo id; REPLY: new destination port / id */
	__u8 kind;          /* enum ipsnat_ct_kind: IPSNAT_CT_KIND_NAT66 */
	__u8 pad0;
	__u32 seen;         /* IPSNAT_CT_SEEN_* of this direction */
	__u32 reqid;        /* of the out-policy protecting the flow, as its rule last said (0: any SA) */
	__u32 pad1;
	__u64 created_ns;   /* bpf_ktime_get_boot_ns(), via ct_now (bpf/lib/ct.h) */
	__u64 last_ns;      /* last packet in this direction */
	__u64 packets;
	__u64 bytes;        /* IPv6 bytes (header included) */
	/* spd_active.version under which the flow's translation was last found to be its rule's
	 * (ORIG) or its reqid confirmed (REPLY); another version makes the next packet of that
	 * direction check it again (bpf/lib/nat66.h). */
	__u64 spd_version;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_ct6_entry, 72);

/* The key of the other direction's entry of the same flow. */
static inline struct ipsnat_ct6_key ct6_partner_key(const struct ipsnat_ct6_key *k,
						    const struct ipsnat_ct6_entry *e)
{
	struct ipsnat_ct6_key p;
	int orig = k->dir == IPSNAT_CT_ORIG;

	__builtin_memset(&p, 0, sizeof(p));
	p.proto = k->proto;
	p.dir = orig ? IPSNAT_CT_REPLY : IPSNAT_CT_ORIG;
	__builtin_memcpy(p.saddr, orig ? k->daddr : e->xlat_addr, 16);
	__builtin_memcpy(p.daddr, orig ? e->xlat_addr : k->saddr, 16);
	p.sport = orig ? k->dport : e->xlat_port;
	p.dport = orig ? e->xlat_port : k->sport;
	return p;
}

#endif
