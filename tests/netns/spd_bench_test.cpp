// Benchmarks of the SPD mirror (not run by CTest: DISABLED_; scripts/bench/spd-mirror.sh runs
// them). Prints numbers, asserts only that the mirror stayed exact.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "spd/mirror.h"
#include "support/datapath.h"
#include "support/netns_guard.h"
#include "xfrm/policy_msg.h"
#include "xfrm/policy_source.h"

namespace ipsnat::test {

using namespace ipsnat::spd;
using Clock = std::chrono::steady_clock;

namespace {

Policy bench_policy(uint32_t i) {
  Policy p;
  p.sel.family = AF_INET;
  p.sel.src = Prefix{Address::v4(htonl(0x0a140000 + (i & 0xffff))), 32};
  p.sel.dst = Prefix{Address::v4(htonl(0x0b000000 + (i << 6))), 26};
  p.dir = Dir::Out;
  p.priority = 100 + i % 7;
  Template t;
  t.mode = 1;
  t.proto = IPPROTO_ESP;
  t.reqid = i + 1;
  t.family = AF_INET;
  t.tunnel_src = parse_address("200.2.2.2");
  t.tunnel_dst = parse_address("100.1.1.1");
  p.tmpls.push_back(t);
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

// CPU time of this thread (user + system, so the kernel's map and netlink work in our
// syscalls counts): on a machine shared with other jobs, wall time mostly measures the queue.
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

void latency(uint32_t base, uint32_t changes) {
  Datapath dp;
  NetnsGuard ns("spdbl");
  fill(ns, base);
  SpdMapFds fds = SpdMapFds::from_object(dp.skel()->obj);
  SpdMirror mirror(fds, NatConfig{});
  mirror.sync_once();
  std::jthread follower([&mirror](std::stop_token st) { mirror.run(st); });
  mnl_socket* nl = mnl_socket_open(NETLINK_XFRM);
  ASSERT_TRUE(nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0);
  std::vector<double> ms, kernel_ms;
  char buf[4096];
  for (uint32_t k = 0; k < changes; k++) {
    // Alternately add and delete one policy outside the base set.
    Policy p = bench_policy(base + 1 + k / 2);
    nlmsghdr* nlh = k % 2 == 0 ? xfrm::build_policy_msg(buf, sizeof(buf), XFRM_MSG_NEWPOLICY, p)
                               : xfrm::build_delpolicy_msg(buf, sizeof(buf), p, false);
    nlh->nlmsg_flags = NLM_F_REQUEST;
    uint64_t v0 = active_version(fds.active);
    auto t0 = Clock::now();
    ASSERT_GE(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len), 0);
    // The kernel handles the request inside sendto (policy insert/remove, then the multicast
    // notification): what is left after it returns is the mirror's share.
    kernel_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    // The switch to a new generation is the moment the datapath sees the change. Polled with
    // short sleeps: spinning would take a core from the mirror on this 2-core machine.
    while (active_version(fds.active) == v0) {
      if (Clock::now() - t0 > std::chrono::seconds(10)) FAIL() << "map not updated within 10 s";
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  mnl_socket_close(nl);
  follower.request_stop();
  follower.join();
  EXPECT_EQ(base, mirror.model().size());
  std::printf("BENCH latency base=%u changes=%u p50=%.2f ms p99=%.2f ms max=%.2f ms (of which in the kernel's "
              "sendto: p50 %.2f ms, p99 %.2f ms)\n",
              base, changes, pct(ms, 0.5), pct(ms, 0.99), pct(ms, 1.0), pct(kernel_ms, 0.5), pct(kernel_ms, 0.99));
}

void resync(uint32_t n) {
  Datapath dp;
  NetnsGuard ns("spdbr");
  fill(ns, n);
  SpdMapFds fds = SpdMapFds::from_object(dp.skel()->obj);
  SpdMirror mirror(fds, NatConfig{});
  auto t0 = Clock::now();
  double c0 = cpu_ms();
  mirror.sync_once();
  double full = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  double full_cpu = cpu_ms() - c0;
  SpdModel m;
  auto t1 = Clock::now();
  SpdModel dumped = xfrm::PolicySource::read_once();
  double dump = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  auto t2 = Clock::now();
  IncrementalSpd inc{NatConfig{}};
  inc.rebuild(dumped);
  double comp = std::chrono::duration<double, std::milli>(Clock::now() - t2).count();
  auto t3 = Clock::now();
  CompiledSpd c = compile_spd(dumped.ordered(), NatConfig{});
  double scratch = std::chrono::duration<double, std::milli>(Clock::now() - t3).count();
  EXPECT_EQ(n, mirror.model().size());
  EXPECT_FALSE(c.refused);
  EXPECT_FALSE(inc.refused());
  uint64_t mem = memlock(fds.dst) + memlock(fds.src) + memlock(fds.lists);
  // The second sync fills the other generation; the third is a resync of an unchanged SPD (dump,
  // every cell recompiled, no map entry written): what an overrun costs in steady state.
  auto t4 = Clock::now();
  mirror.sync_once();
  double second = std::chrono::duration<double, std::milli>(Clock::now() - t4).count();
  auto t5 = Clock::now();
  double c5 = cpu_ms();
  mirror.sync_once();
  double again = std::chrono::duration<double, std::milli>(Clock::now() - t5).count();
  double again_cpu = cpu_ms() - c5;
  std::printf("BENCH resync n=%u total=%.0f ms wall, %.0f ms CPU (dump %.0f ms, compile %.0f ms, rest = map writes of both "
              "generation's first fill); second sync (other generation) %.0f ms; resync of an unchanged SPD %.0f ms wall, %.0f ms CPU; compile_spd from scratch %.0f ms; "
              "map memory %.1f MiB for one generation (%.2f MiB per 10k policies)\n",
              n, full, full_cpu, dump, comp, second, again, again_cpu, scratch, mem / 1048576.0, mem / 1048576.0 * 10000.0 / n);
}

}  // namespace

TEST(SpdBench, DISABLED_Latency) {
  latency(100, 1000);
  latency(10000, 1000);
  latency(100000, 1000);
}

TEST(SpdBench, DISABLED_Resync) {
  resync(10000);
  resync(100000);
}

}  // namespace ipsnat::test
