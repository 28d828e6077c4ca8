// SPDX-License-Identifier: GPL-2.0
/* Times one loaded TC program alone with BPF_PROG_TEST_RUN, a fresh packet per run (repeat = 1,
 * so an in-place rewrite by one run never feeds the next), for the profile in docs/benchmarks.md.
 *
 *   progtime --id ID [--ifindex N] [--runs N] [--flows N | --new] [--src A] [--dst A] [--dport P]
 *
 * Run it inside the namespace that owns the ifindex (the kernel resolves it in the caller's
 * namespace). Prints "runs=N mean_ns=X median_ns=Y p90_ns=Z" and the program's return codes. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	uint8_t payload[18];
} __attribute__((packed));

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	return sum;
}

static void build(struct frame *f, uint32_t s, uint32_t d, uint16_t sport, uint16_t dport)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->eth.h_dest, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(f->eth.h_source, "\x02\x00\x00\x00\x00\x01", 6);
	f->eth.h_proto = htons(ETH_P_IP);
	f->ip.version = 4;
	f->ip.ihl = 5;
	f->ip.ttl = 63;
	f->ip.protocol = IPPROTO_UDP;
	f->ip.tot_len = htons(sizeof(*f) - sizeof(f->eth));
	f->ip.saddr = s;
	f->ip.daddr = d;
	f->ip.check = htons(fold(add(0, &f->ip, sizeof(f->ip))));
	f->udp.source = htons(sport);
	f->udp.dest = htons(dport);
	f->udp.len = htons(sizeof(f->udp) + sizeof(f->payload));
	memcpy(f->payload, "ipsnat-bench-data", 17);
	uint32_t sum = add(0, &f->ip.saddr, 8) + IPPROTO_UDP + sizeof(f->udp) + sizeof(f->payload);
	sum = add(sum, &f->udp, sizeof(f->udp) + sizeof(f->payload));
	uint16_t c = fold(sum);
	f->udp.check = htons(c ? c : 0xffff);
}

static int cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int id = 0, ifindex = 0, runs = 100000, flows = 1000, is_new = 0, dport = 9;
	const char *src = "192.168.1.10", *dst = "10.0.0.1";
	static const struct option lo[] = {
		{"id", required_argument, 0, 'i'},   {"ifindex", required_argument, 0, 'x'},
		{"runs", required_argument, 0, 'r'}, {"flows", required_argument, 0, 'f'},
		{"new", no_argument, 0, 'n'},        {"src", required_argument, 0, 's'},
		{"dst", required_argument, 0, 'd'},  {"dport", required_argument, 0, 'p'},
		{0, 0, 0, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'i': id = atoi(optarg); break;
		case 'x': ifindex = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'f': flows = atoi(optarg); break;
		case 'n': is_new = 1; break;
		case 's': src = optarg; break;
		case 'd': dst = optarg; break;
		case 'p': dport = atoi(optarg); break;
		default: return 2;
		}
	}
	uint32_t s, d;
	if (!id || runs < 1 || flows < 1 || inet_pton(AF_INET, src, &s) != 1 || inet_pton(AF_INET, dst, &d) != 1) {
		fprintf(stderr, "usage: progtime --id ID [--ifindex N] [--runs N] [--flows N | --new]\n");
		return 2;
	}
	int fd = bpf_prog_get_fd_by_id((uint32_t)id);
	if (fd < 0) {
		perror("progtime: bpf_prog_get_fd_by_id");
		return 1;
	}
	uint32_t *dur = calloc((size_t)runs, sizeof(*dur));
	unsigned rc_count[8] = {0};
	struct frame f, out;
	struct __sk_buff ctx = {.ifindex = (uint32_t)ifindex};
	for (int i = 0; i < runs; i++) {
		uint32_t dd = d;
		uint16_t sport = (uint16_t)(1024 + i % flows);
		if (is_new) {
			sport = (uint16_t)(1024 + i % 64000);
			dd = htonl(ntohl(d) + (uint32_t)(i / 64000));
		}
		build(&f, s, dd, sport, (uint16_t)dport);
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = &f, .data_size_in = sizeof(f), .data_out = &out,
			    .data_size_out = sizeof(out), .ctx_in = ifindex ? &ctx : NULL,
			    .ctx_size_in = ifindex ? sizeof(ctx) : 0, .repeat = 1);
		if (bpf_prog_test_run_opts(fd, &o) < 0) {
			perror("progtime: BPF_PROG_TEST_RUN");
			return 1;
		}
		dur[i] = o.duration;
		rc_count[o.retval < 7 ? o.retval : 7]++;
	}
	double sum = 0;
	for (int i = 0; i < runs; i++)
		sum += dur[i];
	qsort(dur, (size_t)runs, sizeof(*dur), cmp);
	printf("runs=%d mean_ns=%.1f median_ns=%u p90_ns=%u", runs, sum / runs, dur[runs / 2],
	       dur[runs * 9 / 10]);
	for (int r = 0; r < 8; r++)
		if (rc_count[r])
			printf(" rc%d%s=%u", r, r == 7 ? "+" : "", rc_count[r]);
	printf("\n");
	return 0;
}
