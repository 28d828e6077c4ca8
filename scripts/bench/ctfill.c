// SPDX-License-Identifier: GPL-2.0
/* Fills or empties ipsnat's pinned conntrack map for scripts/bench/run.py, with the schema of
 * maps/ct.h (compiled against the repository's header, so a schema change breaks this build
 * rather than the numbers).
 *
 *   ctfill fill  PIN ENTRIES   ENTRIES/2 established TCP flows, both directions each
 *   ctfill flush PIN           delete every entry of any hash map (between new-flow runs)
 *   ctfill count PIN
 *
 * Filler flows: inside 192.168.128.0 + k/60000, remote 10.200.0.0 + k/60000 port 443, NAT address
 * 10.20.30.2 port 1024 + k%60000: none of them is a tuple the benchmark sends. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maps/ct.h"

#define CHUNK 8192

static int map_fd(const char *pin)
{
	int fd = bpf_obj_get(pin);
	if (fd < 0) {
		fprintf(stderr, "ctfill: %s: %s\n", pin, strerror(errno));
		exit(1);
	}
	return fd;
}

static long count(int fd)
{
	struct ipsnat_ct_key k, next;
	long n = 0;
	void *prev = NULL;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		n++;
		k = next;
		prev = &k;
	}
	return n;
}

static int fill(int fd, long entries)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	__u64 now = (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
	struct ipsnat_ct_key *keys = calloc(CHUNK, sizeof(*keys));
	struct ipsnat_ct_entry *vals = calloc(CHUNK, sizeof(*vals));
	if (!keys || !vals)
		return 1;
	__be32 nat = inet_addr("10.20.30.2");
	long flows = entries / 2, k = 0;
	while (k < flows) {
		__u32 n = 0;
		for (; n + 1 < CHUNK && k < flows; k++) {
			__be32 inside = htonl(ntohl(inet_addr("192.168.128.0")) + (uint32_t)(k / 60000));
			__be32 remote = htonl(ntohl(inet_addr("10.200.0.0")) + (uint32_t)(k / 60000));
			__be16 port = htons((uint16_t)(1024 + k % 60000));
			struct ipsnat_ct_key *o = &keys[n], *r = &keys[n + 1];
			struct ipsnat_ct_entry *ov = &vals[n], *rv = &vals[n + 1];
			memset(o, 0, 2 * sizeof(*o));
			memset(ov, 0, 2 * sizeof(*ov));
			*o = (struct ipsnat_ct_key){.saddr = inside, .daddr = remote, .sport = port,
						    .dport = htons(443), .proto = IPPROTO_TCP, .dir = IPSNAT_CT_ORIG};
			*ov = (struct ipsnat_ct_entry){.xlat_addr = nat, .xlat_port = port, .kind = IPSNAT_CT_KIND_NAPT,
						       .seen = IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK,
						       .created_ns = now, .last_ns = now, .packets = 1, .bytes = 60};
			*r = ct_partner_key(o, ov);
			*rv = (struct ipsnat_ct_entry){.xlat_addr = inside, .xlat_port = port, .kind = IPSNAT_CT_KIND_NAPT,
						       .seen = IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK,
						       .created_ns = now, .last_ns = now, .packets = 1, .bytes = 60};
			n += 2;
		}
		__u32 cnt = n;
		if (bpf_map_update_batch(fd, keys, vals, &cnt, NULL) < 0) {
			fprintf(stderr, "ctfill: update_batch after %ld flows: %s\n", k, strerror(errno));
			return 1;
		}
	}
	return 0;
}

/* Any hash map: keys of the map's own size, so the floors' rw_flows empties the same way. */
static int flush(int fd)
{
	struct bpf_map_info info = {0};
	__u32 info_len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len) < 0 || !info.key_size) {
		fprintf(stderr, "ctfill: map info: %s\n", strerror(errno));
		return 1;
	}
	char *keys = calloc(CHUNK, info.key_size);
	if (!keys)
		return 1;
	for (;;) {
		__u32 n = 0;
		void *prev = NULL;
		while (n < CHUNK && bpf_map_get_next_key(fd, prev, keys + (size_t)n * info.key_size) == 0) {
			prev = keys + (size_t)n * info.key_size;
			n++;
		}
		if (!n)
			return 0;
		__u32 cnt = n;
		if (bpf_map_delete_batch(fd, keys, &cnt, NULL) < 0 && errno != ENOENT) {
			fprintf(stderr, "ctfill: delete_batch: %s\n", strerror(errno));
			return 1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: ctfill fill PIN ENTRIES | flush PIN | count PIN\n");
		return 2;
	}
	int fd = map_fd(argv[2]);
	if (!strcmp(argv[1], "fill") && argc == 4)
		return fill(fd, atol(argv[3]));
	if (!strcmp(argv[1], "flush"))
		return flush(fd);
	if (!strcmp(argv[1], "count")) {
		printf("%ld\n", count(fd));
		return 0;
	}
	fprintf(stderr, "ctfill: unknown mode %s\n", argv[1]);
	return 2;
}
