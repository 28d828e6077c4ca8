/* Connection tracking in the datapath: lookups, per-packet accounting, and the atomic creation
 * of a flow's two entries (maps/ct.h). The datapath never expires anything; the loader's GC
 * (loader/ct/) deletes both entries of a flow together, so no flow is ever half-present by
 * eviction (docs/datapath.md).
 *
 * The map is preallocated (no BPF_F_NO_PREALLOC): an insert pops an element from a per-CPU
 * free list instead of allocating, and the elements lie in one area, which halves the cost of
 * a new flow and shortens lookups (docs/benchmarks.md). Its size is set by the loader before
 * load (`ipsnat attach --ct-max`, bpf_map__set_max_entries); IPSNAT_CT_MAX_ENTRIES is the
 * default. */
#ifndef IPSNAT_BPF_LIB_CT_H
#define IPSNAT_BPF_LIB_CT_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "maps/ct.h"
#include "lib/parse.h"

#ifndef EEXIST
#define EEXIST 17
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IPSNAT_CT_MAX_ENTRIES);
	__type(key, struct ipsnat_ct_key);
	__type(value, struct ipsnat_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_ct SEC(".maps");

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define CT_SEEN_MASK (IPSNAT_CT_SEEN_FIN | IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_RST | IPSNAT_CT_SEEN_ACK)

static __always_inline struct ipsnat_ct_key ct_key_of(const struct pkt4 *p, __u8 dir)
{
	struct ipsnat_ct_key k = {
		.saddr = p->saddr,
		.daddr = p->daddr,
		.sport = p->sport,
		.dport = p->dport,
		.proto = p->proto,
		.dir = dir,
	};
	return k;
}

/* The entry that an ICMP error's quote belongs to: the quote is a packet of the flow going the
 * other way, so its tuple swapped is this direction's key. */
static __always_inline struct ipsnat_ct_key ct_key_of_quote(const struct pkt4_inner *q, __u8 dir)
{
	struct ipsnat_ct_key k = {
		.saddr = q->daddr,
		.daddr = q->saddr,
		.sport = q->dport,
		.dport = q->sport,
		.proto = q->proto,
		.dir = dir,
	};
	return k;
}

static __always_inline struct ipsnat_ct_entry *ct_lookup(const struct ipsnat_ct_key *k)
{
	return bpf_map_lookup_elem(&ipsnat_ct, k);
}

/* What a packet is translated to, copied out of the entry right after the lookup: the rewrite
 * then reads the stack, and an element that the GC deletes meanwhile (preallocated: reused by
 * the next insert at once) cannot lend another flow's address to this packet. */
struct ct_xlat {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

static __always_inline struct ct_xlat ct_xlat_of(const struct ipsnat_ct_entry *e)
{
	struct ct_xlat x = { .addr = e->xlat_addr, .port = e->xlat_port };
	return x;
}

/* Whether entry e was last checked under SPD version `version` (a masquerade stamp's
 * IPSNAT_CT_SPD_CLEAR aside: that check found the flow not covered, maps/ct.h). */
static __always_inline int ct_checked_under(const struct ipsnat_ct_entry *e, __u64 version)
{
	return (e->spd_version & ~IPSNAT_CT_SPD_CLEAR) == version;
}

/* The other direction's entry of the flow of entry e, or NULL: absent, or its key by now
 * belongs to another flow (it does not point back at k). */
static __always_inline struct ipsnat_ct_entry *ct_partner(const struct ipsnat_ct_key *k,
							  const struct ipsnat_ct_entry *e)
{
	struct ipsnat_ct_key pk = ct_partner_key(k, e);
	struct ipsnat_ct_entry *pe = bpf_map_lookup_elem(&ipsnat_ct, &pk);
	int orig = k->dir == IPSNAT_CT_ORIG;

	if (pe && pe->xlat_addr == (orig ? k->saddr : k->daddr) && pe->xlat_port == (orig ? k->sport : k->dport))
		return pe;
	return 0;
}

/* A SYN without ACK on a tuple whose previous connection ended, by a FIN or RST seen in EITHER
 * direction (TIME_WAIT reuse, a reconnect after a reset): the new connection starts with fresh
 * flags on both sides, so the GC sees a syn-sent flow and then its real state, not a reset or
 * closing one that it would expire mid-connection. Returns whether it restarted; a SYN
 * retransmitted while the connection is opening does not. One partner lookup per SYN. */
static __always_inline int ct_tcp_restart(const struct ipsnat_ct_key *k, struct ipsnat_ct_entry *e)
{
	struct ipsnat_ct_entry *pe = ct_partner(k, e);
	__u32 seen = e->seen | (pe ? pe->seen : 0);

	if (!(seen & (IPSNAT_CT_SEEN_FIN | IPSNAT_CT_SEEN_RST)))
		return 0;
	e->seen = IPSNAT_CT_SEEN_SYN;
	if (pe)
		pe->seen = 0;
	return 1;
}

/* The conntrack clock: bpf_ktime_get_boot_ns() read at most about once per jiffy (the read
 * costs tens of ns under kvm-clock, on every packet), shared by every CPU and program of the
 * object. bpf_jiffies64 is a plain load once the verifier inlines it (x86-64 and arm64 JITs, Linux
 * 5.5 on). Entries' times are thus up to a jiffy or two old (4 ms at HZ 250), and on a CPU that
 * raced another may step back by as much: the GC's timeouts are seconds. */
__u64 ct_clock_jiffies = 0;
__u64 ct_clock_boot_ns = 0;

static __always_inline __u64 ct_now(void)
{
	__u64 j = bpf_jiffies64();

	if (ct_clock_jiffies != j) {
		ct_clock_boot_ns = bpf_ktime_get_boot_ns();
		asm volatile("" ::: "memory");
		ct_clock_jiffies = j;
	}
	return ct_clock_boot_ns;
}

static __always_inline void ct_account(const struct ipsnat_ct_key *k, struct ipsnat_ct_entry *e,
				       const struct pkt4 *p, __u32 bytes)
{
	__u64 now = ct_now();

	if (e->last_ns != now)
		e->last_ns = now;
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, bytes);
	if (p->proto != IPPROTO_TCP)
		return;
	__u32 seen = p->tcp_flags & CT_SEEN_MASK;
	if ((p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN && ct_tcp_restart(k, e))
		return;
	/* Not atomic: two CPUs adding different flags to one direction at once may lose one;
	 * the next packet carries them again. */
	if ((e->seen | seen) != e->seen)
		e->seen |= seen;
}

/* Records that the flow of entry e is protected, under SPD version `version`, by an out-policy
 * of this reqid (its SAs'). The reqid is written before the version: a reader that finds the
 * version finds the reqid decided under it, on this CPU's order at least; a reader on a weakly
 * ordered CPU, or two CPUs stamping under two versions at once, may pair a stamp with the other
 * reqid, and the reply side's re-check on any reqid mismatch (lib/xlate.h) absorbs that. */
static __always_inline void ct_stamp(struct ipsnat_ct_entry *e, __u32 reqid, __u64 version)
{
	if (e->reqid != reqid)
		e->reqid = reqid;
	asm volatile("" ::: "memory");
	e->spd_version = version;
}

/* The egress check found the flow of ORIG entry e protected under SPD version `version` by a
 * policy of this reqid: both entries take it, for the reply side compares the SA's reqid with
 * the REPLY entry's (an SA re-established by IKE gets a new reqid). One partner lookup per flow
 * per SPD version. */
static __always_inline void ct_flow_protected(const struct ipsnat_ct_key *k, struct ipsnat_ct_entry *e, __u32 reqid,
					      __u64 version)
{
	struct ipsnat_ct_entry *pe = ct_partner(k, e);

	if (pe)
		ct_stamp(pe, reqid, version);
	ct_stamp(e, reqid, version);
}

/* Removes a flow whose translation the SPD no longer justifies, so that its tuple can be bound
 * anew: REPLY first (its NAT port stops answering), then ORIG, as the GC does; a partner key
 * that by now belongs to another flow (does not point back) is left alone. */
static __always_inline void ct_forget(const struct ipsnat_ct_key *k, const struct ipsnat_ct_entry *e)
{
	struct ipsnat_ct_key pk = ct_partner_key(k, e);

	if (ct_partner(k, e))
		bpf_map_delete_elem(&ipsnat_ct, &pk);
	bpf_map_delete_elem(&ipsnat_ct, k);
}

enum ct_create_result {
	CT_CREATED = 0,
	CT_PORT_TAKEN = 1, /* the REPLY key exists: that NAT port is bound to another flow */
	CT_RACED = 2,      /* another CPU created this flow's ORIG entry first: use it */
	CT_FULL = 3,
};

/* Claims the binding by inserting the REPLY entry with BPF_NOEXIST (atomic: of two CPUs that
 * try the same NAT port for one remote endpoint, one fails), then the ORIG entry. */
static __always_inline int ct_create(const struct ipsnat_ct_key *orig_k, const struct ipsnat_ct_entry *orig_e,
				     const struct ipsnat_ct_key *reply_k, const struct ipsnat_ct_entry *reply_e)
{
	/* Only the low 32 bits: before Linux 6.4 the verifier turns this helper into a direct call
	 * of the map's update op, which returned int, so -EEXIST arrives zero-extended
	 * (0xffffffef) and a 64-bit compare misses it (seen on Debian's 6.1: every port search
	 * ended as "conntrack full"). */
	int err = (int)bpf_map_update_elem(&ipsnat_ct, reply_k, reply_e, BPF_NOEXIST);

	if (err == -EEXIST)
		return CT_PORT_TAKEN;
	if (err)
		return CT_FULL;
	err = (int)bpf_map_update_elem(&ipsnat_ct, orig_k, orig_e, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&ipsnat_ct, reply_k);
		return err == -EEXIST ? CT_RACED : CT_FULL;
	}
	return CT_CREATED;
}

/* A flow the far side opens (a port-forward, BINAT): how it is bound. */
struct ct_inbound {
	__be32 inside_addr;
	__be16 inside_port;
	__u8 kind; /* enum ipsnat_ct_kind */
	__u8 pad;
	__u32 reqid;
	__u64 spd_version;
};

/* Creates the two entries of a flow packet p (from the tunnel) opens to the inside host of in:
 * REPLY entry = the arriving tuple, translated to the inside host; ORIG entry = the inside host's
 * answers, translated back to p's destination address and port. Returns the REPLY entry, or NULL
 * when the table is full. */
static __always_inline struct ipsnat_ct_entry *ct_open_inbound(const struct pkt4 *p, const struct ct_inbound *in)
{
	struct ipsnat_ct_key reply_k = ct_key_of(p, IPSNAT_CT_REPLY);
	struct ipsnat_ct_key orig_k = {
		.saddr = in->inside_addr,
		.daddr = p->saddr,
		.sport = in->inside_port,
		.dport = p->sport,
		.proto = p->proto,
		.dir = IPSNAT_CT_ORIG,
	};
	__u64 now = ct_now();
	struct ipsnat_ct_entry reply_e = {
		.xlat_addr = in->inside_addr,
		.xlat_port = in->inside_port,
		.kind = in->kind,
		.reqid = in->reqid,
		.created_ns = now,
		.last_ns = now,
		.spd_version = in->spd_version,
	};
	struct ipsnat_ct_entry orig_e = reply_e;

	orig_e.xlat_addr = p->daddr;
	orig_e.xlat_port = p->dport;
	/* CT_PORT_TAKEN: another CPU opened this very flow first; its REPLY entry is the one to
	 * follow. CT_RACED: the inside host already uses that port towards this remote endpoint
	 * (an outgoing flow): no entry is created and the packet is not translated. */
	if (ct_create(&orig_k, &orig_e, &reply_k, &reply_e) == CT_FULL)
		return 0;
	return ct_lookup(&reply_k);
}

#endif
