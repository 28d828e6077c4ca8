/* Runtime knobs. Map "ipsnat_cfg": a one-entry ARRAY (key 0) written by the loader/daemon; every
 * field that is 0 means "use the default" below, so an untouched map is a working configuration.
 * Map "ipsnat_dev": a HASH ifindex -> struct ipsnat_dev_cfg saying how each attached device is
 * used; a device without an entry is treated as policy-based (the strict choice: reverse
 * translation only for packets that arrived with an SA). */
#ifndef IPSNAT_MAPS_CONFIG_H
#define IPSNAT_MAPS_CONFIG_H

#include "maps/common.h"

#define IPSNAT_DEF_PORT_MIN 1024
#define IPSNAT_DEF_PORT_MAX 65535
/* Timeouts in seconds (used by the userspace GC; see docs/datapath.md for the choice). */
#define IPSNAT_DEF_TCP_SYN_S 60       /* SYN seen, no reply yet */
#define IPSNAT_DEF_TCP_EST_S 7440     /* RFC 5382 REQ-5: at least 2 h 4 min */
#define IPSNAT_DEF_TCP_FIN_S 240      /* FIN seen (one or both sides): RFC 5382 transitory 4 min */
#define IPSNAT_DEF_TCP_RST_S 10       /* RST seen */
#define IPSNAT_DEF_UDP_S 60           /* one direction only */
#define IPSNAT_DEF_UDP_STREAM_S 300   /* replies seen: RFC 4787 REQ-5 recommends >= 5 min */
#define IPSNAT_DEF_ICMP_S 60          /* RFC 5508 REQ-1: at least 60 s */
#define IPSNAT_DEF_OTHER_S 600

struct ipsnat_config {
	__u16 port_min; /* NAPT port / echo-id range on the NAT address, inclusive */
	__u16 port_max;
	__u32 flags;    /* reserved, 0 */
	__u32 tcp_syn_s;
	__u32 tcp_est_s;
	__u32 tcp_fin_s;
	__u32 tcp_rst_s;
	__u32 udp_s;
	__u32 udp_stream_s;
	__u32 icmp_s;
	__u32 other_s;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_config, 40);

enum ipsnat_dev_mode {
	IPSNAT_DEV_UNSET = 0,  /* treated as POLICY */
	IPSNAT_DEV_ROUTE = 1,  /* xfrm interface / VTI: everything on the device was decrypted */
	IPSNAT_DEV_POLICY = 2, /* uplink of policy-based SAs: reverse-translate only with an SA */
};

#define IPSNAT_DEV_MAX_ENTRIES 256

enum ipsnat_dev_flags {
	/* BINAT (`attach --binat`): a connection the far side opens through this device's SAs to an
	 * address of a 1:1 map's NAT block reaches the LAN host mapped to it (bpf/lib/binat.h). On a
	 * route-mode device also NPTv6, which is stateless and so reachable both ways (lib/xlate.h,
	 * ipv6_on_device): without the flag IPv6 is not translated. */
	IPSNAT_DEV_BINAT = 1,
};

struct ipsnat_dev_cfg {
	__u32 mode;  /* enum ipsnat_dev_mode */
	__u32 if_id; /* xfrm interface if_id handed to the SPD lookup (0: none) */
	__u32 mark;  /* flow mark the device's own xfrm lookup uses (VTI: its okey; 0: the skb's) */
	/* Masquerade (`attach --masquerade`, policy mode): inside sources of packets that leave the
	 * device with no IPsec out-policy covering them are translated to masq_addr (0: off), NAPT
	 * ports from masq_port_min..masq_port_max (host order, inclusive; outside the host's
	 * ip_local_port_range, so never a port of the gateway's own connections). */
	__be32 masq_addr;
	__u16 masq_port_min;
	__u16 masq_port_max;
	__u32 flags; /* enum ipsnat_dev_flags */
};
IPSNAT_ASSERT_SIZE(struct ipsnat_dev_cfg, 24);

/* Map "ipsnat_dev_gen": a one-entry ARRAY (key 0) that tells the datapath when ipsnat_dev changed,
 * so that an established masqueraded flow needs no ipsnat_dev lookup (bpf/lib/masq.h). Every write
 * or removal in ipsnat_dev goes between two writes of it (loader/pins/dev_map.h): before, gen + 1
 * with masq_ifindex 0; after, gen + 2 with the device ipsnat_dev then holds. The guard stamps a
 * masqueraded flow's entries with the gen under which it found the entry's address to be its
 * device's masquerade address; while gen and masq_ifindex are unchanged, no device's masquerade
 * changed and the one masquerading device is the one the stamp was made on. It belongs with
 * ipsnat_ct (the same schema, PinStore::schema_of): a new map starting at 0 again must never meet
 * entries stamped by the old one. */
struct ipsnat_dev_gen {
	__u32 gen;          /* 0: ipsnat_dev was never written through loader/pins/dev_map.h */
	__u32 masq_ifindex; /* the only device with a masquerade address (masq_addr), 0: none or several */
};
IPSNAT_ASSERT_SIZE(struct ipsnat_dev_gen, 8);

#endif
