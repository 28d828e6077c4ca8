/* NPTv6 (RFC 6296): stateless, checksum-neutral IPv6 prefix translation on route-mode devices
 * (xfrm interface, VTI, or a device attached with --mode route). Map "ipsnat_npt6", an LPM trie written by the SPD mirror
 * (loader/spd/npt6.*) from the kernel's IPv6 IPsec out-policies whose source selector is a prefix
 * (/1../112) and the one IPv6 inside prefix of the same length; read by bpf/lib/npt6.h.
 *
 * A key is scoped by the policy's if_id and mark (struct npt6_scope): an xfrm interface asks with
 * its if_id, a VTI with its okey (ip_vti sets flowi_mark = o_key), the uplink in policy mode with
 * both 0, so a VTI's marked policies and the uplink's unmarked ones never share a rule. A policy
 * whose mark mask is neither 0 nor full matches no one mark value and takes no rule.
 *
 * Two kinds of key, both looked up with the packet's destination:
 *   NPT6_OUT, the policy's destination prefix: at TC egress of the device, a source in rule.from
 *             (the inside prefix) becomes rule.to (the policy's source prefix);
 *   NPT6_IN,  the policy's source prefix: at TC ingress, a destination in rule.from (the outside
 *             prefix) becomes rule.to (the inside prefix).
 * Only the prefix bits and one 16-bit word of the host part change; `adjust` is chosen so the
 * one's-complement sum of the address stays the same, so no L4 checksum changes.
 *
 * A policy whose source selector is one address (/128, strongSwan's virtual IPv6) has an NPT6_OUT
 * key only, with a rule of kind NPT6_KIND_NAT66 (from and len 0): a source in the IPv6 inside set
 * (or, when rule.len > 0, a source in rule.from/len: a [[nat]] rule's inside prefix)
 * becomes rule.to (that address) with a port from the NAPT range, and the reply is translated
 * back by IPv6 conntrack (maps/ct6.h, bpf/lib/nat66.h), never by a rule. A NAT66 rule of a prefix
 * selector (LANs larger than it, or the rest beside a 1:1 map) carries a pool: `span` addresses
 * after rule.to (its last 32 bits counted up, never past the block), the source's own one
 * chosen by npt6_pool_pick, as IPv4's NAPT pools (maps/spd.h spd_nat_pool_pick).
 *
 * A policy whose 1:1 map holds one LAN while the selector has room beside it (a /64 LAN under a
 * /56) takes the other IPv6 LANs with NAT66 (loader/spd/npt6.h): its NPT6_OUT rule (kind
 * NPT6_KIND_PREFIX) carries NPT6_FLAG_REST, and an NPT6_OUT_REST key of the same if_id, mark and
 * destination holds the NAT66 rule for the inside sources outside rule.from. Without the flag
 * nothing looks that key up: a policy without the mixed case costs no second lookup.
 *
 * The IPv6 inside set (every IPv6 inside prefix attach chose, or --inside) is a third kind of key,
 * NPT6_INSIDE with if_id 0, mark 0 and the prefix, looked up with the packet's inside address; its rule
 * has kind NPT6_KIND_INSIDE and from/len the prefix. It is the IPv6 counterpart of ipsnat_inside
 * (maps/inside.h), kept here so one writer puts it and the NAT66 rules that read it in place in
 * one pass (new keys first). The gateway's own IPv6 addresses outside every inside prefix (not
 * link-local) are /128 keys of the same kind of key with a rule of kind NPT6_KIND_LOCAL, as
 * ipsnat_inside's INSIDE_LOCAL entries: NAT66 in LWT xmit takes such a source from a LAN packet
 * that a netfilter masquerade or SNAT rule rewrote before the hook (bpf/lib/nat66.h). */
#ifndef IPSNAT_MAPS_NPT6_H
#define IPSNAT_MAPS_NPT6_H

#include "maps/common.h"

/* Bump on any layout or meaning change of ipsnat_npt6. */
/* Schema 2: rules carry a kind (NAT66 rules). Schema 3: `word` names the first adjustable word
 * (prefixes longer than /64). Schema 4: rules carry the policy's reqid. Schema 5: the IPv6 inside
 * set (NPT6_INSIDE keys) decides NAT66's sources; a NAT66 rule's from is unused. Schema 6: a prefix
 * rule's NPT6_FLAG_REST and NPT6_OUT_REST keys (NAT66 beside NPTv6). Schema 7: keys carry the policy's mark
 * (a VTI's okey; 96 fixed bits), and a NAT66 rule's `span` (a pool of addresses after `to`, was
 * padding). Schema 8: a NAT66 rule's from/len, when len > 0, are its sources (a [[nat]] rule's inside)
 * instead of the IPv6 inside set. Schema 9: NPT6_KIND_LOCAL entries (the gateway's own addresses). */
#define IPSNAT_NPT6_SCHEMA 9
#define IPSNAT_NPT6_MAX_ENTRIES 4096
/* The longest prefix translated: the adjusted word must be host bits (RFC 6296 sections 3.6, 3.7),
 * and a prefix longer than /112 leaves no whole 16-bit word of them. */
#define IPSNAT_NPT6_MAX_LEN 112
/* The key's bits before the address: if_id, mark and dir, matched exactly. */
#define IPSNAT_NPT6_KEY_FIXED_BITS 96

enum npt6_kind {
	NPT6_KIND_PREFIX = 0, /* RFC 6296, stateless */
	NPT6_KIND_NAT66 = 1,  /* to one address with ports, stateful */
	NPT6_KIND_INSIDE = 2, /* an entry of the IPv6 inside set (NPT6_INSIDE), no translation */
	NPT6_KIND_LOCAL = 3,  /* a gateway's own address outside the inside set (NPT6_INSIDE, /128) */
};

enum npt6_dir {
	NPT6_OUT = 1,
	NPT6_IN = 2,
	NPT6_INSIDE = 3,
	NPT6_OUT_REST = 4, /* the NAT66 rule beside a prefix rule with NPT6_FLAG_REST */
};

/* npt6_rule.flags */
#define NPT6_FLAG_REST 0x01 /* inside sources outside `from` take the NPT6_OUT_REST rule (NAT66) */

struct npt6_key {
	__u32 prefixlen; /* IPSNAT_NPT6_KEY_FIXED_BITS + the address prefix length */
	__u32 if_id;     /* the policy's if_id; the datapath asks with the device's (ipsnat_dev) */
	__u32 mark;      /* the one flow mark the policy matches (mark_v under a full mask; 0 for an
			  * unmarked policy); the datapath asks with the device's (ipsnat_dev: a VTI's
			  * okey, 0 elsewhere). NPT6_INSIDE keys: 0. */
	__u32 dir;       /* enum npt6_dir */
	__u8 addr[16];
};
IPSNAT_ASSERT_SIZE(struct npt6_key, 32);

/* Which rules a device's packets ask for: the key's if_id and mark (ipsnat_dev's if_id and mark
 * in route mode, both 0 for policy mode's uplink). */
struct npt6_scope {
	__u32 if_id;
	__u32 mark;
};
IPSNAT_ASSERT_SIZE(struct npt6_scope, 8);

struct npt6_rule {
	__u8 from[16]; /* the prefix the translated address is in (host bits zero) */
	__u8 to[16];   /* the prefix it becomes (host bits zero) */
	__u8 len;      /* prefix length of from: 1..IPSNAT_NPT6_MAX_LEN (INSIDE: 1..128; NAT66: 0, the
			* inside set's sources, or 1..128, a [[nat]] rule's inside prefix, its only sources) */
	__u8 word;     /* 3: adjust word 3 (prefixes up to /48); 4..7: the first of words `word`..7 that is
			* not 0xffff, `word` being the first word the prefix does not touch (/49../112) */
	__u16 adjust;  /* host order: one's-complement sum(from) - sum(to), added to that word */
	__u32 policy_index; /* the out-policy the rule comes from (explain, tests) */
	__u8 kind;     /* enum npt6_kind; NAT66: `to` is the address, word and adjust are 0 */
	__u8 flags;    /* NPT6_FLAG_*; 0 but on a prefix rule */
	__u16 span;    /* NAT66: addresses after `to` in its pool (0: `to` alone); else 0 */
	__u32 reqid;   /* of the policy's first template: its SAs' (0: none named, any SA) */
};
IPSNAT_ASSERT_SIZE(struct npt6_rule, 48);

/* The addresses of a NAT66 pool: at most IPv4's (a span is 16 bits). */
#define IPSNAT_NPT6_MAX_POOL 65536

/* The 32-bit word at byte i of an address, host order. */
static inline __u32 npt6_word32(const __u8 *addr, int i)
{
	return (__u32)addr[i] << 24 | (__u32)addr[i + 1] << 16 | (__u32)addr[i + 2] << 8 | addr[i + 3];
}

/* NAT66 over a pool of span + 1 addresses: the index of the address the LAN source `addr` prefers.
 * The source's four 32-bit words folded by xor (hosts of one LAN differ in the low ones), then
 * IPv4's pick (spd_nat_pool_pick: Knuth's multiplicative hash scaled by its top bits, as
 * netfilter's reciprocal_scale), so one host keeps one address for all its flows. Written
 * out, not looped: Linux 6.1's verifier refuses some loop layouts (bpf/lib/npt6.h). */
static inline __u32 npt6_pool_pick(const __u8 *addr, __u32 span)
{
	__u32 fold = npt6_word32(addr, 0) ^ npt6_word32(addr, 4) ^ npt6_word32(addr, 8) ^ npt6_word32(addr, 12);

	return (__u32)(((__u64)(__u32)(fold * 2654435761u) * (span + 1)) >> 32);
}

#endif
