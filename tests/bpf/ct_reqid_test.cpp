// A flow's replies are accepted from the SA of the policy that protects the flow NOW
// (docs/datapath.md "Established flows and SPD changes"): IKE re-establishes the tunnel, the
// policy comes back with the same selectors and a new reqid, and the flow carries on through the
// new SA, whichever direction sends first. BPF_PROG_TEST_RUN cannot give a packet a sec path, so
// the datapath is loaded with its test seam (Datapath(true)): the reverse side reads the SA's
// reqid from the packet's mark; everything after that read is the product's code. The VM tier
// runs the same change with strongSwan and real ESP.
#include <linux/pkt_cls.h>

#include "support/seed_nat.h"

namespace ipsnat::test {
namespace {

constexpr uint32_t kOldReqid = 1, kNewReqid = 57;

class CtReqid : public SeedNat {
 protected:
  CtReqid() : SeedNat(true) {
    reinstall(kOldReqid);
    dp.set_dev_mode(Datapath::test_ifindex(), IPSNAT_DEV_POLICY);
  }
  // IKE replaced the out-policy: same selectors, the new CHILD_SA's reqid.
  void reinstall(uint32_t reqid) {
    remove_nat_targets(dp, "10.0.0.0/8");
    install_nat_target(dp, "10.0.0.0/8", napt_target(kNat, "192.168.1.0/24", reqid));
  }
  uint64_t spd_version() {
    uint32_t zero = 0;
    spd_active a{};
    if (bpf_map_lookup_elem(bpf_map__fd(dp.skel()->maps.spd_active), &zero, &a) != 0) ADD_FAILURE() << "spd_active";
    return a.version;
  }
  RunResult rev_via(uint32_t sa_reqid, const Bytes& p) { return dp.run(dp.skel()->progs.tc_rev_ingress, p, sa_reqid); }

  Bytes out = eth.udp({kLan, kRemote}, 40000, 53, Bytes(6, 1));
  Bytes out_xlated = eth.udp({kNat, kRemote}, 40000, 53, Bytes(6, 1));
  Bytes reply = eth.udp({kRemote, kNat}, 53, 40000, Bytes(9, 2));
  Bytes reply_xlated = eth.udp({kRemote, kLan}, 53, 40000, Bytes(9, 2));
  ipsnat_ct_key orig_key = ct_key(kLan, kRemote, 40000, 53, kUdp, IPSNAT_CT_ORIG);
  ipsnat_ct_key reply_key = ct_key(kRemote, kNat, 53, 40000, kUdp, IPSNAT_CT_REPLY);

  // The flow established under the old SA: translated both ways.
  void establish() {
    expect_out_translated();
    expect_reply_translated(kOldReqid);
    ASSERT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 1u);
  }
  void expect_out_translated() {
    auto r = snat(out);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_SAME_PACKET(r.out, out_xlated);
  }
  void expect_reply_translated(uint32_t sa_reqid) {
    auto r = rev_via(sa_reqid, reply);
    EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
    EXPECT_SAME_PACKET(r.out, reply_xlated);
  }
};

// The seam is live: a reply through another SA than the flow's, or through none, is refused.
TEST_F(CtReqid, AReplyThroughAnotherSaOrNoneIsRefused) {
  establish();
  EXPECT_EQ(rev_via(kNewReqid, reply).out, reply);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u);
  EXPECT_EQ(rev_via(0, reply).out, reply);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_NO_SA), 1u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 1u);
}

// The flow keeps sending across the re-establishment: its next packet out re-checks it and both
// entries take the new reqid; replies through the new SA are translated, through the old one no
// longer.
TEST_F(CtReqid, AfterTheReqidChangesTheNextPacketOutMovesTheFlowToTheNewSa) {
  establish();
  reinstall(kNewReqid);
  expect_out_translated();
  ASSERT_TRUE(dp.ct_get(orig_key) && dp.ct_get(reply_key));
  EXPECT_EQ(dp.ct_get(orig_key)->reqid, kNewReqid);
  EXPECT_EQ(dp.ct_get(reply_key)->reqid, kNewReqid);
  EXPECT_EQ(dp.ct_get(reply_key)->spd_version, spd_version());

  expect_reply_translated(kNewReqid);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 2u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 0u);

  EXPECT_EQ(rev_via(kOldReqid, reply).out, reply) << "the old SA's reqid is no longer the policy's";
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u);
  EXPECT_EQ(dp.ct_get(orig_key)->packets, 2u) << "the same binding carries on";
}

// A reply comes first after the change (nothing went out since): the reply side re-checks the
// flow against the SPD itself and accepts the SA of the policy that protects it now.
TEST_F(CtReqid, AfterTheReqidChangesAReplyThatComesFirstIsCheckedAgainstTheCurrentPolicy) {
  establish();
  reinstall(kNewReqid);
  EXPECT_EQ(rev_via(kOldReqid, reply).out, reply) << "the entry's reqid is stale, the policy's counts";
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u);

  expect_reply_translated(kNewReqid);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 2u);
  ASSERT_TRUE(dp.ct_get(reply_key));
  EXPECT_EQ(dp.ct_get(reply_key)->reqid, kNewReqid);
  EXPECT_EQ(dp.ct_get(reply_key)->spd_version, spd_version());
  expect_reply_translated(kNewReqid);  // now on the entry alone

  expect_out_translated();
  EXPECT_EQ(dp.ct_get(orig_key)->reqid, kNewReqid);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 3u);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u);
}

// An ICMP error from the far side about a translated packet follows its flow to the new SA.
TEST_F(CtReqid, AnIcmpErrorFromTheFarSideFollowsTheFlowToTheNewSa) {
  establish();
  reinstall(kNewReqid);
  PacketBuilder bare{false};
  Bytes err = eth.icmp_error({kRemote, kNat}, 3, 3, bare.udp({kNat, kRemote}, 40000, 53, Bytes(6, 1)));
  Bytes want = eth.icmp_error({kRemote, kLan}, 3, 3, bare.udp({kLan, kRemote}, 40000, 53, Bytes(6, 1)));
  auto r = rev_via(kNewReqid, err);
  EXPECT_EQ(r.retval, TC_ACT_UNSPEC);
  EXPECT_EQ(r.out, want) << dp.nonzero_reasons();
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_ICMP_ERROR), 1u);
}

// Where the SPD protects the flow no more (the policy is gone, not yet back), the reply side
// has no policy to go by: the entry's reqid decides, as it did before the change.
TEST_F(CtReqid, WithoutAPolicyForTheFlowTheEntrysReqidDecides) {
  establish();
  remove_nat_targets(dp, "10.0.0.0/8");
  EXPECT_EQ(rev_via(kNewReqid, reply).out, reply);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_PASS_WRONG_SA), 1u);
  expect_reply_translated(kOldReqid);
  EXPECT_EQ(dp.reason_packets(IPSNAT_R_XLATE_REVERSE), 2u);
}

}  // namespace
}  // namespace ipsnat::test
