// A flow the far side opened (a port-forward, a BINAT mapping): the two conntrack entries the
// datapath created for it, checked the same way wherever such a flow is opened.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "maps/ct.h"
#include "support/datapath.h"
#include "support/packet.h"

namespace ipsnat::test {

struct InboundFlow {
  std::string remote;
  uint16_t remote_port = 0;
  std::string outside;  // the address the remote opened to
  uint16_t outside_port = 0;
  std::string inside;  // the LAN host the datapath sent it to
  uint16_t inside_port = 0;
  uint8_t proto = 0;
};

// Expects exactly the flow's two entries, of `kind`: REPLY (keyed by the remote's packet)
// translating to the inside host, ORIG (keyed by the inside host's answer) translating back to the
// outside address. Returns the REPLY entry for the caller's own checks (nullopt: missing).
inline std::optional<ipsnat_ct_entry> expect_inbound_flow(const Datapath& dp, const InboundFlow& f,
                                                          ipsnat_ct_kind kind) {
  auto reply = dp.ct_get(ct_key(f.remote, f.outside, f.remote_port, f.outside_port, f.proto, IPSNAT_CT_REPLY));
  auto orig = dp.ct_get(ct_key(f.inside, f.remote, f.inside_port, f.remote_port, f.proto, IPSNAT_CT_ORIG));
  EXPECT_TRUE(reply && orig) << "reply " << bool(reply) << ", orig " << bool(orig);
  if (!reply || !orig) return std::nullopt;
  EXPECT_EQ(reply->xlat_addr, parse_ipv4(f.inside));
  EXPECT_EQ(ntohs(reply->xlat_port), f.inside_port);
  EXPECT_EQ(reply->kind, kind);
  EXPECT_EQ(orig->xlat_addr, parse_ipv4(f.outside));
  EXPECT_EQ(ntohs(orig->xlat_port), f.outside_port);
  EXPECT_EQ(orig->kind, kind);
  EXPECT_EQ(dp.ct_all().size(), 2u);
  return reply;
}

}  // namespace ipsnat::test
