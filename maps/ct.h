/* Connection tracking: map "ipsnat_ct", a preallocated BPF_MAP_TYPE_HASH (no LRU) holding
 * TWO entries per flow, one per direction, each keyed by the tuple as it is seen on the wire in
 * that direction:
 *   ORIG  key (inside addr, remote addr, inside port, remote port)  value: xlat = (nat addr, nat port)
 *   REPLY key (remote addr, nat addr, remote port, nat port)        value: xlat = (inside addr, port)
 * The partner of an entry is derived from its key and value (ct_partner_key below), so GC and
 * `ipsnat flows` can always find and delete both together. ICMP echo: the identifier is the
 * "port"; a request is keyed (id, 0), a reply (0, id), so a reply's key is the request's with
 * addresses and ports swapped, like TCP/UDP. Timestamps are bpf_ktime_get_boot_ns() (CLOCK_BOOTTIME
 * in userspace), read about once per jiffy (bpf/lib/ct.h ct_now). See docs/datapath.md for why
 * there is no LRU here. */
#ifndef IPSNAT_MAPS_CT_H
#define IPSNAT_MAPS_CT_H

#include "maps/common.h"

/* Default size in entries (2 per flow), i.e. 131072 flows; `ipsnat attach --ct-max N` sets
 * another before the map is created. Preallocated: memory is taken at creation, about 136
 * bytes per entry (element 120 B incl. the kernel's 48-byte header, bucket 16 B). */
#define IPSNAT_CT_MAX_ENTRIES 262144
#define IPSNAT_CT_MIN_ENTRIES 1024
#define IPSNAT_CT_LIMIT_ENTRIES (1U << 24) /* 16M entries, ~2 GiB preallocated */
/* Bump when the meaning of ipsnat_ct or ipsnat_frag entries changes without a change of their
 * sizes: a loader then replaces the pinned maps (with a warning: their flows are lost) instead of
 * reading old entries with new rules (PinStore::drop_incompatible).
 * Schema 2: the map is preallocated (schema 1 had BPF_F_NO_PREALLOC); same key and value.
 * Schema 3: entries carry the SPD version they were last checked against (spd_version).
 * IPSNAT_CT_SPD_CLEAR below needs no bump: an entry without it is checked in full, and one with
 * it fails an older datapath's version compare, which checks it again.
 * Schema 4: a masqueraded flow's entries hold the ipsnat_dev generation in reqid, which an old
 * entry's policy reqid could equal; ipsnat_dev_gen shares this schema (a new one starts again). */
#define IPSNAT_CT_SCHEMA 4

enum ipsnat_ct_dir {
	IPSNAT_CT_ORIG = 0,  /* inside -> remote, before translation */
	IPSNAT_CT_REPLY = 1, /* remote -> NAT address, before translation back */
};

struct ipsnat_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir; /* enum ipsnat_ct_dir */
	__u8 pad[2];
};
IPSNAT_ASSERT_SIZE(struct ipsnat_ct_key, 16);

/* TCP flags seen in this entry's direction since the connection (re)started. */
#define IPSNAT_CT_SEEN_FIN 0x01
#define IPSNAT_CT_SEEN_SYN 0x02
#define IPSNAT_CT_SEEN_RST 0x04
#define IPSNAT_CT_SEEN_ACK 0x10

/* How the flow's translation was decided (for `ipsnat flows`). */
enum ipsnat_ct_kind {
	IPSNAT_CT_KIND_NAPT = 1,
	IPSNAT_CT_KIND_PREFIX = 2,
	IPSNAT_CT_KIND_FORWARD = 3, /* opened from outside through a port-forward (maps/fwd.h) */
	IPSNAT_CT_KIND_MASQ = 4,    /* masqueraded to the uplink's address: no IPsec, cleartext both ways */
	IPSNAT_CT_KIND_BINAT = 5,   /* opened from outside to a 1:1-mapped address (`attach --binat`) */
	IPSNAT_CT_KIND_NAT66 = 6,   /* IPv6 to one address with ports (maps/ct6.h only) */
};

struct ipsnat_ct_entry {
	__be32 xlat_addr; /* ORIG: new source; REPLY: new destination */
	__be16 xlat_port; /* ORIG: new source port / echo id; REPLY: new destination port / id */
	__u8 kind;        /* enum ipsnat_ct_kind */
	__u8 pad0;
	__u32 seen;       /* IPSNAT_CT_SEEN_* of this direction */
	__u32 reqid;      /* of the out-policy protecting the flow as of spd_version (0: unknown); in
			   * a masqueraded flow's entries (kind MASQ) the ipsnat_dev generation of the
			   * guard's stamp instead (maps/config.h ipsnat_dev_gen, bpf/lib/masq.h) */
	__u64 created_ns; /* bpf_ktime_get_boot_ns() */
	__u64 last_ns;    /* last packet in this direction */
	__u64 packets;
	__u64 bytes;      /* IP bytes (header included) */
	/* spd_active.version under which this translation was last found protected by the SPD
	 * (ORIG) or its reqid confirmed (REPLY); another version makes the next packet of that
	 * direction check it again (docs/datapath.md). */
	__u64 spd_version;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_ct_entry, 56);

/* spd_version of an entry no SPD check has approved yet (a port-forward's, created at the
 * reverse hook): its first packet out is checked. No SPD version reaches it. */
#define IPSNAT_CT_SPD_UNCHECKED (~(__u64)0)

/* In a masqueraded flow's ORIG entry (kind IPSNAT_CT_KIND_MASQ): spd_version is
 * (version | IPSNAT_CT_SPD_CLEAR) when the leak guard found, under that version, that no
 * out-policy covers the flow for packets without a mark. While that version is current and the
 * SPD maps are healthy, such a packet skips the guard's SPD lookup, and while the entry's reqid
 * is the current ipsnat_dev generation also the ipsnat_dev lookup (bpf/lib/masq.h). Versions
 * are wall-clock nanoseconds (loader/mirror), so no version has this bit; the SNAT side compares
 * the version without it (ct_checked_under). */
#define IPSNAT_CT_SPD_CLEAR ((__u64)1 << 63)

/* The key of the other direction's entry of the same flow. */
static inline struct ipsnat_ct_key ct_partner_key(const struct ipsnat_ct_key *k,
						  const struct ipsnat_ct_entry *e)
{
	struct ipsnat_ct_key p;

	__builtin_memset(&p, 0, sizeof(p));
	p.proto = k->proto;
	if (k->dir == IPSNAT_CT_ORIG) {
		p.saddr = k->daddr;
		p.daddr = e->xlat_addr;
		p.sport = k->dport;
		p.dport = e->xlat_port;
		p.dir = IPSNAT_CT_REPLY;
	} else {
		p.saddr = e->xlat_addr;
		p.daddr = k->saddr;
		p.sport = e->xlat_port;
		p.dport = k->sport;
		p.dir = IPSNAT_CT_ORIG;
	}
	return p;
}

/* Fragments: map "ipsnat_frag", an LRU_HASH. Written when a first fragment (offset 0, MF set)
 * is translated; later fragments of the same datagram carry no L4 header and are translated
 * with the address found here. Losing an entry to LRU only costs the rest of that datagram. */
#define IPSNAT_FRAG_MAX_ENTRIES 8192

struct ipsnat_frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 dir; /* enum ipsnat_ct_dir: which address the value replaces */
};
IPSNAT_ASSERT_SIZE(struct ipsnat_frag_key, 12);

struct ipsnat_frag_entry {
	__be32 xlat_addr;
	__u32 pad;
	__u64 created_ns;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_frag_entry, 16);

#endif
