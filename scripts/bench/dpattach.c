// SPDX-License-Identifier: GPL-2.0
/* Fallback attacher for scripts/bench/run.sh while `ipsnat attach` cannot run: loads ipsnat's
 * own BPF object (the real datapath), pins its maps under PIN_ROOT, marks DEV as a route-mode
 * device, writes ONE SPD entry by hand (DST_PREFIX -> NAPT to NAT_ADDR, first-form spd_nat map)
 * and attaches tc_snat_egress / tc_rev_ingress to DEV's TC egress / ingress. Results measured this
 * way are labelled "datapath attached by the bench" in the report: the SPD mirror and the attacher
 * are not part of them.
 *
 *   dpattach OBJ PIN_ROOT DEV NAT_ADDR DST_ADDR/LEN */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maps/config.h"
#include "maps/spd.h"

static int fail(const char *what)
{
	fprintf(stderr, "dpattach: %s: %s\n", what, strerror(errno));
	return 1;
}

static int attach(int ifindex, enum bpf_tc_attach_point where, struct bpf_program *prog)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = where);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(prog));
	int err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return err;
	return bpf_tc_attach(&hook, &opts);
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: dpattach OBJ PIN_ROOT DEV NAT_ADDR DST_ADDR/LEN\n");
		return 2;
	}
	int ifindex = (int)if_nametoindex(argv[3]);
	char dst[64];
	snprintf(dst, sizeof(dst), "%s", argv[5]);
	char *slash = strchr(dst, '/');
	struct in_addr nat, net;
	if (!ifindex || !slash || inet_pton(AF_INET, argv[4], &nat) != 1)
		return fail("bad DEV, NAT_ADDR or DST_ADDR/LEN");
	*slash = 0;
	if (inet_pton(AF_INET, dst, &net) != 1)
		return fail("bad DST_ADDR");

	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = argv[2]);
	struct bpf_object *obj = bpf_object__open_file(argv[1], &oo);
	if (!obj)
		return fail("open");
	if (bpf_object__load(obj))
		return fail("load");

	struct bpf_map *devm = bpf_object__find_map_by_name(obj, "ipsnat_dev");
	struct bpf_map *spdm = bpf_object__find_map_by_name(obj, "spd_nat");
	if (!devm || !spdm) {
		errno = ENOENT;
		return fail("maps ipsnat_dev / spd_nat (first-form SPD schema) not in the object");
	}
	__u32 key = (__u32)ifindex;
	struct ipsnat_dev_cfg dc = {.mode = IPSNAT_DEV_ROUTE, .if_id = 0};
	if (bpf_map_update_elem(bpf_map__fd(devm), &key, &dc, BPF_ANY))
		return fail("ipsnat_dev update");
	struct spd_dst_key sk = {.prefixlen = (__u32)atoi(slash + 1), .daddr = net.s_addr};
	struct spd_nat_target t = {.nat_addr = nat.s_addr, .nat_mask = 0xffffffffu, .kind = SPD_NAT_NAPT,
				   .policy_index = 1, .reqid = 1};
	if (bpf_map_update_elem(bpf_map__fd(spdm), &sk, &t, BPF_ANY))
		return fail("spd_nat update");

	struct bpf_program *eg = bpf_object__find_program_by_name(obj, "tc_snat_egress");
	struct bpf_program *in = bpf_object__find_program_by_name(obj, "tc_rev_ingress");
	if (!eg || !in || attach(ifindex, BPF_TC_EGRESS, eg) || attach(ifindex, BPF_TC_INGRESS, in))
		return fail("tc attach");
	bpf_object__close(obj); /* the filters keep the programs, the pins keep the maps */
	return 0;
}
