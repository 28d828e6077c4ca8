#pragma once
// What translation an IPsec out-policy implies: its source selector is the inner source the
// kernel wants, the NAT makes inside hosts use it.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "maps/spd.h"
#include "spd/policy.h"

namespace ipsnat::spd {

class SpdModel;

struct NatOverride {
  // Which policies: by kernel index, or those whose source selector contains policy_src (the
  // rule's `to`: a translated source the kernel gives to that policy). Either may be unset.
  std::optional<uint32_t> policy_index;
  std::optional<Prefix> policy_src;
  // IPv6 (spd/npt6.h): NAPT is NAT66 (nat a /128 and nat_count addresses from it, or a prefix:
  // its pool as the automatic one's), PREFIX is NPTv6; no destinations.
  spd_nat_kind kind = SPD_NAT_NONE;
  Prefix nat;     // NAPT: nat.addr; PREFIX: the block the inside prefix maps onto
  uint32_t nat_count = 1;  // NAPT: a pool of this many addresses from nat.addr on
  Prefix inside;  // sources eligible for translation
  // Where the translation applies; empty: the whole destination selector of each policy. A
  // destination disjoint from a policy's destination selector is not that policy's concern; one
  // that overlaps it without lying inside is an error (the rule does not apply to the policy).
  std::vector<Prefix> destinations;
  std::string origin;  // "ipsnat.toml:12": where the rule was written, for messages

  // Whether the rule names p: p's kernel index when policy_index is set, and p's source selector
  // contains `to` (policy_src) when that is set.
  bool names(const Policy& p) const {
    if (policy_index && *policy_index != p.index) return false;
    return !policy_src || (p.sel.src.len <= policy_src->len && p.sel.src.contains(policy_src->addr));
  }
};

struct NatConfig {
  // IPv4 inside prefixes: the sources NAPT translates, as the inside set (maps/inside.h); empty:
  // any source is eligible.
  std::vector<Prefix> inside;
  std::vector<NatOverride> overrides;
  // The gateway's own addresses: IPv4 ones are INSIDE_LOCAL entries of the inside set
  // (maps/inside.h) and are left out of NAPT pools (implied_nats), IPv6 ones are left out of
  // NAT66 pools (spd/npt6.h npt6_of).
  std::vector<Address> local;
};

struct ImpliedNat {
  spd_nat_kind kind = SPD_NAT_NONE;
  Prefix nat;
  uint32_t nat_count = 1;            // NAPT: a pool of this many addresses from nat.addr on
  Prefix inside;                     // the block eligible sources must be in (0/0 for the inside set)
  Prefix dst;                        // destinations it applies to (0/0: the policy's selector)
  std::vector<Prefix> inside_set;    // NAPT implied by the SPD: every inside prefix (SPD_NAT_INSIDE_SET)
  std::string why;
  // The datapath's struct (policy_index and reqid filled from the policy).
  spd_nat_target target(const Policy& p) const;
  std::string str() const;
  std::string inside_str() const;  // "192.168.1.0/24, 192.168.2.0/24"
  std::string dst_str() const;     // " for 10.1.0.0/16", or "" for the whole selector
  std::string nat_str() const;     // "10.20.30.2", or a pool "10.20.30.0-10.20.30.7"
  // The NAPT addresses as prefixes (a pool split into aligned blocks), or the PREFIX block.
  std::vector<Prefix> nat_blocks() const;
};

// The longest run of a pool's places 0..count-1 that no place in `taken` interrupts (the first of
// equal runs): its first place and size; {0, count} when every place is taken. NAPT and NAT66
// pools leave the gateway's own addresses out with it: a NAT port on such an address would
// collide with the gateway's own sockets on it (a virtual IP's, IKE's).
std::pair<uint32_t, uint32_t> longest_free_run(uint32_t count, std::vector<uint32_t> taken);

// Every translation policy p implies, in the order the datapath tries them: one per (rule,
// destination) of the [[nat]] rules that apply to it, else the one the SPD implies. A single
// element of kind SPD_NAT_NONE (with why) when there is none. A NAPT pool (nat_count > 1) is the
// longest run of its addresses that no IPv4 address of cfg.local interrupts (longest_free_run);
// one address (a virtual IP, a [[nat]] rule's single `to`) is kept even when it is the gateway's
// own (docs/datapath.md "Not handled": its ports then share the gateway's).
std::vector<ImpliedNat> implied_nats(const Policy& p, const NatConfig& cfg);
// The first of implied_nats (what `ipsnat policies` and attach's plan show).
ImpliedNat implied_nat(const Policy& p, const NatConfig& cfg);

// Whether the gateway's addresses becoming `local` (cfg.local before) changes a translation the
// datapath holds for model's policies: an IPv4 NAPT pool (implied_nats) or an IPv6 rule
// (npt6_entries: a NAT66 pool). Only then are established flows checked again (the mirror
// publishes a new SPD version, docs/datapath.md "Established flows and SPD changes"): an address
// that comes and goes outside every pool costs nothing.
bool local_change_moves_nat(const SpdModel& model, const NatConfig& cfg, const std::vector<Address>& local);

// Policy mode translates in LWT xmit, and the kernel's lookup after BPF_LWT_REROUTE carries no
// ports (docs/datapath.md, "Kernel path"): a policy whose port conditions port 0 does not meet is
// never found for a packet translated there. Why such a policy is not translated in policy mode
// ("restricts ports (tcp dport 443), which ..."), or nullopt.
std::optional<std::string> reroute_misses(const Policy& p);

// Whether some destination of the target lies in the cell (dlen, dnet_host): it contains the
// cell (then its dst test passes for every flow the cell holds) or lies inside it.
bool target_meets_cell(const spd_nat_target& t, uint8_t dlen, uint32_t dnet_host);

// A required template in tunnel (or BEET) mode: the policy carries other hosts' packets. Transport
// mode protects this host's own, addressed as they are (L2TP or GRE over IPsec): never translated.
bool tunnel_mode(const Policy& p);

// All take and return network order, as the datapath does. nat_eligible checks the blocks only:
// an inside-set target's sources are narrowed by the datapath's ipsnat_inside lookup.
bool nat_eligible(const spd_nat_target& t, uint32_t saddr, uint32_t daddr);
uint32_t nat_translate(const spd_nat_target& t, uint32_t saddr);

}  // namespace ipsnat::spd
