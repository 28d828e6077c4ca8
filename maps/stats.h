/* Why the datapath did what it did: one counter per reason, per CPU. The list is an X-macro so
 * the BPF enum and the loader's names come from one place. Map: "ipsnat_stats", a PERCPU_ARRAY
 * indexed by enum ipsnat_reason. Append only: reordering changes pinned counters' meaning. */
#ifndef IPSNAT_MAPS_STATS_H
#define IPSNAT_MAPS_STATS_H

#include "maps/common.h"

#define IPSNAT_REASONS(X)                                                        \
	X(PASS_NOT_IPV4, "pass-not-ipv4")                                        \
	X(PASS_NOT_COVERED, "pass-not-covered")                                  \
	X(PASS_ALREADY_OK, "pass-already-ok")                                    \
	X(XLATE_SNAT, "xlate-snat")                                              \
	X(XLATE_REVERSE, "xlate-reverse")                                        \
	X(DROP_TRUNCATED, "drop-truncated")                                      \
	X(DROP_LEAK_GUARD, "drop-leak-guard")                                    \
	X(DROP_MALFORMED, "drop-malformed")                                      \
	X(PASS_NO_TARGET, "pass-no-target")                                      \
	X(PASS_NOT_INSIDE, "pass-not-inside")                                    \
	X(PASS_PROTO, "pass-unsupported-proto")                                  \
	X(PASS_NO_CT, "pass-no-ct")                                              \
	X(PASS_NO_SA, "pass-no-sa")                                              \
	X(PASS_IPSEC, "pass-ipsec")                                              \
	X(PASS_FRAG_UNKNOWN, "pass-frag-unknown")                                \
	X(DROP_FRAG_NO_FIRST, "drop-frag-no-first")                              \
	X(DROP_NO_PORT, "drop-no-port")                                          \
	X(DROP_CT_FULL, "drop-ct-full")                                          \
	X(DROP_REWRITE, "drop-rewrite-failed")                                   \
	X(XLATE_ICMP_ERROR, "xlate-icmp-error")                                  \
	X(XLATE_FRAG, "xlate-frag")                                              \
	X(PASS_ICMP_NO_CT, "pass-icmp-no-ct")                                    \
	X(PASS_MALFORMED, "pass-malformed")                                      \
	X(XLATE_ICMP_LOCAL, "xlate-icmp-local")                                  \
	X(XLATE_FORWARD, "xlate-forward")                                        \
	X(PASS_WRONG_SA, "pass-wrong-sa")                                        \
	X(PASS_CT_STALE, "pass-ct-stale")                                        \
	X(DROP_SPD_INCOMPLETE, "drop-spd-incomplete")                            \
	X(DROP_LEAK_GUARD6, "drop-leak-guard-ipv6")                              \
	X(DROP_GUARD_UNPARSED, "drop-guard-unparsed")                              \
	X(DROP_UNSOLICITED, "drop-unsolicited")                                  \
	X(PASS_MASQUERADED, "pass-masqueraded")                                  \
	X(PASS_LOOPBACK, "pass-loopback") \
	X(DROP_SPD_UNREPRESENTABLE, "drop-spd-unrepresentable") \
	X(XLATE_MASQ, "xlate-masquerade") \
	X(DROP_XDP_SPOOF, "drop-xdp-spoof")                                      \
	X(PASS_XDP_IPSEC, "pass-xdp-ipsec")                                      \
	X(PASS_XDP_KERNEL, "pass-xdp-kernel-decides")                            \
	X(XLATE_BINAT, "xlate-binat")                                            \
	X(PASS_REROUTE_PORTS, "pass-reroute-ports")                              \
	X(XLATE_NPT6, "xlate-npt6")                                              \
	X(XLATE_NPT6_REVERSE, "xlate-npt6-reverse")                              \
	X(DROP_NPT6_UNMAPPABLE, "drop-npt6-unmappable")                          \
	X(NAT_POOL_ADDR_FULL, "nat-pool-address-full")                          \
	X(XLATE_NAT66, "xlate-nat66")                                            \
	X(XLATE_NAT66_REVERSE, "xlate-nat66-reverse")                            \
	X(DROP_ICMP_NO_FLOW, "drop-icmp-no-flow")

enum ipsnat_reason {
#define IPSNAT_REASON_ENUM(name, text) IPSNAT_R_##name,
	IPSNAT_REASONS(IPSNAT_REASON_ENUM)
#undef IPSNAT_REASON_ENUM
	IPSNAT_R_MAX
};

#define IPSNAT_STATS_MAX_ENTRIES 64

struct ipsnat_counter {
	__u64 packets;
	__u64 bytes;
};
IPSNAT_ASSERT_SIZE(struct ipsnat_counter, 16);

#endif
