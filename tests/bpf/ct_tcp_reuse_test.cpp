// A TCP tuple used again after its connection ended (a reset or a close seen in either
// direction) starts a fresh flow state: the new connection becomes established with the
// established timeout, instead of staying "reset" or "closing" and being expired by that
// state's short timeout mid-connection (docs/datapath.md "Connection tracking").
#include <linux/pkt_cls.h>

#include "pins/ct_map.h"
#include "ct/flow.h"
#include "pins/ct_gc.h"
#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

constexpr uint8_t kFin = 0x01, kRst = 0x04;
constexpr uint64_t kSec = 1000000000ull;

class CtTcpReuse : public SeedNat {
 protected:
  CtTcpReuse() {
    cfg.tcp_rst_s = 10;
    cfg.tcp_fin_s = 240;
    cfg.tcp_est_s = 7440;
    dp.set_config(cfg);
  }
  // One segment each way of the tuple 192.168.1.10:40000 <-> 10.0.0.1:443.
  void out(uint8_t flags) { EXPECT_EQ(snat(eth.tcp({kLan, kRemote}, 40000, 443, flags, {})).retval, TC_ACT_UNSPEC); }
  void in(uint8_t flags) {
    auto r = rev(eth.tcp({kRemote, kNat}, 443, 40000, flags, {}));
    EXPECT_SAME_PACKET(r.out, eth.tcp({kRemote, kLan}, 443, 40000, flags, {}));
  }
  void handshake() {
    out(kSyn);
    in(kSyn | kAck);
    out(kAck);
  }
  ct::Flow flow() {
    std::vector<ct::Entry> entries;
    for (auto& [k, e] : dp.ct_all()) entries.push_back({k, e});
    auto flows = ct::pair_entries(entries);
    if (flows.size() != 1 || !flows[0].complete()) ADD_FAILURE() << "expected one whole flow, got " << flows.size();
    return flows.empty() ? ct::Flow{} : flows[0];
  }
  // The state the GC sees, and whether a sweep past the reset timeout keeps the flow.
  void expect_established_and_kept() {
    EXPECT_EQ(ct::state_name(ct::classify(flow())), "established");
    pins::CtMaps maps(dp.ct_fd(), dp.cfg_fd());
    auto r = pins::CtGc(maps).sweep(pins::boottime_ns() + (cfg.tcp_rst_s + 1) * kSec);
    EXPECT_EQ(r.removed, 0u) << "the new connection expired with the old one's timeout";
    EXPECT_EQ(dp.ct_all().size(), 2u);
    r = pins::CtGc(maps).sweep(pins::boottime_ns() + (cfg.tcp_fin_s + 1) * kSec);
    EXPECT_EQ(r.removed, 0u);
  }

  ipsnat_config cfg{};
};

TEST_F(CtTcpReuse, AReconnectAfterTheFarSidesResetIsEstablished) {
  out(kSyn);
  in(kRst | kAck);  // port closed on the far side
  EXPECT_EQ(ct::state_name(ct::classify(flow())), "reset");
  handshake();
  expect_established_and_kept();
}

TEST_F(CtTcpReuse, AReconnectAfterAResetMidConnectionIsEstablished) {
  handshake();
  in(kRst);
  handshake();
  expect_established_and_kept();
}

TEST_F(CtTcpReuse, AReconnectAfterTheInsideHostsResetIsEstablished) {
  handshake();
  out(kRst | kAck);
  handshake();
  expect_established_and_kept();
}

TEST_F(CtTcpReuse, AReconnectAfterTheFarSideClosedIsEstablished) {
  handshake();
  in(kFin | kAck);  // the far side closes; the inside host's FIN got lost
  EXPECT_EQ(ct::state_name(ct::classify(flow())), "closing");
  handshake();
  expect_established_and_kept();
}

TEST_F(CtTcpReuse, ATimeWaitReuseAfterBothClosedIsEstablished) {
  handshake();
  out(kFin | kAck);
  in(kFin | kAck);
  out(kAck);
  handshake();
  expect_established_and_kept();
}

// A SYN retransmitted while the connection opens is no reuse: the state goes on.
TEST_F(CtTcpReuse, ARetransmittedSynKeepsTheOpeningState) {
  out(kSyn);
  out(kSyn);
  in(kSyn | kAck);
  out(kAck);
  expect_established_and_kept();
}

}  // namespace
}  // namespace ipsnat::test
