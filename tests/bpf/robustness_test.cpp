// Truncated packets at every length are never mistranslated, and random valid packets come
// out with checksums that the independent routine accepts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

const std::string kLan = "192.168.1.10", kNat = "10.20.30.2", kRemote = "10.0.0.1";

class Robustness : public ::testing::Test {
 protected:
  Robustness() {
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24"));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  Datapath dp;
  PacketBuilder eth, bare{false};
};

std::vector<std::pair<std::string, Bytes>> samples(const PacketBuilder& eth, const PacketBuilder& bare,
                                                   const std::string& src, const std::string& dst) {
  Ipv4Spec opt{src, dst};
  opt.options = {1, 1, 1, 0};
  return {
      {"tcp", eth.tcp({src, dst}, 40000, 80, 0x02, Bytes(10, 1))},
      {"udp", eth.udp({src, dst}, 40000, 80, Bytes(10, 1))},
      {"icmp-echo", eth.icmp_echo({src, dst}, 8, 40000, 1, Bytes(10, 1))},
      {"tcp-options", eth.tcp(opt, 40000, 80, 0x02, Bytes(4, 1))},
      {"icmp-error", eth.icmp_error({src, dst}, 3, 3, bare.udp({dst, src}, 80, 40000, Bytes(4, 1)))},
  };
}

// Cut at every length, tot_len left as it was (the packet is shorter than it says), and with
// tot_len and header checksum made consistent (the L4 header itself is incomplete).
TEST_F(Robustness, TruncatedPacketsAreDroppedOrPassedUntouched) {
  // Flows exist for everything, so that a complete packet would be translated either way.
  for (auto& [name, pkt] : samples(eth, bare, kLan, kRemote)) dp.run(dp.skel()->progs.tc_snat_egress, pkt);
  auto* snat = dp.skel()->progs.tc_snat_egress;
  auto* rev = dp.skel()->progs.tc_rev_ingress;
  auto* guard = dp.skel()->progs.tc_guard_egress;
  size_t cases = 0;  // program runs on a truncated packet (docs/robustness.md quotes the figure)
  for (const auto& dir : {0, 1}) {
    auto pkts = dir == 0 ? samples(eth, bare, kLan, kRemote) : samples(eth, bare, kRemote, kNat);
    for (auto& [name, full] : pkts) {
      size_t ihl = (full[14] & 0x0f) * 4;
      // BPF_PROG_TEST_RUN refuses IPv4 input shorter than an IPv4 header (EINVAL), so the
      // shortest cut that reaches the program is the bare 20-byte header.
      for (size_t len = 14 + 20; len < full.size(); ++len) {
        for (bool fix_len : {false, true}) {
          Bytes cut(full.begin(), full.begin() + static_cast<long>(len));
          if (fix_len) {
            if (len < 14 + ihl) continue;
            size_t l4_header = name.rfind("tcp", 0) == 0 ? 20 : 8;
            if (len >= 14 + ihl + l4_header) continue;  // a complete, if short, packet
            cut[16] = static_cast<uint8_t>((len - 14) >> 8);
            cut[17] = static_cast<uint8_t>((len - 14) & 0xff);
            cut[24] = cut[25] = 0;
            uint16_t c = inet_checksum(cut.data() + 14, ihl);
            cut[24] = c >> 8;
            cut[25] = c & 0xff;
          }
          SCOPED_TRACE(name + " dir " + std::to_string(dir) + " len " + std::to_string(len) +
                       (fix_len ? " tot_len fixed" : ""));
          for (auto* prog : {snat, rev, guard}) {
            auto drops = [&] {
              return dp.reason_packets(IPSNAT_R_DROP_TRUNCATED) + dp.reason_packets(IPSNAT_R_DROP_MALFORMED) +
                     dp.reason_packets(IPSNAT_R_DROP_GUARD_UNPARSED);
            };
            auto before_drop = drops();
            auto r = dp.run(prog, cut);
            ++cases;
            if (r.retval == TC_ACT_SHOT) {
              // The SNAT side drops what it cannot read; the guard what it cannot read to a
              // covered destination (every sample's here).
              EXPECT_NE(prog, rev) << "the reverse side never drops what it cannot read";
              EXPECT_EQ(drops(), before_drop + 1);
            } else {
              EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
              EXPECT_EQ(r.out, cut) << "reasons: " << dp.nonzero_reasons();
            }
          }
        }
      }
    }
  }
  RecordProperty("bad_input_runs", static_cast<int>(cases));
  std::printf("truncated-packet runs: %zu\n", cases);
  EXPECT_GT(cases, 500u);
}

// Random valid TCP/UDP/ICMP-echo packets from many inside hosts (NAPT port changes included),
// with and without options and UDP checksums: after translation, and after the reply's
// translation back, every checksum verifies and the addresses and ports are the right ones.
TEST_F(Robustness, RandomPacketsKeepValidChecksums) {
  unsigned seed = std::getenv("IPSNAT_SEED") ? unsigned(std::atoi(std::getenv("IPSNAT_SEED"))) : std::random_device{}();
  SCOPED_TRACE("IPSNAT_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  auto pick = [&](unsigned lo, unsigned hi) { return std::uniform_int_distribution<unsigned>(lo, hi)(rng); };
  dp.set_port_range(20000, 20400);
  auto* snat = dp.skel()->progs.tc_snat_egress;
  auto* rev = dp.skel()->progs.tc_rev_ingress;
  for (int i = 0; i < 300; ++i) {
    std::string host = "192.168.1." + std::to_string(pick(1, 40));
    std::string remote = "10." + std::to_string(pick(0, 3)) + ".0." + std::to_string(pick(1, 3));
    uint16_t sport = static_cast<uint16_t>(pick(20000, 20010)), dport = static_cast<uint16_t>(pick(1, 65535));
    Bytes payload(pick(0, 1400));
    for (auto& b : payload) b = static_cast<uint8_t>(pick(0, 255));
    Ipv4Spec out{host, remote};
    out.ttl = static_cast<uint8_t>(pick(1, 255));
    out.id = static_cast<uint16_t>(pick(0, 65535));
    if (pick(0, 3) == 0) out.options = Bytes(4 * pick(1, 10), 1);
    unsigned kind = pick(0, 3);
    Bytes pkt = kind == 0   ? eth.tcp(out, sport, dport, static_cast<uint8_t>(pick(0, 63)), payload)
                : kind == 1 ? eth.udp(out, sport, dport, payload, false)
                : kind == 2 ? eth.udp(out, sport, dport, payload, true)
                            : eth.icmp_echo(out, 8, sport, static_cast<uint16_t>(pick(0, 65535)), payload);
    SCOPED_TRACE("iteration " + std::to_string(i) + " kind " + std::to_string(kind));
    auto r = dp.run(snat, pkt);
    ASSERT_EQ(r.retval, TC_ACT_UNSPEC) << dp.nonzero_reasons();
    auto c = verify_checksums(r.out, 14);
    ASSERT_TRUE(c.ip_ok && c.l4_ok) << c.detail;
    size_t l3 = 14, l4 = l3 + (r.out[l3] & 0x0f) * 4;
    ASSERT_EQ(Bytes(r.out.begin() + 26, r.out.begin() + 30), Bytes({10, 20, 30, 2}));
    if (kind == 2) {
      EXPECT_EQ(r.out[l4 + 6] | r.out[l4 + 7], 0);
    }
    uint16_t nat_port = kind == 3 ? static_cast<uint16_t>(r.out[l4 + 4] << 8 | r.out[l4 + 5])
                                  : static_cast<uint16_t>(r.out[l4] << 8 | r.out[l4 + 1]);
    // The reply, built from scratch for the translated tuple.
    Ipv4Spec back{remote, kNat};
    back.options = out.options;
    Bytes reply = kind == 0   ? eth.tcp(back, dport, nat_port, 0x12, payload)
                  : kind == 1 ? eth.udp(back, dport, nat_port, payload, false)
                  : kind == 2 ? eth.udp(back, dport, nat_port, payload, true)
                              : eth.icmp_echo(back, 0, nat_port, 1, payload);
    Ipv4Spec to_host{remote, host};
    to_host.options = out.options;
    Bytes want = kind == 0   ? eth.tcp(to_host, dport, sport, 0x12, payload)
                 : kind == 1 ? eth.udp(to_host, dport, sport, payload, false)
                 : kind == 2 ? eth.udp(to_host, dport, sport, payload, true)
                             : eth.icmp_echo(to_host, 0, sport, 1, payload);
    auto b = dp.run(rev, reply);
    ASSERT_EQ(b.out, want) << dp.nonzero_reasons();
  }
}

}  // namespace
}  // namespace ipsnat::test
