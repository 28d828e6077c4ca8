// SPDX-License-Identifier: GPL-2.0
/* Traffic generator and sink for scripts/bench/run.py.
 *
 * The metric is CPU time of the sending thread per packet (CLOCK_THREAD_CPUTIME_ID): on veth the
 * receive path of every namespace the packet crosses (gw forwarding, NAT, dst delivery) runs in
 * softirq on the sending CPU, inline with the send call, and this kernel charges that time to the
 * current task (no CONFIG_IRQ_TIME_ACCOUNTING). All packets are built before the clock starts.
 *
 *   sender udp  --src A --dst A --dport P --flows N --packets P [--new --base K] [--cpu C]
 *   sender tcp  --dst A --dport P --count N [--no-wait] [--cpu C]
 *   sender sink-udp --port P          (bound socket nobody reads: receive path ends in the socket)
 *   sender sink-tcp --port P          (accepts and closes)
 *
 * Prints one line "cpu_ns=N wall_ns=N packets=N errors=N"; for tcp, packets counts connections
 * (one unit = socket + connect + close).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_LEN 18 /* 20 + 8 + 18 = 46 bytes of IP: a minimal Ethernet frame */
#define BATCH 64
#define MAX_TIME_NS (20ull * 1000 * 1000 * 1000) /* hard bound on any timed loop */

struct pkt {
	struct iphdr ip;
	struct udphdr udp;
	uint8_t payload[PAYLOAD_LEN];
} __attribute__((packed));

static void die(const char *what)
{
	fprintf(stderr, "sender: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin_cpu(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
}

static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void build_udp(struct pkt *p, uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport)
{
	memset(p, 0, sizeof(*p));
	p->ip.version = 4;
	p->ip.ihl = 5;
	p->ip.ttl = 64;
	p->ip.protocol = IPPROTO_UDP;
	p->ip.tot_len = htons(sizeof(*p));
	p->ip.saddr = saddr;
	p->ip.daddr = daddr; /* id 0 and check 0: the kernel fills both for IP_HDRINCL */
	p->udp.source = htons(sport);
	p->udp.dest = htons(dport);
	p->udp.len = htons(sizeof(p->udp) + PAYLOAD_LEN);
	memcpy(p->payload, "ipsnat-bench-data", 17);

	uint32_t sum = 0;
	sum = csum_add(sum, &p->ip.saddr, 4);
	sum = csum_add(sum, &p->ip.daddr, 4);
	sum += IPPROTO_UDP;
	sum += sizeof(p->udp) + PAYLOAD_LEN;
	sum = csum_add(sum, &p->udp, sizeof(p->udp) + PAYLOAD_LEN);
	uint16_t c = csum_fold(sum);
	p->udp.check = htons(c ? c : 0xffff);
}

struct opts {
	const char *src, *dst;
	int dport, flows, cpu, is_new, no_wait;
	long packets, base, count;
};

/* Established: flows differ by source port, the timed loop cycles through them after one
 * untimed warm-up pass (so conntrack entries exist). New: tuple k = base + i is unique over the
 * whole run: source port 1024 + k % 64000, destination 10.x.y.z-style address daddr + k / 64000
 * (dst accepts its whole prefix on lo). */
static int run_udp(const struct opts *o)
{
	uint32_t saddr, daddr;
	if (inet_pton(AF_INET, o->src, &saddr) != 1 || inet_pton(AF_INET, o->dst, &daddr) != 1) {
		fprintf(stderr, "sender: bad --src/--dst\n");
		return 2;
	}
	long n = o->is_new ? o->packets : o->flows;
	struct pkt *pkts = calloc((size_t)n, sizeof(*pkts));
	struct sockaddr_in *to = calloc((size_t)n, sizeof(*to));
	if (!pkts || !to)
		die("calloc");
	for (long i = 0; i < n; i++) {
		uint32_t d = daddr;
		uint16_t sport = (uint16_t)(1024 + i);
		if (o->is_new) {
			long k = o->base + i;
			sport = (uint16_t)(1024 + k % 64000);
			d = htonl(ntohl(daddr) + (uint32_t)(k / 64000));
		}
		build_udp(&pkts[i], saddr, d, sport, (uint16_t)o->dport);
		to[i].sin_family = AF_INET;
		to[i].sin_addr.s_addr = d;
	}

	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (fd < 0)
		die("socket(raw)");
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	long sent = 0, errors = 0;

	if (!o->is_new) { /* warm-up: create the flows' state everywhere */
		for (long i = 0; i < n; i++)
			if (sendto(fd, &pkts[i], sizeof(pkts[i]), 0, (struct sockaddr *)&to[i], sizeof(to[i])) < 0)
				errors++;
		usleep(20000);
	}

	uint64_t wall0 = now_ns(CLOCK_MONOTONIC);
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	long idx = 0;
	while (sent < o->packets) {
		int b = 0;
		for (; b < BATCH && sent + b < o->packets; b++) {
			long i = idx++ % n;
			iov[b].iov_base = &pkts[i];
			iov[b].iov_len = sizeof(pkts[i]);
			memset(&msgs[b].msg_hdr, 0, sizeof(msgs[b].msg_hdr));
			msgs[b].msg_hdr.msg_name = &to[i];
			msgs[b].msg_hdr.msg_namelen = sizeof(to[i]);
			msgs[b].msg_hdr.msg_iov = &iov[b];
			msgs[b].msg_hdr.msg_iovlen = 1;
		}
		int r = sendmmsg(fd, msgs, (unsigned)b, 0);
		if (r <= 0) {
			errors++;
			r = 1; /* a message that fails is skipped, not retried forever */
		}
		sent += r;
		idx -= b - r;
		if (now_ns(CLOCK_MONOTONIC) - wall0 > MAX_TIME_NS)
			break;
	}
	uint64_t cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	uint64_t wall1 = now_ns(CLOCK_MONOTONIC);
	printf("cpu_ns=%llu wall_ns=%llu packets=%ld errors=%ld\n", (unsigned long long)(cpu1 - cpu0),
	       (unsigned long long)(wall1 - wall0), sent, errors);
	close(fd);
	free(pkts);
	free(to);
	return sent == o->packets ? 0 : 1;
}

/* One unit = socket + connect + close (FIN; the client keeps TIME_WAIT). On veth the handshake
 * completes inside connect() (the SYN-ACK is processed when connect releases the socket), so the
 * poll below normally returns at once. --no-wait (the Z calibration, where gw drops the SYN)
 * closes right after the SYN went out. The listener in dst accepts and closes on another CPU. */
static int run_tcp(const struct opts *o)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->dport)};
	if (inet_pton(AF_INET, o->dst, &to.sin_addr) != 1) {
		fprintf(stderr, "sender: bad --dst\n");
		return 2;
	}
	long done = 0, errors = 0;
	int last_err = 0;
	uint64_t wall0 = now_ns(CLOCK_MONOTONIC);
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (long i = 0; i < o->count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0)
			die("socket(tcp)");
		int r = connect(fd, (struct sockaddr *)&to, sizeof(to));
		if (r < 0 && errno != EINPROGRESS) {
			last_err = errno;
			errors++;
		} else if (o->no_wait) {
			done++;
		} else {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (r == 0 || (poll(&pfd, 1, 1000) == 1 &&
				       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)) {
				done++;
			} else {
				last_err = soerr ? soerr : ETIMEDOUT;
				errors++;
			}
		}
		close(fd);
		if (errors > 10 || now_ns(CLOCK_MONOTONIC) - wall0 > MAX_TIME_NS)
			break;
	}
	uint64_t cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	uint64_t wall1 = now_ns(CLOCK_MONOTONIC);
	printf("cpu_ns=%llu wall_ns=%llu packets=%ld errors=%ld\n", (unsigned long long)(cpu1 - cpu0),
	       (unsigned long long)(wall1 - wall0), done, errors);
	if (errors)
		fprintf(stderr, "sender: connect to %s:%d failed %ld times (last: %s)\n", o->dst, o->dport,
			errors, strerror(last_err));
	return done == o->count ? 0 : 1;
}

static _Noreturn void run_sink(int port, int tcp)
{
	int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (!tcp) {
		int small = 4096; /* fills at once: later datagrams are dropped at the socket, cheaply */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		for (;;)
			pause();
	}
	if (listen(fd, 4096) < 0)
		die("listen");
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c >= 0)
			close(c);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: sender udp|tcp|sink-udp|sink-tcp [options]\n");
		return 2;
	}
	const char *mode = argv[1];
	struct opts o = {.src = "192.168.1.10", .dst = "10.0.0.1", .dport = 9, .flows = 1000, .cpu = -1,
			 .packets = 100000, .count = 1000};
	static const struct option lo[] = {
		{"src", required_argument, 0, 's'},    {"dst", required_argument, 0, 'd'},
		{"dport", required_argument, 0, 'p'},  {"port", required_argument, 0, 'p'},
		{"flows", required_argument, 0, 'f'},  {"packets", required_argument, 0, 'n'},
		{"new", no_argument, 0, 'N'},          {"base", required_argument, 0, 'b'},
		{"count", required_argument, 0, 'c'},  {"cpu", required_argument, 0, 'C'},
		{"no-wait", no_argument, 0, 'W'},
		{0, 0, 0, 0},
	};
	int ch;
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 's': o.src = optarg; break;
		case 'd': o.dst = optarg; break;
		case 'p': o.dport = atoi(optarg); break;
		case 'f': o.flows = atoi(optarg); break;
		case 'n': o.packets = atol(optarg); break;
		case 'N': o.is_new = 1; break;
		case 'b': o.base = atol(optarg); break;
		case 'c': o.count = atol(optarg); break;
		case 'C': o.cpu = atoi(optarg); break;
		case 'W': o.no_wait = 1; break;
		default: return 2;
		}
	}
	if (o.flows < 1 || o.flows > 64000 || o.packets < 1 || o.count < 1) {
		fprintf(stderr, "sender: --flows 1..64000, --packets and --count >= 1\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pin_cpu(o.cpu);
	if (!strcmp(mode, "udp"))
		return run_udp(&o);
	if (!strcmp(mode, "tcp"))
		return run_tcp(&o);
	if (!strcmp(mode, "sink-udp"))
		run_sink(o.dport, 0);
	if (!strcmp(mode, "sink-tcp"))
		run_sink(o.dport, 1);
	fprintf(stderr, "sender: unknown mode %s\n", mode);
	return 2;
}
