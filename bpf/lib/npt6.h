/* NPTv6 (RFC 6296) on route-mode devices (maps/npt6.h): the source prefix of an inside host's
 * packet at TC egress, before the device's xfrm lookup; the destination prefix of a decrypted
 * packet at TC ingress. Stateless: each packet is translated by the rule its destination finds.
 * Checksum-neutral: the one's-complement sum of the address does not change, so the TCP, UDP and
 * ICMPv6 checksums (whose pseudo-header holds the address) stay valid untouched, for every
 * fragment and for packets with a partial (offloaded) checksum alike. */
#ifndef IPSNAT_BPF_LIB_NPT6_H
#define IPSNAT_BPF_LIB_NPT6_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/config.h"
#include "maps/npt6.h"
#include "maps/stats.h"
#include "lib/sa.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, IPSNAT_NPT6_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct npt6_key);
	__type(value, struct npt6_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_npt6 SEC(".maps");

/* The rules policy mode's uplink asks for: the policies bound to no interface and unmarked. */
#define NPT6_POLICY_MODE ((struct npt6_scope){ .if_id = 0, .mark = 0 })

/* The rules a route-mode device asks for: its if_id (an xfrm interface) and its mark (a VTI's
 * okey, the flow mark its own xfrm lookup carries; 0 elsewhere). */
static __always_inline struct npt6_scope npt6_scope_of(const struct ipsnat_dev_cfg *d)
{
	return (struct npt6_scope){ .if_id = d->if_id, .mark = d->mark };
}

static __always_inline int ipv6_hdr_equal(const struct ipv6hdr *a, const struct ipv6hdr *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* Offset of the IPv6 header from skb->data, or -1: 0 on the egress of an L3 device and in LWT xmit
 * (l3_at_data), 14 where a (stale) Ethernet header precedes it (docs/datapath.md, "Kernel path"). */
static __always_inline int npt6_l3_offset(struct __sk_buff *skb, struct ipv6hdr *ip6, int l3_at_data)
{
	struct ipv6hdr at;
	int zero, eth;

	if (l3_at_data)
		return bpf_skb_load_bytes(skb, 0, ip6, sizeof(*ip6)) < 0 ? -1 : 0;
	if (bpf_skb_load_bytes_relative(skb, 0, ip6, sizeof(*ip6), BPF_HDR_START_NET) < 0)
		return -1;
	zero = bpf_skb_load_bytes(skb, 0, &at, sizeof(at)) == 0 && ipv6_hdr_equal(&at, ip6);
	eth = bpf_skb_load_bytes(skb, ETH_HLEN, &at, sizeof(at)) == 0 && ipv6_hdr_equal(&at, ip6);
	if (zero && eth) /* identical bytes at both places: the payload length decides */
		return skb->len == sizeof(*ip6) + bpf_ntohs(ip6->payload_len) ? 0 : ETH_HLEN;
	return zero ? 0 : eth ? ETH_HLEN : -1;
}

/* The mask of byte i of a prefix of len bits (len <= 128, i < 16). */
static __always_inline __u8 npt6_byte_mask(__u8 len, int i)
{
	int bits = (int)len - 8 * i;

	return bits >= 8 ? 0xff : bits <= 0 ? 0 : (__u8)(0xff << (8 - bits));
}

/* The loops over an address's bytes and words are unrolled: Linux 6.1's CFG check refuses a loop
 * clang lays out with a fall-through back-edge ("back-edge from insn N to N+1"), which it did here
 * once icmp6.h inlined these into one more subprogram (VM t_bpf_kernel). */
static __always_inline int npt6_in_prefix(const __u8 *addr, const struct npt6_rule *r)
{
	#pragma unroll
	for (int i = 0; i < 16; i++)
		if ((addr[i] ^ r->from[i]) & npt6_byte_mask(r->len, i))
			return 0;
	return 1;
}

/* w + v in one's complement; 0xffff (negative zero) becomes 0 (RFC 6296 section 3.5). */
static __always_inline __u16 npt6_add(__u16 w, __u16 v)
{
	__u32 s = (__u32)w + v;

	s = (s & 0xffff) + (s >> 16);
	return s == 0xffff ? 0 : (__u16)s;
}

/* Adds the rule's adjustment to word i of addr, unless that word is 0xffff: 0 done, -1 not. */
static __always_inline int npt6_adjust_word(__u8 *addr, int i, __u16 adjust)
{
	__u16 w = ((__u16)addr[2 * i] << 8) | addr[2 * i + 1];

	if (w == 0xffff)
		return -1;
	w = npt6_add(w, adjust);
	addr[2 * i] = w >> 8;
	addr[2 * i + 1] = w & 0xff;
	return 0;
}

/* Maps addr (in rule.from) into rule.to in place: 0, or -1 when RFC 6296 leaves it unmapped
 * (the word to adjust is 0xffff: a prefix up to /48 with subnet 0xffff, or a longer one whose
 * host words are all ones). */
static __always_inline int npt6_map(__u8 *addr, const struct npt6_rule *r)
{
	#pragma unroll
	for (int i = 0; i < 16; i++) {
		__u8 m = npt6_byte_mask(r->len, i);

		addr[i] = (addr[i] & ~m) | (r->to[i] & m);
	}
	if (r->word == 3)
		return npt6_adjust_word(addr, 3, r->adjust);
	/* Words `word`..7 are never changed by the prefix, so both directions pick the same one. */
	#pragma unroll
	for (int i = 4; i < 8; i++)
		if (i >= r->word && npt6_adjust_word(addr, i, r->adjust) == 0)
			return 0;
	return -1;
}

/* The way back is the policy's only for a sender in its destination selector: the NPT6_OUT rule
 * the sender finds as a destination (its remote selector) must map onto the prefix that `in`
 * maps back. On an xfrm interface the dir fwd/in companions say the same; on any other route-mode
 * device (a veth given --mode route) nothing else would. Returns that rule (the sender's policy),
 * or NULL. */
static __always_inline struct npt6_rule *npt6_sender_rule(const struct in6_addr *saddr, struct npt6_scope sc,
							  const struct npt6_rule *in)
{
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = sc.if_id, .mark = sc.mark, .dir = NPT6_OUT };
	__builtin_memcpy(k.addr, saddr, 16);
	struct npt6_rule *out = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	if (!out || out->len != in->len)
		return 0;
	#pragma unroll
	for (int i = 0; i < 16; i++)
		if (out->to[i] != in->from[i])
			return 0;
	return out;
}

/* On a policy-mode uplink (need_sa) the way back is the policy's only through its SAs: the SA
 * that decrypted the packet (sa_reqid) must have the reqid of the sender's policy, as a NAT66 or
 * IPv4 reply (a packet another tunnel's SA brought: pass-wrong-sa). */
static __always_inline int npt6_sa_admits(const struct npt6_rule *out, int need_sa, __u32 sa_reqid)
{
	return !need_sa || reqid_admits(out->reqid, sa_reqid);
}

/* Translates the address at offset `at` of the IPv6 header (source or destination) by the rule
 * of (scope: if_id and mark, dir, destination); `done` is the reason when it did. need_sa, sa_reqid: NPT6_IN on a
 * policy-mode uplink, as npt6_sa_admits. */
static __always_inline enum ipsnat_reason npt6_translate(struct __sk_buff *skb, struct npt6_scope sc, enum npt6_dir dir,
							 enum ipsnat_reason done, int l3_at_data, int need_sa,
							 __u32 sa_reqid)
{
	struct ipv6hdr ip6;
	int l3 = npt6_l3_offset(skb, &ip6, l3_at_data);

	if (l3 < 0)
		return dir == NPT6_OUT ? IPSNAT_R_DROP_TRUNCATED : IPSNAT_R_PASS_MALFORMED;
	struct npt6_key k = { .prefixlen = IPSNAT_NPT6_KEY_FIXED_BITS + 128, .if_id = sc.if_id, .mark = sc.mark, .dir = dir };
	__builtin_memcpy(k.addr, &ip6.daddr, 16);
	struct npt6_rule *r = bpf_map_lookup_elem(&ipsnat_npt6, &k);
	/* A NAT66 rule (nat66.h's) is no prefix map: its from/len name sources, not a prefix to map. */
	if (!r || r->kind != NPT6_KIND_PREFIX)
		return IPSNAT_R_PASS_NOT_COVERED;
	__u8 addr[16];
	__u32 off = dir == NPT6_OUT ? __builtin_offsetof(struct ipv6hdr, saddr) : __builtin_offsetof(struct ipv6hdr, daddr);
	__builtin_memcpy(addr, dir == NPT6_OUT ? (void *)&ip6.saddr : (void *)&ip6.daddr, 16);
	if (!npt6_in_prefix(addr, r))
		return dir == NPT6_OUT ? IPSNAT_R_PASS_NOT_INSIDE : IPSNAT_R_PASS_NOT_COVERED;
	if (dir == NPT6_IN) {
		struct npt6_rule *out = npt6_sender_rule(&ip6.saddr, sc, r);

		if (!out)
			return IPSNAT_R_PASS_NOT_COVERED;
		if (!npt6_sa_admits(out, need_sa, sa_reqid))
			return IPSNAT_R_PASS_WRONG_SA;
	}
	if (npt6_map(addr, r))
		return IPSNAT_R_DROP_NPT6_UNMAPPABLE;
	/* The sum of the bytes is unchanged; the flag keeps a CHECKSUM_COMPLETE skb exact anyway. */
	if (bpf_skb_store_bytes(skb, l3 + off, addr, 16, BPF_F_RECOMPUTE_CSUM))
		return IPSNAT_R_DROP_REWRITE;
	return done;
}

/* TC egress of a route-mode device, or LWT xmit (l3_at_data) of a policy-mode route: a source in
 * the inside prefix of the rule the destination finds (the policy's destination) leaves with the
 * policy's source prefix, so the kernel's xfrm lookup after it matches that policy. */
static __always_inline enum ipsnat_reason npt6_egress(struct __sk_buff *skb, struct npt6_scope sc, int l3_at_data)
{
	return npt6_translate(skb, sc, NPT6_OUT, IPSNAT_R_XLATE_NPT6, l3_at_data, 0, 0);
}

/* TC ingress of a route-mode device (decrypted by its SAs) or of a policy-mode uplink (need_sa,
 * decrypted by the SA of sa_reqid): a destination in the policy's source prefix, from a sender in
 * its destination selector, goes back to the inside prefix. */
static __always_inline enum ipsnat_reason npt6_reverse(struct __sk_buff *skb, struct npt6_scope sc, int need_sa, __u32 sa_reqid)
{
	return npt6_translate(skb, sc, NPT6_IN, IPSNAT_R_XLATE_NPT6_REVERSE, 0, need_sa, sa_reqid);
}

#endif
