#pragma once
// How `ipsnat flows` shows a flow: original and translated tuples, state, age, counters; as a
// line of text or as JSON. And the filters it accepts. Pure logic.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ct/flow.h"

namespace ipsnat::ct {

struct FlowFilter {
  std::optional<uint32_t> addr;  // network order: any address of the flow (inside, remote, NAT)
  std::optional<uint8_t> proto;
  std::optional<uint16_t> port;  // host order: any port of the flow
  std::optional<State> state;
  bool matches(const Flow& f) const;
};

// Parses "tcp", "udp", "icmp" or a number; nullopt when unknown.
std::optional<uint8_t> parse_proto(const std::string& s);
std::optional<State> parse_state(const std::string& s);

nlohmann::json flow_json(const Flow& f, uint64_t now_ns);
std::string flow_line(const Flow& f, uint64_t now_ns);

}  // namespace ipsnat::ct
