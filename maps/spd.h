/* The SPD as the datapath sees it: the kernel's IPv4 out-policies compiled by the loader
 * (loader/spd/compiler.*) into an exact classifier. See docs/spd.md.
 *
 * Lookup of a flow (saddr, daddr, proto, ports, mark, if_id) in generation G:
 *   1. spd_dst  (LPM)  {G, if_id, daddr}          -> cell: the set of policies whose destination
 *                                                     selector contains daddr (same if_id)
 *   2. spd_src  (LPM)  {G, cell, saddr}           -> list id: those whose source contains saddr too
 *   3. spd_lists (hash) {G, list id}              -> <= SPD_MAX_CANDIDATES candidates in the
 *                                                     kernel's order (priority, then insertion),
 *                                                     cut after the first one without conditions;
 *                                                     the first whose proto/ports/mark match wins;
 *                                                     SPD_V_UNKNOWN there: the kernel may choose a
 *                                                     policy the maps cannot express (fail closed).
 * The active generation is spd_active[0]; the loader writes the other one completely, then flips
 * it (one array write), so the datapath never sees a half-written SPD. */
#ifndef IPSNAT_MAPS_SPD_H
#define IPSNAT_MAPS_SPD_H

#include "maps/common.h"

/* Bump on any layout or meaning change of the maps below. */
#define IPSNAT_SPD_SCHEMA 6
#define IPSNAT_SPD_MAX_ENTRIES 262144 /* per LPM / list map, both generations together */
/* `ipsnat attach --spd-max N` sizes spd_dst, spd_src and spd_lists (BPF_F_NO_PREALLOC: memory
 * is taken per entry in use, so N is a bound, not an allocation). */
#define IPSNAT_SPD_MIN_ENTRIES 64
#define IPSNAT_SPD_LIMIT_ENTRIES (1U << 24)
#define SPD_MAX_CANDIDATES 8
#define SPD_MAX_NAT 4
#define SPD_MAX_COVER 4
#define SPD_NAT_MAX_POOL 65536 /* addresses of a NAPT pool: nat_span is 16 bits */

/* LPM keys: prefixlen counts bits after the prefixlen field, so the 64 bits of generation and
 * if_id (resp. cell) are always part of the match. */
struct spd_dst_key {
	__u32 prefixlen; /* 64 + destination prefix length */
	__u32 gen;
	__u32 if_id;
	__be32 daddr;
};
IPSNAT_ASSERT_SIZE(struct spd_dst_key, 16);

enum spd_nat_kind {
	SPD_NAT_NONE = 0,   /* covered, but the policy implies no translation (needs explicit config) */
	SPD_NAT_NAPT = 1,   /* every inside host to nat_addr (or its pool), ports translated */
	SPD_NAT_PREFIX = 2, /* 1:1 map of inside_net/inside_mask onto nat_addr/nat_mask */
};

enum spd_nat_flags {
	/* NAPT: the eligible sources are the inside set (map ipsnat_inside, maps/inside.h), not the
	 * block; inside_net/inside_mask are 0 (the SPD lookup's own filter lets every source by). */
	SPD_NAT_INSIDE_SET = 1,
};

/* Translation: NAPT -> nat_addr, or with nat_span > 0 an address of the pool nat_addr ..
 * nat_addr + nat_span (a LAN larger than the policy's source block, or a [[nat]] rule's range):
 * the one spd_nat_pool_pick() gives the LAN source, the next ones when its ports run out; PREFIX -> (nat_addr & nat_mask) | (saddr & ~inside_mask), where
 * nat_mask == inside_mask (blocks of the same size). Eligible: (saddr & inside_mask) == inside_net,
 * (daddr & dst_mask) == dst_net (a [[nat]] rule's `destinations`; 0/0 elsewhere), and with
 * SPD_NAT_INSIDE_SET a source of the inside set. */
struct spd_nat_target {
	__be32 nat_addr;
	__be32 nat_mask;
	__be32 inside_net; /* sources eligible for translation */
	__be32 inside_mask;
	__be32 dst_net; /* destinations the translation is for, within the cell's prefix */
	__be32 dst_mask;
	__u32 policy_index; /* the kernel's index of the out-policy that requires this source */
	__u32 reqid;
	__u8 kind; /* enum spd_nat_kind */
	__u8 flags; /* enum spd_nat_flags */
	__u16 nat_span; /* NAPT: addresses after nat_addr in its pool (0: nat_addr alone) */
};
IPSNAT_ASSERT_SIZE(struct spd_nat_target, 36);

/* NAPT over a pool of span + 1 addresses: the index of the address LAN source saddr (host order)
 * prefers. A hash of the source alone, so one host keeps one address for all its flows (as nft's
 * `persistent`): protocols that open several connections and expect one peer address (FTP's data
 * channel, SIP/RTP, IKE-like pairs) keep working. Knuth's multiplicative hash scaled to the pool
 * by its top bits (as netfilter's reciprocal_scale): the low bits of the product pair neighbours
 * up on one address, the top bits of n * golden ratio spread consecutive hosts evenly
 * (SpdNatPool.NeighbouringHostsSpreadOverThePool). No division on the datapath. */
static inline __u32 spd_nat_pool_pick(__u32 saddr, __u32 span)
{
	return (__u32)(((__u64)(__u32)(saddr * 2654435761u) * (span + 1)) >> 32);
}

enum spd_cell_flags {
	SPD_CELL_ALWAYS_COVERED = 1, /* some source's first candidate is an unconditional IPsec policy */
};
/* cover[] names the lists that can end in SPD_V_IPSEC or SPD_V_UNKNOWN. */

struct spd_cell {
	__u32 cell; /* key of spd_src */
	__u32 flags;
	__u32 n_cover; /* lists of this cell that can end in an IPsec policy (unless ALWAYS) */
	__u32 cover[SPD_MAX_COVER];
	__u32 n_nat;
	struct spd_nat_target nat[SPD_MAX_NAT]; /* IPsec policies with a NAT, in the kernel's order */
};
IPSNAT_ASSERT_SIZE(struct spd_cell, 16 + 4 * SPD_MAX_COVER + 36 * SPD_MAX_NAT);

struct spd_src_key {
	__u32 prefixlen; /* 64 + source prefix length */
	__u32 gen;
	__u32 cell;
	__be32 saddr;
};
IPSNAT_ASSERT_SIZE(struct spd_src_key, 16);

struct spd_list_key {
	__u32 gen;
	__u32 list;
};
IPSNAT_ASSERT_SIZE(struct spd_list_key, 8);

enum spd_verdict {
	SPD_V_BYPASS = 0, /* allow without templates: cleartext */
	SPD_V_IPSEC = 1,  /* allow with templates */
	SPD_V_BLOCK = 2,
	/* A policy with a condition the datapath cannot evaluate (a selector bound to a device, an
	 * ICMP type/code): the candidate holds only the conditions it can (proto, mark, transport
	 * ports), so it matches every flow the kernel might give that policy. A flow whose lookup
	 * ends here is not translated and its cleartext is dropped (drop-spd-unrepresentable).
	 * Without such conditions it ends its list like any candidate: no flow gets past it. */
	SPD_V_UNKNOWN = 3,
};

struct spd_cand {
	__u32 policy_index;
	__u32 mark_v;
	__u32 mark_m;
	__u32 reqid;
	__u16 sport; /* host order, as in the kernel's selector (xfrm ports) */
	__u16 sport_mask;
	__u16 dport;
	__u16 dport_mask;
	__u8 proto; /* 0 = any */
	__u8 verdict; /* enum spd_verdict */
	__u8 pad[2];
};
IPSNAT_ASSERT_SIZE(struct spd_cand, 28);

struct spd_list {
	__u32 n;
	__u32 pad;
	struct spd_cand c[SPD_MAX_CANDIDATES];
};
IPSNAT_ASSERT_SIZE(struct spd_list, 8 + 28 * SPD_MAX_CANDIDATES);

/* spd_active[0]: the generation the datapath reads (0 or 1). */
struct spd_active {
	__u32 gen;
	__u32 schema; /* IPSNAT_SPD_SCHEMA of the writer */
	__u64 version; /* changed on every swap, never repeated (wall-clock ns, above the last) */
};
IPSNAT_ASSERT_SIZE(struct spd_active, 16);

/* spd_health[0]: whether the maps hold the kernel's current SPD. The writer sets
 * SPD_HEALTH_FAIL_CLOSED when the SPD it must write does not fit into the maps (next to the
 * active generation): the active generation is then stale and a destination covered by a
 * policy it lacks would look uncovered, so spd_out_covered() answers "covered" for every flow
 * (the leak guard drops all cleartext but IPsec/IKE, counted as drop-spd-incomplete) until a
 * write succeeds. The counts say what the current SPD needs per generation (docs/spd.md).
 * SPD_HEALTH_UNREPRESENTABLE comes with FAIL_CLOSED when the cause is not room but a policy the
 * maps cannot express exactly (the compiler's refusal, e.g. a selector bound to a device): the
 * active generation is just as stale. SPD_HEALTH_WRITE_FAILED: the cause was a write the kernel
 * refused for another reason than room (EPERM, ENOMEM, ...); the writer retries.
 * SPD_HEALTH_POLICY_UNKNOWN: the maps hold the current SPD exactly, but some policy in it has a
 * condition they cannot express (SPD_V_UNKNOWN): only the flows that could meet it fail closed.
 * Only userspace reads the causes, to say why. */
enum spd_health_flags {
	SPD_HEALTH_FAIL_CLOSED = 1,
	SPD_HEALTH_UNREPRESENTABLE = 2,
	SPD_HEALTH_WRITE_FAILED = 4,
	SPD_HEALTH_POLICY_UNKNOWN = 8,
};

struct spd_health {
	__u32 flags;    /* enum spd_health_flags; the only field the datapath reads */
	__u32 dst;      /* entries the current SPD needs per generation in spd_dst */
	__u32 src;      /* ... in spd_src */
	__u32 lists;    /* ... in spd_lists */
	__u64 since;    /* unix seconds: start of the fail-closed episode (0: healthy) */
	__u64 failures; /* writes refused for lack of room (map full), ever */
};
IPSNAT_ASSERT_SIZE(struct spd_health, 32);

/* Test-only: what tc_spd_probe found for the last packet (spd_probe_res[0]). */
struct spd_probe_result {
	__u32 found; /* a policy matched the flow itself */
	__u32 policy_index;
	__u32 verdict;
	__u32 nat_found;
	struct spd_nat_target nat;
	__u32 covered;
	__u32 runs;
};
IPSNAT_ASSERT_SIZE(struct spd_probe_result, 16 + 36 + 8);

#endif
