#pragma once
// A tracked flow as userspace sees it: the datapath's two entries (maps/ct.h) joined, its
// state and whether it has expired. Pure logic: no syscalls, unit-tested.
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "maps/config.h"
#include "maps/ct.h"

namespace ipsnat::ct {

struct Entry {
  ipsnat_ct_key key{};
  ipsnat_ct_entry value{};
};

struct Flow {
  std::optional<Entry> orig;   // inside -> remote
  std::optional<Entry> reply;  // remote -> NAT address
  bool complete() const { return orig && reply; }
  uint8_t proto() const { return orig ? orig->key.proto : reply->key.proto; }
  uint64_t created_ns() const;
  uint64_t last_ns() const;  // the later of the two directions
  // The key of the missing direction's entry, derived from the present one.
  ipsnat_ct_key orig_key() const;
  ipsnat_ct_key reply_key() const;
};

// Pairs entries into flows; an entry whose partner is absent becomes a half flow (left by a
// race between the datapath and a sweep; the GC reclaims it like any flow).
std::vector<Flow> pair_entries(const std::vector<Entry>& entries);

enum class State {
  kTcpSynSent,      // no handshake completed yet
  kTcpEstablished,  // both sides seen, ACK from inside
  kTcpClosing,      // FIN seen
  kTcpReset,        // RST seen
  kUdpUnreplied,
  kUdpReplied,
  kIcmp,
  kOther,
};
std::string_view state_name(State s);
State classify(const Flow& f);

// Idle timeouts, seconds: the config map's values with the defaults of maps/config.h for 0.
struct Timeouts {
  uint32_t tcp_syn_s, tcp_est_s, tcp_fin_s, tcp_rst_s, udp_s, udp_stream_s, icmp_s, other_s;
  static Timeouts from_config(const ipsnat_config& cfg);
  uint32_t for_state(State s) const;
};

bool expired(const Flow& f, uint64_t now_ns, const Timeouts& t);

}  // namespace ipsnat::ct
