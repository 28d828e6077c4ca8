#ifndef IPSNAT_BPF_LIB_STATS_H
#define IPSNAT_BPF_LIB_STATS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/stats.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, IPSNAT_STATS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct ipsnat_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_stats SEC(".maps");

static __always_inline void stats_count(enum ipsnat_reason reason, __u32 bytes)
{
	__u32 key = reason;
	struct ipsnat_counter *c = bpf_map_lookup_elem(&ipsnat_stats, &key);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif
