#pragma once
// An IPv6 (NAT66) flow as userspace sees it: the two entries of ipsnat_ct6 (maps/ct6.h) joined.
// Its state and expiry are those of an IPv4 flow with the same flags, counters and times
// (ct/flow.h: as_flow), so both tables age by one set of rules. Pure logic.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ct/flow.h"
#include "maps/ct6.h"

namespace ipsnat::ct {

struct Entry6 {
  ipsnat_ct6_key key{};
  ipsnat_ct6_entry value{};
};

struct Flow6 {
  std::optional<Entry6> orig;   // inside -> remote
  std::optional<Entry6> reply;  // remote -> NAT address
  ipsnat_ct6_key orig_key() const;
  ipsnat_ct6_key reply_key() const;
  // The same flow's state in the IPv4 flow's terms (addresses left out; ICMPv6 as ICMP).
  Flow as_flow() const;
};

// Pairs entries into flows, as pair_entries (an entry without its partner is a half flow).
std::vector<Flow6> pair_entries6(const std::vector<Entry6>& entries);
// Whether entry e's derived partner key is `partner` (the partner points back).
bool points_to(const Entry6& e, const ipsnat_ct6_key& partner);

std::string flow6_line(const Flow6& f, uint64_t now_ns);
nlohmann::json flow6_json(const Flow6& f, uint64_t now_ns);

}  // namespace ipsnat::ct
