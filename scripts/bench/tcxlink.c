// SPDX-License-Identifier: GPL-2.0
/* Attaches a loaded TC program to a device's tcx hook (Linux 6.6+) and pins the link, for the
 * bench variant Ct (docs/benchmarks.md): ipsnat's own programs on tcx instead of clsact filters.
 * libbpf 1.1 has no tcx API; bpf_link_create passes the attach type through.
 *
 *   tcxlink PROG_ID IFINDEX ingress|egress PIN
 *
 * Run it inside the namespace that owns the ifindex. The link lives while PIN exists. */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* enum bpf_attach_type of Linux 6.6 (uapi, fixed); the libbpf 1.1 headers predate them. */
#define TCX_INGRESS 46
#define TCX_EGRESS 47

int main(int argc, char **argv)
{
	if (argc != 5 || (strcmp(argv[3], "ingress") && strcmp(argv[3], "egress"))) {
		fprintf(stderr, "usage: tcxlink PROG_ID IFINDEX ingress|egress PIN\n");
		return 2;
	}
	int prog = bpf_prog_get_fd_by_id((__u32)strtoul(argv[1], NULL, 0));
	if (prog < 0) {
		fprintf(stderr, "tcxlink: program %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int type = strcmp(argv[3], "ingress") ? TCX_EGRESS : TCX_INGRESS;
	int link = bpf_link_create(prog, atoi(argv[2]), type, NULL);
	if (link < 0) {
		fprintf(stderr, "tcxlink: tcx %s link on ifindex %s: %s\n", argv[3], argv[2], strerror(errno));
		return 1;
	}
	if (bpf_obj_pin(link, argv[4])) {
		fprintf(stderr, "tcxlink: pinning %s: %s\n", argv[4], strerror(errno));
		return 1;
	}
	close(link);
	close(prog);
	return 0;
}
