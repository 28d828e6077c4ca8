/* Runtime knobs (maps/config.h): the one-entry config array and the per-device modes. */
#ifndef IPSNAT_BPF_LIB_CONFIG_H
#define IPSNAT_BPF_LIB_CONFIG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/config.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ipsnat_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IPSNAT_DEV_MAX_ENTRIES);
	__type(key, __u32); /* ifindex */
	__type(value, struct ipsnat_dev_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_dev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ipsnat_dev_gen);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipsnat_dev_gen SEC(".maps");

/* The NAPT range, defaults applied; min <= max guaranteed. */
static __always_inline void cfg_port_range(__u32 *min, __u32 *max)
{
	__u32 key = 0;
	struct ipsnat_config *c = bpf_map_lookup_elem(&ipsnat_cfg, &key);

	*min = c && c->port_min ? c->port_min : IPSNAT_DEF_PORT_MIN;
	*max = c && c->port_max ? c->port_max : IPSNAT_DEF_PORT_MAX;
	if (*max < *min)
		*max = *min;
}

static __always_inline struct ipsnat_dev_cfg dev_cfg(__u32 ifindex)
{
	struct ipsnat_dev_cfg none = { .mode = IPSNAT_DEV_UNSET };
	struct ipsnat_dev_cfg *d = bpf_map_lookup_elem(&ipsnat_dev, &ifindex);

	return d ? *d : none;
}

/* Whether skb was forwarded (it has an ingress device) from a device ipsnat is not attached to:
 * the gateway's own packets have no ingress device, and transit from an attached uplink's
 * neighbours is never carried into a tunnel. With a source that is one of the gateway's own
 * addresses, such a packet is a LAN packet a netfilter masquerade or SNAT rule rewrote in
 * POSTROUTING, before the LWT xmit hook (a forwarded packet from a local address is a martian). */
static __always_inline int forwarded_from_unattached(struct __sk_buff *skb)
{
	__u32 in = skb->ingress_ifindex;

	return in && !bpf_map_lookup_elem(&ipsnat_dev, &in);
}

/* ipsnat_dev's generation (maps/config.h); read before ipsnat_dev, so that what a packet decides
 * from ipsnat_dev is never older than the generation it stamps. */
static __always_inline struct ipsnat_dev_gen dev_gen_now(void)
{
	__u32 zero = 0;
	struct ipsnat_dev_gen none = {};
	struct ipsnat_dev_gen *g = bpf_map_lookup_elem(&ipsnat_dev_gen, &zero);

	return g ? *g : none;
}

#endif
