// The XDP pre-filter (xdp_spoof_drop, bpf/lib/spoof.h) on golden packets, with its drop set written
// by the loader's SpoofWriter from an SPD model: spoofed cleartext from a remote prefix that an `in`
// and a `fwd` policy protect is dropped; IPsec, IKE/NAT-T, unprotected sources, unprotected
// destinations and what the kernel may accept pass.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>

#include "maps/stats.h"
#include "spd/model.h"
#include "spd/spoof.h"
#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {
namespace {

using spd::Dir;

constexpr uint8_t kTcp = IPPROTO_TCP, kUdp = IPPROTO_UDP, kSyn = 0x02;

// 10.0.0.0/8 -> 192.168.1.0/24 and 172.30.0.0/16 -> 192.168.7.0/24 protected in both directions;
// 172.30.5.0/24 has a fwd bypass before that (nothing of 172.30.0.0/16 is dropped then), and
// 172.31.0.0/16 only an `in` policy (a forwarded packet is not checked against it).
class XdpPrefilter : public ::testing::Test {
 protected:
  XdpPrefilter() {
    uint32_t i = 8;
    for (Dir d : {Dir::In, Dir::Fwd}) {
      model.apply(spd::PolicyUpsert{tunnel_policy(d, "10.0.0.0/8", "192.168.1.0/24", i++, 100)});
      model.apply(spd::PolicyUpsert{tunnel_policy(d, "172.30.0.0/16", "192.168.7.0/24", i++, 100)});
    }
    model.apply(spd::PolicyUpsert{tunnel_policy(Dir::Fwd, "172.30.5.0/24", "192.168.7.0/24", i++, 50, false)});
    model.apply(spd::PolicyUpsert{tunnel_policy(Dir::In, "172.31.0.0/16", "192.168.1.0/24", i++, 100)});
    writer.write(model);
  }
  uint32_t run(const Bytes& pkt) {
    Bytes out(pkt.size() + 64);
    xdp_md ctx{};
    ctx.data_end = static_cast<__u32>(pkt.size());
    ctx.ingress_ifindex = Datapath::test_ifindex();
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = pkt.data();
    opts.data_size_in = static_cast<__u32>(pkt.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
    opts.repeat = 1;
    int err = bpf_prog_test_run_opts(bpf_program__fd(dp.skel()->progs.xdp_spoof_drop), &opts);
    EXPECT_EQ(err, 0);
    return opts.retval;
  }
  uint64_t n(ipsnat_reason r) { return dp.reason_packets(r); }

  Datapath dp;
  spd::SpdModel model;
  spd::SpoofWriter writer{bpf_map__fd(dp.skel()->maps.xdp_spoof4), bpf_map__fd(dp.skel()->maps.xdp_spoof_act)};
  PacketBuilder eth;
};

TEST_F(XdpPrefilter, SpoofedCleartextFromAProtectedPrefixIsDropped) {
  EXPECT_EQ(run(eth.tcp({"10.1.2.3", "192.168.1.10", kTcp}, 40000, 22, kSyn, {})), XDP_DROP);
  EXPECT_EQ(run(eth.icmp_echo({"10.200.0.1", "192.168.1.1", IPPROTO_ICMP}, 8, 7, 1, Bytes(16, 1))), XDP_DROP);
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "192.168.1.10", 47}, Bytes(24, 1))), XDP_DROP);  // GRE
  EXPECT_EQ(n(IPSNAT_R_DROP_XDP_SPOOF), 3u) << dp.nonzero_reasons();
}

TEST_F(XdpPrefilter, IpsecAndIkePass) {
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "192.168.1.10", IPPROTO_ESP}, Bytes(64, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "192.168.1.10", IPPROTO_AH}, Bytes(64, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.udp({"10.1.2.3", "192.168.1.1", kUdp}, 4500, 4500, Bytes(40, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.udp({"10.1.2.3", "192.168.1.1", kUdp}, 500, 500, Bytes(40, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.tcp({"10.1.2.3", "192.168.1.1", kTcp}, 40000, 4500, kSyn, {})), XDP_PASS);
  EXPECT_EQ(n(IPSNAT_R_PASS_XDP_IPSEC), 5u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_DROP_XDP_SPOOF), 0u);
}

TEST_F(XdpPrefilter, WhatTheKernelMayAcceptPasses) {
  EXPECT_EQ(run(eth.tcp({"172.16.0.9", "192.168.1.10", kTcp}, 40000, 22, kSyn, {})), XDP_PASS);  // unprotected
  EXPECT_EQ(run(eth.tcp({"10.1.2.3", "192.168.2.10", kTcp}, 40000, 22, kSyn, {})), XDP_PASS);  // other LAN
  EXPECT_EQ(run(eth.tcp({"172.30.1.1", "192.168.7.10", kTcp}, 40000, 22, kSyn, {})), XDP_PASS);  // a bypass first
  EXPECT_EQ(run(eth.tcp({"172.31.1.1", "192.168.1.10", kTcp}, 40000, 22, kSyn, {})), XDP_PASS);  // `in` only
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "224.0.0.5", 89}, Bytes(24, 1))), XDP_PASS);            // multicast
  // Fragments, options and non-IPv4: the kernel decides.
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "192.168.1.10", kTcp, 64, 9, 0x2000}, Bytes(64, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.ipv4({"10.1.2.3", "192.168.1.10", kTcp, 64, 9, 185}, Bytes(64, 1))), XDP_PASS);
  EXPECT_EQ(run(eth.tcp({"10.1.2.3", "192.168.1.10", kTcp, 64, 1, 0, Bytes{1, 1, 1, 0}}, 40000, 22, kSyn, {})),
            XDP_PASS);
  EXPECT_EQ(run(eth.ipv6("2001:db8::1", "2001:db8:1::1", kTcp, tcp_header(40000, 22, kSyn))), XDP_PASS);
  EXPECT_EQ(run(eth.non_ip(0x0806, 28)), XDP_PASS);
  EXPECT_EQ(n(IPSNAT_R_PASS_XDP_KERNEL), 10u) << dp.nonzero_reasons();
  EXPECT_EQ(n(IPSNAT_R_DROP_XDP_SPOOF), 0u);
}

// The drop set follows the SPD: the fwd policy gone, the kernel forwards the cleartext, and the
// filter passes it.
TEST_F(XdpPrefilter, ADeletedPolicyLeavesTheDropSet) {
  Bytes spoof = eth.tcp({"10.1.2.3", "192.168.1.10", kTcp}, 40000, 22, kSyn, {});
  ASSERT_EQ(run(spoof), XDP_DROP);
  spd::PolicyDelete del;
  del.index = 10;  // fwd 10.0.0.0/8 -> 192.168.1.0/24
  model.apply(del);
  writer.write(model);
  EXPECT_EQ(run(spoof), XDP_PASS);
}

}  // namespace
}  // namespace ipsnat::test
