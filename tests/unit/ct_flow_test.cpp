#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "ct/flow.h"
#include "ct/flow_view.h"

namespace ipsnat::ct {
namespace {

constexpr uint64_t kSec = 1000000000ull;

uint32_t ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

// A flow 192.168.1.10:sport -> 10.0.0.1:dport translated to 10.20.30.2:nat_port.
Flow make_flow(uint8_t proto, uint16_t sport, uint16_t dport, uint16_t nat_port, uint64_t last_o, uint64_t last_r,
               uint32_t seen_o = 0, uint32_t seen_r = 0, uint64_t reply_packets = 1) {
  Entry o, r;
  o.key = {ip("192.168.1.10"), ip("10.0.0.1"), htons(sport), htons(dport), proto, IPSNAT_CT_ORIG, {0, 0}};
  o.value.xlat_addr = ip("10.20.30.2");
  o.value.xlat_port = htons(nat_port);
  o.value.last_ns = last_o;
  o.value.seen = seen_o;
  o.value.packets = 1;
  r.key = ct_partner_key(&o.key, &o.value);
  r.value.xlat_addr = o.key.saddr;
  r.value.xlat_port = o.key.sport;
  r.value.last_ns = last_r;
  r.value.seen = seen_r;
  r.value.packets = reply_packets;
  Flow f;
  f.orig = o;
  f.reply = r;
  return f;
}

TEST(CtFlow, PartnerKeysPointAtEachOther) {
  Flow f = make_flow(6, 40000, 80, 1234, 0, 0);
  EXPECT_EQ(f.reply->key.saddr, ip("10.0.0.1"));
  EXPECT_EQ(f.reply->key.daddr, ip("10.20.30.2"));
  EXPECT_EQ(ntohs(f.reply->key.sport), 80);
  EXPECT_EQ(ntohs(f.reply->key.dport), 1234);
  ipsnat_ct_key back = ct_partner_key(&f.reply->key, &f.reply->value);
  EXPECT_EQ(0, std::memcmp(&back, &f.orig->key, sizeof(back)));
}

TEST(CtFlow, PairingJoinsDirectionsAndKeepsHalves) {
  Flow a = make_flow(6, 40000, 80, 40000, 1, 1), b = make_flow(17, 5353, 53, 2000, 1, 1);
  Flow c = make_flow(1, 7, 0, 9, 1, 1);
  std::vector<Entry> entries = {*a.reply, *b.orig, *a.orig, *b.reply, *c.orig};  // c's reply missing
  auto flows = pair_entries(entries);
  ASSERT_EQ(flows.size(), 3u);
  int complete = 0, half = 0;
  for (const auto& f : flows) (f.complete() ? complete : half)++;
  EXPECT_EQ(complete, 2);
  EXPECT_EQ(half, 1);
}

TEST(CtFlow, AReplyThatPointsElsewhereIsNotJoined) {
  Flow a = make_flow(17, 5353, 53, 2000, 1, 1);
  Entry stray = *a.reply;
  stray.value.xlat_addr = ip("192.168.1.99");  // the port now belongs to another inside host
  auto flows = pair_entries({*a.orig, stray});
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_FALSE(flows[0].complete());
  EXPECT_FALSE(flows[1].complete());
}

TEST(CtFlow, TcpStatesFollowTheFlagsOfBothDirections) {
  EXPECT_EQ(classify(make_flow(6, 1, 2, 1, 0, 0, IPSNAT_CT_SEEN_SYN, 0, 0)), State::kTcpSynSent);
  EXPECT_EQ(classify(make_flow(6, 1, 2, 1, 0, 0, IPSNAT_CT_SEEN_SYN, IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK)),
            State::kTcpSynSent);
  EXPECT_EQ(classify(make_flow(6, 1, 2, 1, 0, 0, IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK,
                               IPSNAT_CT_SEEN_SYN | IPSNAT_CT_SEEN_ACK)),
            State::kTcpEstablished);
  EXPECT_EQ(classify(make_flow(6, 1, 2, 1, 0, 0, IPSNAT_CT_SEEN_ACK | IPSNAT_CT_SEEN_FIN, IPSNAT_CT_SEEN_ACK)),
            State::kTcpClosing);
  EXPECT_EQ(classify(make_flow(6, 1, 2, 1, 0, 0, IPSNAT_CT_SEEN_ACK | IPSNAT_CT_SEEN_FIN, IPSNAT_CT_SEEN_RST)),
            State::kTcpReset);
  EXPECT_EQ(classify(make_flow(17, 1, 2, 1, 0, 0, 0, 0, 0)), State::kUdpUnreplied);
  EXPECT_EQ(classify(make_flow(17, 1, 2, 1, 0, 0, 0, 0, 3)), State::kUdpReplied);
  EXPECT_EQ(classify(make_flow(1, 1, 0, 1, 0, 0)), State::kIcmp);
}

TEST(CtFlow, ExpiryUsesTheLaterDirectionAndTheStatesTimeout) {
  Timeouts t = Timeouts::from_config(ipsnat_config{});
  EXPECT_EQ(t.tcp_est_s, unsigned(IPSNAT_DEF_TCP_EST_S));
  Flow est = make_flow(6, 1, 2, 1, 100 * kSec, 50 * kSec, IPSNAT_CT_SEEN_ACK, IPSNAT_CT_SEEN_ACK);
  EXPECT_FALSE(expired(est, (100 + IPSNAT_DEF_TCP_EST_S) * kSec, t));
  EXPECT_TRUE(expired(est, (100 + IPSNAT_DEF_TCP_EST_S + 1) * kSec, t));
  Flow rst = make_flow(6, 1, 2, 1, 100 * kSec, 100 * kSec, IPSNAT_CT_SEEN_RST, 0);
  EXPECT_TRUE(expired(rst, (100 + IPSNAT_DEF_TCP_RST_S + 1) * kSec, t));
  // The clock never goes backwards for a flow stamped after `now` was read.
  EXPECT_FALSE(expired(rst, 50 * kSec, t));

  ipsnat_config c{};
  c.udp_s = 5;
  c.udp_stream_s = 7;
  Timeouts custom = Timeouts::from_config(c);
  EXPECT_TRUE(expired(make_flow(17, 1, 2, 1, 0, 0, 0, 0, 0), 6 * kSec, custom));
  EXPECT_FALSE(expired(make_flow(17, 1, 2, 1, 0, 0, 0, 0, 1), 6 * kSec, custom));
  EXPECT_EQ(custom.icmp_s, unsigned(IPSNAT_DEF_ICMP_S));
}

TEST(CtFlowView, TextAndJsonShowBothTuples) {
  Flow f = make_flow(6, 40000, 80, 1234, 3 * kSec, 4 * kSec, IPSNAT_CT_SEEN_ACK, IPSNAT_CT_SEEN_ACK);
  f.orig->value.created_ns = 1 * kSec;
  f.reply->value.created_ns = 1 * kSec;
  EXPECT_EQ(flow_line(f, 10 * kSec),
            "tcp 192.168.1.10:40000 -> 10.0.0.1:80 as 10.20.30.2:1234 established age 9s idle 6s pkts 1/1 bytes 0/0");
  auto j = flow_json(f, 10 * kSec);
  EXPECT_EQ(j["original"]["src"], "192.168.1.10");
  EXPECT_EQ(j["translated"]["src"], "10.20.30.2");
  EXPECT_EQ(j["translated"]["sport"], 1234);
  EXPECT_EQ(j["state"], "established");
}

// A protocol without ports (bpf/lib/nat.h nat_proto_portless) shows its addresses alone.
TEST(CtFlowView, APortlessFlowShowsItsAddressesAlone) {
  Flow f = make_flow(47, 0, 0, 0, 2 * kSec, 2 * kSec);
  EXPECT_EQ(flow_line(f, 3 * kSec), "gre 192.168.1.10 -> 10.0.0.1 as 10.20.30.2 other age 3s idle 1s pkts 1/1 bytes 0/0");
  auto j = flow_json(f, 3 * kSec);
  EXPECT_EQ(j["proto"], "gre");
  EXPECT_EQ(j["translated"]["src"], "10.20.30.2");
  EXPECT_FALSE(j["translated"].contains("sport"));
  EXPECT_EQ(parse_proto("gre"), 47);
  EXPECT_EQ(parse_proto("41"), 41);
  EXPECT_EQ(state_name(classify(f)), std::string("other"));
}

TEST(CtFlowView, AMasqueradedFlowShowsNoReqid) {
  Flow f = make_flow(17, 40000, 53, 61000, 0, 0);
  f.orig->value.kind = f.reply->value.kind = IPSNAT_CT_KIND_MASQ;
  f.orig->value.reqid = f.reply->value.reqid = 7;  // the guard's ipsnat_dev generation
  EXPECT_EQ(flow_json(f, 0)["reqid"], 0u);
  EXPECT_EQ(flow_json(f, 0)["kind"], "masquerade");
  f.orig->value.kind = f.reply->value.kind = IPSNAT_CT_KIND_NAPT;
  EXPECT_EQ(flow_json(f, 0)["reqid"], 7u);
}

TEST(CtFlowView, FiltersMatchAnySide) {
  Flow f = make_flow(17, 5353, 53, 2000, 0, 0);
  FlowFilter by_nat;
  by_nat.addr = ip("10.20.30.2");
  EXPECT_TRUE(by_nat.matches(f));
  FlowFilter by_port;
  by_port.port = 2000;
  EXPECT_TRUE(by_port.matches(f));
  FlowFilter tcp;
  tcp.proto = parse_proto("tcp");
  EXPECT_FALSE(tcp.matches(f));
  EXPECT_FALSE(parse_proto("sctpx"));
  EXPECT_EQ(parse_state("replied"), State::kUdpReplied);
}

}  // namespace
}  // namespace ipsnat::ct
