// SPDX-License-Identifier: GPL-2.0
/* Traffic generator and sink for scripts/bench/run.py.
 *
 * The metric is CPU time of the sending thread per packet (CLOCK_THREAD_CPUTIME_ID): on veth the
 * receive path of every namespace the packet crosses (gw forwarding, NAT, dst delivery) runs in
 * softirq on the sending CPU, inline with the send call, and this kernel charges that time to the
 * current task (no CONFIG_IRQ_TIME_ACCOUNTING). All packets are built before the clock starts.
 *
 *   sender udp  --src A --dst A --dport P --flows N --packets P [--new --base K] [--cpu C]
 *               [--ns PATH ... --plan J,J,...]
 *   sender tcp  --dst A --dport P --count N [--no-wait] [--cpu C] [--ns PATH|--ns-no-wait PATH ... --plan ...]
 *   sender sink-udp --port P          (bound socket nobody reads: receive path ends in the socket)
 *   sender sink-tcp --port P          (accepts and closes)
 *
 * Prints one line "slice=K ns=J cpu_ns=N wall_ns=N packets=N errors=N steal_ns=N spin_ns=N" per
 * slice; for tcp, packets counts connections (one unit = socket + connect + close).
 *
 * Interleaved slices: with --ns PATH (repeated; --ns-no-wait PATH for a namespace whose SYNs die,
 * see run_tcp) and --plan J,J,... the sender runs one slice of --packets (--count) per plan entry
 * in namespace number J of the --ns list, in that order, in one process: every namespace's slices
 * meet the same slow phases of the vCPU. Without --ns: one slice where the sender was started.
 * steal_ns: /proc/stat steal of the sender's CPU during the slice. spin_ns: CPU time of a fixed
 * user-space loop just before it (the vCPU's speed then).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define MAX_NS 64
#define MAX_PLAN 8192
#define SPIN_ITERS (1u << 18)

struct opts {
	const char *src, *dst;
	int dport, flows, cpu, is_new, no_wait;
	long packets, base, count;
	int n_ns, plan_len;
	const char *ns[MAX_NS];
	int ns_no_wait[MAX_NS];
	int plan[MAX_PLAN];
};

/* One namespace the slices run in: its raw socket (UDP) and how many of its slices ran. */
struct target {
	int nsfd, rawfd, no_wait;
	long slices_done;
};

struct slice {
	uint64_t cpu_ns, wall_ns, steal_ns, spin_ns;
	long sent, errors;
};

static void enter_ns(const struct target *t)
{
	if (t->nsfd >= 0 && setns(t->nsfd, CLONE_NEWNET) < 0)
		die("setns");
}

/* Steal time of `cpu` so far (/proc/stat, in ns): what the hypervisor took from this vCPU. */
static uint64_t steal_ns(int cpu)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return 0;
	char want[16], line[512];
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	unsigned long long v[8] = {0};
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want))) {
			sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
			       &v[4], &v[5], &v[6], &v[7]);
			break;
		}
	}
	fclose(f);
	return v[7] * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* CPU time of a fixed user-space loop: the vCPU's speed right before a slice. It moves with
 * host-side contention the guest cannot see as steal, and not with anything in the network path. */
static uint64_t spin_probe(void)
{
	volatile uint64_t x = 1;
	uint64_t t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (uint32_t i = 0; i < SPIN_ITERS; i++)
		x = x * 6364136223846793005ull + 1442695040888963407ull;
	return now_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}

static void print_slice(int k, int ns, const struct slice *s)
{
	printf("slice=%d ns=%d cpu_ns=%llu wall_ns=%llu packets=%ld errors=%ld steal_ns=%llu spin_ns=%llu\n", k, ns,
	       (unsigned long long)s->cpu_ns, (unsigned long long)s->wall_ns, s->sent, s->errors,
	       (unsigned long long)s->steal_ns, (unsigned long long)s->spin_ns);
}

static void build_new(struct pkt *pkts, struct sockaddr_in *to, long n, uint32_t saddr, uint32_t daddr, long base,
		      int dport)
{
	for (long i = 0; i < n; i++) {
		long k = base + i;
		uint32_t d = htonl(ntohl(daddr) + (uint32_t)(k / 64000));
		build_udp(&pkts[i], saddr, d, (uint16_t)(1024 + k % 64000), (uint16_t)dport);
		to[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = d};
	}
}

/* The timed loop: `packets` packets cycling through pkts[0..n). */
static struct slice send_slice(int fd, const struct pkt *pkts, const struct sockaddr_in *to, long n, long packets)
{
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	struct slice s = {0};
	uint64_t wall0 = now_ns(CLOCK_MONOTONIC);
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	long idx = 0;
	while (s.sent < packets) {
		int b = 0;
		for (; b < BATCH && s.sent + b < packets; b++) {
			long i = idx++ % n;
			iov[b].iov_base = (void *)&pkts[i];
			iov[b].iov_len = sizeof(pkts[i]);
			memset(&msgs[b].msg_hdr, 0, sizeof(msgs[b].msg_hdr));
			msgs[b].msg_hdr.msg_name = (void *)&to[i];
			msgs[b].msg_hdr.msg_namelen = sizeof(to[i]);
			msgs[b].msg_hdr.msg_iov = &iov[b];
			msgs[b].msg_hdr.msg_iovlen = 1;
		}
		int r = sendmmsg(fd, msgs, (unsigned)b, 0);
		if (r <= 0) {
			s.errors++;
			r = 1; /* a message that fails is skipped, not retried forever */
		}
		s.sent += r;
		idx -= b - r;
		if (now_ns(CLOCK_MONOTONIC) - wall0 > MAX_TIME_NS)
			break;
	}
	s.cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	s.wall_ns = now_ns(CLOCK_MONOTONIC) - wall0;
	return s;
}

/* Established: flows differ by source port; every namespace gets one untimed warm-up pass (so
 * conntrack entries exist) before the first slice. New: tuple k = base + s * packets + i for a
 * namespace's s-th slice is unique per namespace over the whole run: source port 1024 + k % 64000,
 * destination daddr + k / 64000 (dst accepts its whole prefix on lo). */
static int run_udp(const struct opts *o, struct target *t, int cpu)
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
	if (!o->is_new)
		for (long i = 0; i < n; i++) {
			build_udp(&pkts[i], saddr, daddr, (uint16_t)(1024 + i), (uint16_t)o->dport);
			to[i] = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = daddr};
		}

	int n_t = o->n_ns ? o->n_ns : 1;
	for (int j = 0; j < n_t; j++) {
		enter_ns(&t[j]);
		t[j].rawfd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
		if (t[j].rawfd < 0)
			die("socket(raw)");
		int sndbuf = 4 << 20;
		setsockopt(t[j].rawfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		if (!o->is_new) /* warm-up: create the flows' state everywhere */
			for (long i = 0; i < n; i++)
				sendto(t[j].rawfd, &pkts[i], sizeof(pkts[i]), 0, (struct sockaddr *)&to[i], sizeof(to[i]));
	}
	if (!o->is_new)
		usleep(20000);

	int ok = 1;
	for (int k = 0; k < o->plan_len; k++) {
		struct target *tg = &t[o->plan[k]];
		if (o->is_new)
			build_new(pkts, to, n, saddr, daddr, o->base + tg->slices_done * o->packets, o->dport);
		tg->slices_done++;
		uint64_t steal0 = steal_ns(cpu);
		uint64_t spin = spin_probe();
		struct slice s = send_slice(tg->rawfd, pkts, to, n, o->packets);
		s.steal_ns = steal_ns(cpu) - steal0;
		s.spin_ns = spin;
		print_slice(k, o->plan[k], &s);
		ok &= s.sent == o->packets;
	}
	for (int j = 0; j < n_t; j++)
		close(t[j].rawfd);
	free(pkts);
	free(to);
	return ok ? 0 : 1;
}

/* One unit = socket + connect + close (FIN; the client keeps TIME_WAIT). On veth the handshake
 * completes inside connect() (the SYN-ACK is processed when connect releases the socket), so the
 * poll below normally returns at once. --no-wait (the Z calibration, where gw drops the SYN)
 * closes right after the SYN went out. The listener in dst accepts and closes on another CPU. */
static struct slice tcp_slice(const struct opts *o, const struct sockaddr_in *to, int no_wait)
{
	struct slice s = {0};
	int last_err = 0;
	uint64_t wall0 = now_ns(CLOCK_MONOTONIC);
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	for (long i = 0; i < o->count; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0)
			die("socket(tcp)");
		int r = connect(fd, (const struct sockaddr *)to, sizeof(*to));
		if (r < 0 && errno != EINPROGRESS) {
			last_err = errno;
			s.errors++;
		} else if (no_wait) {
			s.sent++;
		} else {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (r == 0 || (poll(&pfd, 1, 1000) == 1 &&
				       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)) {
				s.sent++;
			} else {
				last_err = soerr ? soerr : ETIMEDOUT;
				s.errors++;
			}
		}
		close(fd);
		if (s.errors > 10 || now_ns(CLOCK_MONOTONIC) - wall0 > MAX_TIME_NS)
			break;
	}
	s.cpu_ns = now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	s.wall_ns = now_ns(CLOCK_MONOTONIC) - wall0;
	if (s.errors)
		fprintf(stderr, "sender: connect to %s:%d failed %ld times (last: %s)\n", o->dst, o->dport, s.errors,
			strerror(last_err));
	return s;
}

static int run_tcp(const struct opts *o, struct target *t, int cpu)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->dport)};
	if (inet_pton(AF_INET, o->dst, &to.sin_addr) != 1) {
		fprintf(stderr, "sender: bad --dst\n");
		return 2;
	}
	int ok = 1;
	for (int k = 0; k < o->plan_len; k++) {
		struct target *tg = &t[o->plan[k]];
		enter_ns(tg); /* socket() takes the thread's namespace */
		uint64_t steal0 = steal_ns(cpu);
		uint64_t spin = spin_probe();
		struct slice s = tcp_slice(o, &to, tg->no_wait);
		s.steal_ns = steal_ns(cpu) - steal0;
		s.spin_ns = spin;
		print_slice(k, o->plan[k], &s);
		ok &= s.sent == o->count;
	}
	return ok ? 0 : 1;
}

/* --plan "0,2,1,...": the namespace (index into the --ns list) of each slice, in run order. */
static int parse_plan(struct opts *o, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	o->plan_len = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->plan_len == MAX_PLAN) {
			free(copy);
			return -1;
		}
		o->plan[o->plan_len++] = atoi(tok);
	}
	free(copy);
	return 0;
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
		{"no-wait", no_argument, 0, 'W'},     {"ns", required_argument, 0, 'S'},
		{"ns-no-wait", required_argument, 0, 'w'}, {"plan", required_argument, 0, 'P'},
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
		case 'S':
		case 'w':
			if (o.n_ns == MAX_NS) {
				fprintf(stderr, "sender: at most %d --ns\n", MAX_NS);
				return 2;
			}
			o.ns_no_wait[o.n_ns] = ch == 'w';
			o.ns[o.n_ns++] = optarg;
			break;
		case 'P':
			if (parse_plan(&o, optarg) < 0) {
				fprintf(stderr, "sender: --plan has more than %d slices\n", MAX_PLAN);
				return 2;
			}
			break;
		default: return 2;
		}
	}
	if (o.flows < 1 || o.flows > 64000 || o.packets < 1 || o.count < 1) {
		fprintf(stderr, "sender: --flows 1..64000, --packets and --count >= 1\n");
		return 2;
	}
	/* Without --ns: one slice in the namespace the sender was started in. */
	struct target t[MAX_NS];
	int n_t = o.n_ns ? o.n_ns : 1;
	for (int j = 0; j < n_t; j++) {
		t[j] = (struct target){.nsfd = -1, .rawfd = -1, .no_wait = o.n_ns ? o.ns_no_wait[j] : o.no_wait};
		if (o.n_ns && (t[j].nsfd = open(o.ns[j], O_RDONLY | O_CLOEXEC)) < 0)
			die(o.ns[j]);
	}
	if (!o.plan_len)
		for (int j = 0; j < n_t; j++)
			o.plan[o.plan_len++] = j;
	for (int k = 0; k < o.plan_len; k++)
		if (o.plan[k] < 0 || o.plan[k] >= n_t) {
			fprintf(stderr, "sender: --plan names namespace %d of %d\n", o.plan[k], n_t);
			return 2;
		}
	signal(SIGPIPE, SIG_IGN);
	pin_cpu(o.cpu);
	int cpu = o.cpu >= 0 ? o.cpu : sched_getcpu();
	if (!strcmp(mode, "udp"))
		return run_udp(&o, t, cpu);
	if (!strcmp(mode, "tcp"))
		return run_tcp(&o, t, cpu);
	if (!strcmp(mode, "sink-udp"))
		run_sink(o.dport, 0);
	if (!strcmp(mode, "sink-tcp"))
		run_sink(o.dport, 1);
	fprintf(stderr, "sender: unknown mode %s\n", mode);
	return 2;
}
