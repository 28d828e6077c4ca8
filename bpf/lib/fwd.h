/* Port-forwards into the LAN (maps/fwd.h): the rule lookup, the reservation check NAPT makes
 * before handing out a port, and the creation of a forwarded flow's two conntrack entries. */
#ifndef IPSNAT_BPF_LIB_FWD_H
#define IPSNAT_BPF_LIB_FWD_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps/ct.h"
#include "maps/fwd.h"
#include "lib/ct.h"
#include "lib/parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IPSNAT_FWD_MAX_ENTRIES);
	__type(key, struct ipsnat_fwd_key);
	__type(value, struct ipsnat_fwd_target);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ipsnat_fwd_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_fwd_cnt SEC(".maps");

/* Whether ipsnat_fwd may hold an entry: its count (maps/fwd.h) is an upper bound, raised before
 * an insert and lowered after a delete, so 0 means none. The array lookup is inlined by the
 * verifier and its line stays in cache; the hash lookup it saves costs a bucket miss. */
static __always_inline int fwd_any(void)
{
	__u32 zero = 0;
	struct ipsnat_fwd_count *c = bpf_map_lookup_elem(&ipsnat_fwd_cnt, &zero);

	return c && c->entries;
}

static __always_inline struct ipsnat_fwd_target *fwd_lookup(__be32 nat_addr, __u8 proto, __be16 port)
{
	struct ipsnat_fwd_key k = { .nat_addr = nat_addr, .port = port, .proto = proto };

	if (!fwd_any())
		return 0;
	return bpf_map_lookup_elem(&ipsnat_fwd, &k);
}

/* A forwarded port is never a NAPT source port on its address. */
static __always_inline int fwd_port_reserved(__be32 nat_addr, __u8 proto, __u16 port)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	return fwd_lookup(nat_addr, proto, bpf_htons(port)) != 0;
}

/* A packet from the tunnel for a forwarded port without a conntrack entry: creates the flow
 * (lib/ct.h ct_open_inbound). Returns the REPLY entry, or NULL when the table is full. */
static __always_inline struct ipsnat_ct_entry *fwd_open(const struct pkt4 *p, const struct ipsnat_fwd_target *t,
							__u32 reqid)
{
	struct ct_inbound in = {
		.inside_addr = t->inside_addr,
		.inside_port = t->inside_port,
		.kind = IPSNAT_CT_KIND_FORWARD,
		.reqid = reqid,
		/* The forward's address is configured, not found in the SPD: the first answer out
		 * is checked against it like any flow after an SPD change. */
		.spd_version = IPSNAT_CT_SPD_UNCHECKED,
	};

	return ct_open_inbound(p, &in);
}

#endif
