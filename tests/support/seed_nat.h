// What the golden-packet tests of the NAT share: the seed scenario (LAN 192.168.1.0/24 behind the
// NAT address 10.20.30.2, remote 10.0.0.1, a route-mode device), the TC programs at hand, and a
// packet comparison that also verifies the checksums with the independent routine.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/datapath.h"
#include "support/packet.h"
#include "support/spd_fixture.h"

namespace ipsnat::test {

inline constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;
inline constexpr uint8_t kSyn = 0x02, kAck = 0x10;
inline const std::string kLan = "192.168.1.10", kLan2 = "192.168.1.11", kNat = "10.20.30.2",
                         kRemote = "10.0.0.1";

// Out-policy 10.0.0.0/8 naming kNat, the LAN translated by NAPT, the test device in route mode.
class SeedNat : public ::testing::Test {
 protected:
  // sa_reqid_from_mark: see Datapath.
  explicit SeedNat(bool sa_reqid_from_mark = false) : dp(sa_reqid_from_mark) {
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", 7));
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_ROUTE);
  }
  RunResult snat(const Bytes& p) { return dp.run(dp.skel()->progs.tc_snat_egress, p); }
  RunResult rev(const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p); }
  RunResult guard(const Bytes& p) { return dp.run(dp.skel()->progs.tc_guard_egress, p); }

  Datapath dp;
  PacketBuilder eth;
};

}  // namespace ipsnat::test

// Inside a SeedNat test: `got` equals `want` byte for byte and its checksums verify.
#define EXPECT_SAME_PACKET(got, want)                                             \
  do {                                                                            \
    EXPECT_EQ((got), (want)) << "reasons: " << dp.nonzero_reasons();              \
    EXPECT_TRUE(verify_checksums((got), 14).ip_ok);                               \
    EXPECT_TRUE(verify_checksums((got), 14).l4_ok) << verify_checksums((got), 14).detail; \
  } while (0)
