#pragma once
// What `ipsnat status` and the metrics say about the conntrack tables, IPv4 (ipsnat_ct) and IPv6
// (ipsnat_ct6, NAT66 flows): flows by protocol, NAT ports in use and the busiest remote endpoint
// per NAT address, traffic by reqid. Pure logic over the entries a caller read
// (PinnedState::conntrack reads them with pins::CtTable).
//
//   ConntrackSummary s;
//   add_entries(s, v4_entries);
//   s.ipv6.emplace();  // ipsnat_ct6 is pinned
//   add_entries(s, v6_entries);
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ct/flow.h"
#include "ct/flow6.h"

namespace ipsnat::state {

// The flows of one table.
struct FlowCounts {
  uint64_t entries = 0;  // map entries (two per flow)
  uint64_t flows = 0;    // ORIG entries
  // "tcp", "udp", "other" and the table's echo: "icmp" (IPv4) or "icmpv6" (IPv6).
  std::map<std::string, uint64_t> by_proto;
};

struct ConntrackSummary {
  FlowCounts ipv4;                 // ipsnat_ct
  std::optional<FlowCounts> ipv6;  // ipsnat_ct6; absent when it is not pinned
  // Both tables from here on; a NAT address's text (dotted IPv4, RFC 5952 IPv6) names its family.
  // NAT ports (echo ids) in use per NAT address: REPLY entries.
  std::map<std::string, uint64_t> ports_in_use;
  // Per NAT address, the most bindings toward one remote endpoint (address, port, protocol):
  // bindings are endpoint-dependent, so the port range runs out per remote endpoint.
  std::map<std::string, uint64_t> busiest_endpoint;
  // Traffic of the flows currently tracked, by the reqid of the policy that required them.
  struct PolicyTraffic {
    uint64_t flows = 0, packets = 0, bytes = 0;
  };
  std::map<uint32_t, PolicyTraffic> by_reqid;
};

// The names flows are counted under, in the order the metrics list them.
inline constexpr const char* kProtos4[] = {"tcp", "udp", "icmp", "other"};
inline constexpr const char* kProtos6[] = {"tcp", "udp", "icmpv6", "other"};

// Adds a table's entries: IPv4 ones to s.ipv4, IPv6 ones to s.ipv6 (set when absent). A key seen
// twice (a walk restarted by a key deleted under it) counts once.
void add_entries(ConntrackSummary& s, const std::vector<ct::Entry>& entries);
void add_entries(ConntrackSummary& s, const std::vector<ct::Entry6>& entries);

}  // namespace ipsnat::state
