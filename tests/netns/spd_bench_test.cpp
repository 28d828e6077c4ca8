// Benchmarks of the SPD mirror (not run by CTest: DISABLED_; scripts/bench/spd-mirror.sh runs
// them). Prints numbers, asserts only that the mirror stayed exact.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "mirror/mirror.h"
#include "support/datapath.h"
#include "spd/tunnel_policy.h"
#include "support/netns_guard.h"
#include "xfrm/policy_msg.h"
#include "xfrm/policy_source.h"

namespace ipsnat::test {

using namespace ipsnat::spd;
using namespace ipsnat::mirror;
using Clock = std::chrono::steady_clock;

namespace {

Policy bench_policy(uint32_t i) {
  Policy p = tunnel_policy(Dir::Out, Prefix{Address::v4(htonl(0x0a140000 + (i & 0xffff))), 32},
                           Prefix{Address::v4(htonl(0x0b000000 + (i << 6))), 26}, i + 1);
  p.priority = 100 + i % 7;
  p.tmpls[0].tunnel_src = parse_address("200.2.2.2");
  p.tmpls[0].tunnel_dst = parse_address("100.1.1.1");
  return p;
}

void fill(const NetnsGuard& ns, uint32_t n) {
  std::string path = "/tmp/" + ns.name() + ".batch";
  {
    std::ofstream f(path);
    for (uint32_t i = 0; i < n; i++) {
      Policy p = bench_policy(i);
      f << "xfrm policy add src " << p.sel.src.str() << " dst " << p.sel.dst.str() << " dir out priority "
        << p.priority << " tmpl src 200.2.2.2 dst 100.1.1.1 proto esp mode tunnel reqid " << i + 1 << "\n";
    }
  }
  ns.sh("ip -batch " + path);
  unlink(path.c_str());
}

uint64_t active_version(int fd) {
  uint32_t zero = 0;
  spd_active a{};
  bpf_map_lookup_elem(fd, &zero, &a);
  return a.version;
}

uint64_t memlock(int fd) {
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string k;
  uint64_t v = 0;
  while (f >> k) {
    if (k == "memlock:") {
      f >> v;
      return v;
    }
  }
  return 0;
}

// CPU time (user + system, so the kernel's map and netlink work in the syscalls counts) of a
// thread: on a machine shared with other jobs, wall time mostly measures the run queue.
double cpu_ms(clockid_t clock = CLOCK_THREAD_CPUTIME_ID) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Sizes from the environment (scripts/bench/spd-mirror.sh passes its options this way).
std::vector<uint32_t> env_sizes(const char* name, std::vector<uint32_t> dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  std::vector<uint32_t> out;
  std::istringstream in(v);
  for (uint32_t n; in >> n;) out.push_back(n);
  return out;
}

// Time from sendto() of a policy change to the switch of spd_active (the datapath's next lookup
// sees the change), with the mirror thread's CPU time per change and the kernel's share.
void latency(uint32_t base, uint32_t changes) {
  Datapath dp;
  NetnsGuard ns("spdbl");
  fill(ns, base);
  std::string load0 = loadavg();
  SpdMapFds fds = SpdMapFds::from_object(dp.skel()->obj);
  SpdMirror mirror(fds, NatConfig{});
  auto ts = Clock::now();
  double cs = cpu_ms();
  mirror.sync_once();
  double sync_ms = ms_since(ts), sync_cpu = cpu_ms() - cs;
  std::jthread follower([&mirror](std::stop_token st) { mirror.run(st); });
  clockid_t follower_clock;
  ASSERT_EQ(0, pthread_getcpuclockid(follower.native_handle(), &follower_clock));
  mnl_socket* nl = mnl_socket_open(NETLINK_XFRM);
  ASSERT_TRUE(nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0);
  std::vector<double> ms, kernel_ms, kernel_cpu, mirror_cpu, kernel_add_cpu, kernel_del_cpu, add_ms, del_ms;
  char buf[4096];
  double follower_before = cpu_ms(follower_clock);
  for (uint32_t k = 0; k < changes; k++) {
    // Alternately add and delete one policy outside the base set.
    Policy p = bench_policy(base + 1 + k / 2);
    nlmsghdr* nlh = k % 2 == 0 ? xfrm::build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, p)
                               : xfrm::build_delpolicy_msg(buf, sizeof(buf), p, false);
    nlh->nlmsg_flags = NLM_F_REQUEST;
    uint64_t v0 = active_version(fds.active);
    auto t0 = Clock::now();
    double c0 = cpu_ms();
    ASSERT_GE(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len), 0);
    // The kernel handles the request inside sendto (policy insert/remove, then the multicast
    // notification): what is left after it returns is the mirror's share.
    kernel_ms.push_back(ms_since(t0));
    kernel_cpu.push_back(cpu_ms() - c0);
    (k % 2 == 0 ? kernel_add_cpu : kernel_del_cpu).push_back(kernel_cpu.back());
    // The switch to a new generation is the moment the datapath sees the change. Polled with
    // short sleeps: spinning would take a core from the mirror on this 2-core machine.
    while (active_version(fds.active) == v0) {
      if (Clock::now() - t0 > std::chrono::seconds(10))
        FAIL() << "change " << k << ": map not updated within 10 s (policies " << mirror.model().size() << ")";
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    ms.push_back(ms_since(t0));
    (k % 2 == 0 ? add_ms : del_ms).push_back(ms.back());
    // The mirror's CPU for this change: its thread's time since the previous change's switch
    // (it only works when a notification arrives).
    std::this_thread::sleep_for(std::chrono::microseconds(50));
    double f = cpu_ms(follower_clock);
    mirror_cpu.push_back(f - follower_before);
    follower_before = f;
  }
  mnl_socket_close(nl);
  follower.request_stop();
  follower.join();
  EXPECT_EQ(base, mirror.model().size());
  EXPECT_EQ(0u, mirror.stats().resyncs);
  std::printf("BENCH latency base=%u changes=%u wall p50=%.2f ms p99=%.2f ms max=%.2f ms (adds p50 %.2f p99 %.2f ms, "
              "deletes p50 %.2f p99 %.2f ms); mirror thread CPU per change "
              "p50=%.3f ms p99=%.3f ms; kernel's sendto wall p50=%.2f ms p99=%.2f ms, CPU p50=%.2f ms p99=%.2f ms (add p50 "
              "%.2f ms, delete p50 %.2f ms); "
              "first sync %.0f ms wall %.0f ms CPU; load %s -> %s\n",
              base, changes, pct(ms, 0.5), pct(ms, 0.99), pct(ms, 1.0), pct(add_ms, 0.5), pct(add_ms, 0.99), pct(del_ms, 0.5),
              pct(del_ms, 0.99), pct(mirror_cpu, 0.5), pct(mirror_cpu, 0.99),
              pct(kernel_ms, 0.5), pct(kernel_ms, 0.99), pct(kernel_cpu, 0.5), pct(kernel_cpu, 0.99),
              pct(kernel_add_cpu, 0.5), pct(kernel_del_cpu, 0.5), sync_ms,
              sync_cpu, load0.c_str(), loadavg().c_str());
  std::fflush(stdout);
}

void resync(uint32_t n) {
  Datapath dp;
  NetnsGuard ns("spdbr");
  fill(ns, n);
  std::string load0 = loadavg();
  SpdMapFds fds = SpdMapFds::from_object(dp.skel()->obj);
  SpdMirror mirror(fds, NatConfig{});
  auto t0 = Clock::now();
  double c0 = cpu_ms();
  mirror.sync_once();
  double full = ms_since(t0), full_cpu = cpu_ms() - c0;
  const SpdSyncTimes first = mirror.last_sync();
  EXPECT_EQ(n, mirror.model().size());
  uint64_t mem = memlock(fds.dst) + memlock(fds.src) + memlock(fds.lists);

  // The parts alone, outside the mirror.
  auto t1 = Clock::now();
  double c1 = cpu_ms();
  SpdModel dumped = xfrm::PolicySource::read_once();
  double dump = ms_since(t1), dump_cpu = cpu_ms() - c1;
  auto t2 = Clock::now();
  double c2 = cpu_ms();
  IncrementalSpd inc{NatConfig{}};
  inc.rebuild(dumped);
  double comp = ms_since(t2), comp_cpu = cpu_ms() - c2;
  auto t3 = Clock::now();
  double c3 = cpu_ms();
  CompiledSpd c = compile_spd(dumped.ordered(), NatConfig{});
  double scratch = ms_since(t3), scratch_cpu = cpu_ms() - c3;
  EXPECT_FALSE(c.refused);
  EXPECT_FALSE(inc.refused());
  // A resync of an unchanged SPD (dump, every cell recompiled, no map entry written): what an
  // overrun costs in steady state.
  auto t5 = Clock::now();
  double c5 = cpu_ms();
  mirror.sync_once();
  double again = ms_since(t5), again_cpu = cpu_ms() - c5;
  std::printf("BENCH resync n=%u first sync %.0f ms wall, %.0f ms CPU (to the switch: %.0f ms wall, %.0f ms CPU; dump %.0f ms wall, "
              "compile %.0f ms wall, first generation %.0f ms wall, second generation %.0f ms wall %.0f ms CPU); resync of an unchanged "
              "SPD %.0f ms wall, %.0f ms CPU; alone: dump %.0f ms wall %.0f ms CPU, IncrementalSpd::rebuild %.0f ms wall "
              "%.0f ms CPU, compile_spd %.0f ms wall %.0f ms CPU; map memory of both generations %.1f MiB (%.2f MiB per 10k policies; fdinfo memlock, includes the list hash's fixed bucket array); "
              "load %s -> %s\n",
              n, full, full_cpu, first.dump_ms + first.compile_ms + first.write_ms, full_cpu - first.second_write_cpu_ms,
              first.dump_ms, first.compile_ms, first.write_ms, first.second_write_ms, first.second_write_cpu_ms, again, again_cpu, dump, dump_cpu, comp, comp_cpu, scratch,
              scratch_cpu, mem / 1048576.0, mem / 1048576.0 * 10000.0 / n, load0.c_str(), loadavg().c_str());
  std::fflush(stdout);
}

}  // namespace

// IPSNAT_BENCH_LATENCY_SIZES, IPSNAT_BENCH_CHANGES, IPSNAT_BENCH_RESYNC_SIZES: space-separated.
TEST(SpdBench, DISABLED_Latency) {
  uint32_t changes = env_sizes("IPSNAT_BENCH_CHANGES", {1000}).at(0);
  for (uint32_t base : env_sizes("IPSNAT_BENCH_LATENCY_SIZES", {100, 10000, 100000})) latency(base, changes);
}

TEST(SpdBench, DISABLED_Resync) {
  for (uint32_t n : env_sizes("IPSNAT_BENCH_RESYNC_SIZES", {10000, 100000})) resync(n);
}

}  // namespace ipsnat::test
