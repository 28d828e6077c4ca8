// SPDX-License-Identifier: GPL-2.0
/* The floors of scripts/bench/run.py: the least a TC source NAT on the uplink can cost, at the
 * same hook as ipsnat's route mode (clsact egress/ingress of the uplink, Ethernet frames).
 *
 *   tc_rw_egress       stateless: source LAN_NET/LAN_LEN -> NAT_ADDR, IP and L4 checksums fixed
 *   tc_rw_hash_egress  the same plus one hash operation per packet: a lookup of the 5-tuple in
 *                      rw_flows, which inserts the tuple when it is missing (so an established
 *                      flow costs one lookup, a new one a lookup and an insert)
 *   tc_rw_ingress      the reverse for replies: destination NAT_ADDR -> LAN_HOST (one LAN host)
 *   tc_rw_reply_egress, tc_rw_reply_ingress
 *                      a NAT that admits only replies, in its least form: one entry per flow in
 *                      rw_flows, keyed by the reply's tuple (the remote end, NAT_ADDR and the
 *                      source port, which it keeps) and holding the LAN source; egress looks it
 *                      up and inserts it when missing, ingress looks it up and translates a reply
 *                      to the address it holds, and passes what it does not know untranslated
 *   tc_rw_pair_egress, tc_rw_pair_ingress
 *                      the same NAT with ipsnat's conntrack layout: two entries per flow in
 *                      rw_pairs, each ipsnat_ct's size (16-byte key, 56-byte value: a 120-byte
 *                      element), the reply's inserted first and then the original direction's;
 *                      egress looks up the original's, ingress the reply's. What the two-entry
 *                      design costs before any of ipsnat's logic.
 *   tc_rw_routed_egress
 *                      F2's one entry per flow, with the NAT address learned on every packet
 *                      from rw_route, an LPM trie of destination prefixes (the run fills it):
 *                      the least a NAT whose address depends on the destination's policy must
 *                      do on egress before it can find a flow by the reply's tuple. A flow's
 *                      entry found holding another LAN source is dropped (its port is taken).
 *                      Ingress is F2's.
 *
 * Addresses come from the compiler (-DLAN_NET=0x... in host order, see run.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct rw_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct rw_key);
	__type(value, __u64);
} rw_flows SEC(".maps");

/* The size of ipsnat_ct's value (maps/ct.h): the LAN source, the rest padding. */
struct rw_pair_value {
	__u64 addr;
	__u64 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct rw_key);
	__type(value, struct rw_pair_value);
} rw_pairs SEC(".maps");

/* A destination prefix and the NAT address its flows take. */
struct rw_route_key {
	__u32 prefixlen;
	__u32 daddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rw_route_key);
	__type(value, __u32);
} rw_route SEC(".maps");

#define IP_OFF ETH_HLEN
#define L4_OFF (ETH_HLEN + sizeof(struct iphdr))

/* The L4 checksum's offset for TCP and UDP, else -1. */
static __always_inline int l4_csum_off(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return L4_OFF + offsetof(struct tcphdr, check);
	if (proto == IPPROTO_UDP)
		return L4_OFF + offsetof(struct udphdr, check);
	return -1;
}

/* Replaces the IPv4 address at byte offset `field` of the IP header (saddr or daddr). */
static __always_inline int rewrite(struct __sk_buff *skb, __u8 proto, int field, __be32 from, __be32 to)
{
	int csum = l4_csum_off(proto);

	if (csum < 0)
		return TC_ACT_OK;
	if (bpf_l4_csum_replace(skb, csum, from, to, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(to)))
		return TC_ACT_SHOT;
	if (bpf_l3_csum_replace(skb, IP_OFF + offsetof(struct iphdr, check), from, to, sizeof(to)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, IP_OFF + field, &to, sizeof(to), 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* The IPv4 header of an Ethernet frame with 20 bytes of IP header and 4 of ports, else NULL. */
static __always_inline struct iphdr *ipv4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + IP_OFF;

	if (data + L4_OFF + 4 > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return NULL;
	return ip;
}

/* The reply tuple of a flow: the remote end, then the NAT address and the port the flow keeps. */
static __always_inline struct rw_key reply_key_to(__be32 remote, __be16 remote_port, __be32 nat, __be16 nat_port,
						  __u8 proto)
{
	struct rw_key key = { .saddr = remote, .daddr = nat, .sport = remote_port, .dport = nat_port,
			      .proto = proto };
	return key;
}

static __always_inline struct rw_key reply_key(__be32 remote, __be16 remote_port, __be16 nat_port, __u8 proto)
{
	return reply_key_to(remote, remote_port, bpf_htonl(NAT_ADDR), nat_port, proto);
}

/* What a floor keeps per flow: nothing (F0), the 5-tuple (F1), the reply's entry (F2), both
 * directions' entries (F3), the reply's entry found through the destination's NAT address (F4). */
enum rw_state { RW_STATELESS, RW_HASH, RW_REPLY_ENTRY, RW_PAIR, RW_ROUTED_REPLY };

static __always_inline int snat(struct __sk_buff *skb, enum rw_state state)
{
	struct iphdr *ip = ipv4(skb);

	if (!ip || (bpf_ntohl(ip->saddr) >> (32 - LAN_LEN)) != (LAN_NET >> (32 - LAN_LEN)))
		return TC_ACT_OK;
	__u8 proto = ip->protocol;
	__be32 from = ip->saddr, to = bpf_htonl(NAT_ADDR);
	__u16 *ports = (void *)(ip + 1);
	if (state == RW_ROUTED_REPLY) {
		/* F4: the NAT address of the packet's destination first. */
		struct rw_route_key rk = { .prefixlen = 32, .daddr = ip->daddr };
		__u32 *nat = bpf_map_lookup_elem(&rw_route, &rk);

		if (!nat)
			return TC_ACT_OK;
		to = *nat;
	}
	struct rw_key orig = { .saddr = from, .daddr = ip->daddr, .sport = ports[0], .dport = ports[1],
			       .proto = proto };
	if (state == RW_PAIR) {
		if (!bpf_map_lookup_elem(&rw_pairs, &orig)) {
			struct rw_key reply = reply_key(ip->daddr, ports[1], ports[0], proto);
			struct rw_pair_value v = { .addr = from };

			if (!bpf_map_update_elem(&rw_pairs, &reply, &v, BPF_NOEXIST)) {
				v.addr = bpf_htonl(NAT_ADDR);
				bpf_map_update_elem(&rw_pairs, &orig, &v, BPF_NOEXIST);
			}
		}
	} else if (state != RW_STATELESS) {
		struct rw_key key = orig;
		__u64 value = 1;

		if (state != RW_HASH) { /* F2, F4: the reply's entry, holding the LAN source */
			key = reply_key_to(ip->daddr, ports[1], to, ports[0], proto);
			value = from;
		}
		__u64 *found = bpf_map_lookup_elem(&rw_flows, &key);

		if (!found)
			bpf_map_update_elem(&rw_flows, &key, &value, BPF_NOEXIST);
		else if (state == RW_ROUTED_REPLY && (__be32)*found != from)
			return TC_ACT_SHOT; /* F4: its port is another LAN source's */
	}
	return rewrite(skb, proto, offsetof(struct iphdr, saddr), from, to);
}

/* Replies to NAT_ADDR back to LAN_HOST (stateless), or to the LAN source of their entry. */
static __always_inline int unsnat(struct __sk_buff *skb, enum rw_state state)
{
	struct iphdr *ip = ipv4(skb);

	if (!ip || ip->daddr != bpf_htonl(NAT_ADDR))
		return TC_ACT_OK;
	__be32 to = bpf_htonl(LAN_HOST);
	if (state == RW_REPLY_ENTRY) {
		__u16 *ports = (void *)(ip + 1);
		struct rw_key key = reply_key(ip->saddr, ports[0], ports[1], ip->protocol);
		__u64 *lan = bpf_map_lookup_elem(&rw_flows, &key);

		if (!lan)
			return TC_ACT_OK;
		to = (__be32)*lan;
	} else if (state == RW_PAIR) {
		__u16 *ports = (void *)(ip + 1);
		struct rw_key key = reply_key(ip->saddr, ports[0], ports[1], ip->protocol);
		struct rw_pair_value *v = bpf_map_lookup_elem(&rw_pairs, &key);

		if (!v)
			return TC_ACT_OK;
		to = (__be32)v->addr;
	}
	return rewrite(skb, ip->protocol, offsetof(struct iphdr, daddr), ip->daddr, to);
}

SEC("tc")
int tc_rw_egress(struct __sk_buff *skb)
{
	return snat(skb, RW_STATELESS);
}

SEC("tc")
int tc_rw_hash_egress(struct __sk_buff *skb)
{
	return snat(skb, RW_HASH);
}

SEC("tc")
int tc_rw_reply_egress(struct __sk_buff *skb)
{
	return snat(skb, RW_REPLY_ENTRY);
}

SEC("tc")
int tc_rw_ingress(struct __sk_buff *skb)
{
	return unsnat(skb, RW_STATELESS);
}

SEC("tc")
int tc_rw_reply_ingress(struct __sk_buff *skb)
{
	return unsnat(skb, RW_REPLY_ENTRY);
}

SEC("tc")
int tc_rw_pair_egress(struct __sk_buff *skb)
{
	return snat(skb, RW_PAIR);
}

SEC("tc")
int tc_rw_routed_egress(struct __sk_buff *skb)
{
	return snat(skb, RW_ROUTED_REPLY);
}

SEC("tc")
int tc_rw_pair_ingress(struct __sk_buff *skb)
{
	return unsnat(skb, RW_PAIR);
}
