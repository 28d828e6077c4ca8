/* The XDP pre-filter's drop set (bpf/lib/spoof.h): IPv4 (source, destination) boxes whose cleartext
 * the kernel's inbound policy check refuses whether the packet is delivered locally (`in`) or
 * forwarded (`fwd`). The loader (loader/spd/spoof.*) derives them from the SPD on every change
 * (docs/datapath.md, "XDP pre-filter"). Maps: "xdp_spoof4", an ARRAY of two sets, and
 * "xdp_spoof_act", an ARRAY of one __u32: the index of the set the program reads. The loader writes
 * the other set completely, then flips the index, so the program never reads a half-written set. */
#ifndef IPSNAT_MAPS_SPOOF_H
#define IPSNAT_MAPS_SPOOF_H

#include "maps/common.h"

/* Bump on any layout or meaning change of xdp_spoof4 / xdp_spoof_act. */
#define IPSNAT_SPOOF_SCHEMA 1
/* Boxes per set: each packet not passed earlier is compared with every one of them. A larger
 * drop set is cut to its first boxes (dropping less is always safe: the kernel still decides). */
#define XDP_SPOOF_MAX 32

struct xdp_spoof_box {
	__be32 src; /* src & src_mask */
	__be32 src_mask;
	__be32 dst; /* dst & dst_mask */
	__be32 dst_mask;
};
IPSNAT_ASSERT_SIZE(struct xdp_spoof_box, 16);

struct xdp_spoof_set {
	__u32 n; /* boxes in use, <= XDP_SPOOF_MAX */
	__u32 pad;
	struct xdp_spoof_box box[XDP_SPOOF_MAX];
};
IPSNAT_ASSERT_SIZE(struct xdp_spoof_set, 8 + 16 * XDP_SPOOF_MAX);

#endif
