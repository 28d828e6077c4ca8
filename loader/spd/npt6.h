#pragma once
// NPTv6 (RFC 6296) from the SPD: which IPv6 out-policies imply a stateless prefix translation, and
// the entries of the ipsnat_npt6 map (maps/npt6.h; written by mirror/npt6_map.h).
//
//   auto m = npt6_of(policy, inside);   // the mapping, or why there is none (attach prints it)
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "maps/npt6.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/policy.h"

namespace ipsnat::spd {

struct Npt6Mapping {
  bool ok = false;
  bool nat66 = false;  // NAT66 with ports, not NPTv6: the policy's source is one address, or a prefix
                       // no 1:1 map holds the LANs in
  // The LAN prefixes whose hosts are translated: NPTv6 the one it maps (inside.front()), NAT66
  // every IPv6 inside prefix.
  std::vector<Prefix> inside;
  Prefix outside;  // what they become: NAT66 the policy's address (of a prefix its first after the
                   // all-zeros one, /128); NPTv6 the policy's source
                   // selector's first part of inside.front()'s length (the whole selector when the
                   // lengths are equal), host bits cleared
  // NAT66: the pool, this many addresses from outside on (1: outside alone); each LAN source
  // prefers the one npt6_pool_pick names (maps/npt6.h).
  uint32_t pool = 1;
  std::string why;  // when !ok
  // A [[nat]] rule's mapping (its origin, "ipsnat.toml:7"; "" when the SPD implies it): the rule's
  // `inside` alone is translated, so its NAT66 rule carries that prefix as from/len (maps/npt6.h).
  std::string rule;
  // NPTv6 of one LAN under a selector with room beside its block: the other IPv6 inside prefixes,
  // NAT66 with ports to rest_to (/128, an address of the selector outside the mapped block).
  std::vector<Prefix> rest;
  Prefix rest_to;
  uint32_t rest_pool = 1;  // the rest's pool: this many addresses from rest_to on
  // The LANs no translation of the policy takes, and why, in one line ("" when none): beside a
  // 1:1 map that takes the whole selector, or beside NAT66 where the map's NPTv6 is not applied.
  std::string left_out;
  // "nptv6 fd00:1::/48 -> 2001:db8:a::/48", "nat66 fd00:9::/64, fd00:a::/64 -> 2001:db8:b::5 (ports)",
  // "nat66 fd00:9::/48 -> 2001:db8:b::101-2001:db8:b::1ff (ports)",
  // "nptv6 fd00:9:9:9::/64 -> 2001:db8:b::/64; nat66 fd00:5::/48 -> 2001:db8:b:1::1-2001:db8:b:1::1:0 (ports)",
  // with "; " + left_out when some LAN is left out, "; nat rule ipsnat.toml:7" when a rule made it,
  // or "none (why)"
  std::string str() const;
  std::string inside_str() const;  // "fd00:9::/64, fd00:a::/64"
  // NAT66: "2001:db8:b::5", or the pool "2001:db8:b::101-2001:db8:b::1ff"; NPTv6: the prefix.
  std::string to_str() const;
  // NAT66: the pool's last address.
  Address pool_last() const;
  // NAT66: whether a is an address of the pool (a source the datapath passes as it is).
  bool pool_holds(const Address& a) const;
  // NAT66: the address a LAN source prefers (its pool's, by npt6_pool_pick, as the datapath).
  Address nat66_address(const Address& src) const;
  // NAT66: the pool as aligned prefixes (blackhole routes); NPTv6: outside.
  std::vector<Prefix> to_blocks() const;
  // Whether a source address is one of the mapping's LAN hosts (NPTv6's or NAT66's).
  bool from_inside(const Address& a) const;
  // What a source of the mapping meets: beside NPTv6, a source outside the mapped LAN the rest's
  // NAT66 (rest_nat66); else this mapping.
  Npt6Mapping for_source(const Address& a) const;
  // The NAT66 of the rest alone: {nat66, inside rest, outside rest_to}.
  Npt6Mapping rest_nat66() const;
};

// An IPv6 IPsec out-policy in tunnel mode whose source selector is a prefix /1../112 maps the one
// IPv6 inside prefix of that length (else the one longer, up to /112, onto the selector's first
// part of its length) onto it (NPTv6); one whose source is one address (/128) takes every IPv6 inside
// prefix, of any length, to that address with ports (NAT66), as IPv4 NAPT does for several LANs. A
// prefix (/1../127) whose LANs no such 1:1 map holds (one larger than it, or several that fit only
// one by one) is NAT66 too, over a pool as IPv4's NAPT over a block: the prefix's addresses from
// the first after the Subnet-Router anycast one (RFC 4291 2.6.1), as many as it holds up to
// IPSNAT_NPT6_MAX_POOL. Beside the one LAN a 1:1 map holds, the other LANs (larger ones, longer
// than /112, or smaller ones beside an exact fit) are NAT66 over the same kind of pool of the
// selector's block that follows the mapped one (rest, rest_to, rest_pool): every address of the
// mapped block is some LAN host's image, and that block's anycast address is the subnet's
// routers'. Where the mapped block is the whole selector no address is left: left_out names those
// LANs.

// The datapath applies the mapping keyed by the policy's if_id and mark (npt6_key_mark;
// bpf/lib/npt6.h, bpf/lib/nat66.h; NAT66's sources are the IPv6 inside set, NPT6_INSIDE keys).
// local: the gateway's own addresses; a pool leaves them out (the gateway's sockets on a virtual
// IP would collide with NAT ports): it is the longest run of the pool's addresses no local one
// interrupts (the first of equal runs), unless every address is local (a /128 virtual IP itself).
// rules: the [[nat]] rules; an IPv6 one (inside an IPv6 prefix) applies to the policies whose
// source selector contains its `to` (NatOverride::policy_src) and replaces what the SPD implies:
// NAT66 of its inside prefix to its address or pool (which must lie inside the selector), or NPTv6
// onto its prefix. Two rules applying to one policy are refused (its rule is kept per destination).
Npt6Mapping npt6_of(const Policy& p, const std::vector<Prefix>& inside, const std::vector<Address>& local = {},
                    const std::vector<NatOverride>& rules = {});

// The one flow mark the policy's rules are kept for (maps/npt6.h npt6_key.mark): 0 for an unmarked
// policy (mask 0), its value under a full mask (a VTI's policies: the VTI asks with its okey);
// nullopt for a partial mask, which matches several marks: such a policy takes no rule.
std::optional<uint32_t> npt6_key_mark(const Policy& p);

// Whether p's rules are the ones policy mode's uplink uses (LWT xmit, TC ingress): bound to no
// interface and kept for mark 0. A VTI's (marked) policies are not: only the VTI asks for them.
bool npt6_policy_mode_rule(const Policy& p);

// The mapping as attach applies it on a device: NPTv6 only with --binat (its reverse rule opens
// every mapped host to the far side; the datapath checks the device's IPSNAT_DEV_BINAT too,
// bpf/lib/xlate.h): without it a mapping with a rest is the rest's NAT66 alone (stateful, as a
// one-address policy's), the mapped LAN left out; npt6_mapped's on every device, as the map
// holds it: the rules of if_id 0 and mark 0 serve policy mode's LWT xmit and a route-mode device
// without if_id or okey alike, so such a device meets policy mode's refusals too; a VTI asks for
// the rules of its okey, its marked policies', which no uplink shares.
// spd: the policies the kernel holds (p among them or not).
Npt6Mapping npt6_applied(const Policy& p, const std::vector<Prefix>& inside, bool binat,
                         const std::vector<const Policy*>& spd, const std::vector<Address>& local = {},
                         const std::vector<NatOverride>& rules = {});

// The mapping the ipsnat_npt6 map holds for p in the SPD `spd` (npt6_entries): npt6_of's, unless
// npt6_refusal refuses it. The datapath picks a rule by destination alone (the longest, then the
// first by priority), never by protocol or ports, while the kernel's lookup after the translation
// tells flows apart by protocol, and by ports through an xfrm interface or a VTI (the lookup after
// policy mode's LWT reroute carries port 0). A policy restricted by them ("restricted") takes no rule
// where its rule would take flows the kernel gives to another policy to an address no policy covers
// for them:
// - with a mark mask neither 0 nor full: it matches several flow marks, and rules are kept for
//   one (npt6_key_mark).
// - bound to no interface (if_id 0), unmarked (npt6_policy_mode_rule) and restricted to ports
//   port 0 does not meet: always (reroute_misses). Those are translated in LWT xmit (policy mode),
//   whose reroute's lookup carries no ports. A VTI's marked policies are not: its own lookup
//   (vti_xmit) carries the ports.
// - where an unrestricted IPsec out-policy of its if_id and mark covers its destination (the same one or a
//   shorter one holding it; npt6_unrestricted_cover): that policy's rule translates every flow
//   there, and the kernel puts the restricted policy's flows under it.
// - where another restricted policy of its if_id and mark, on a destination that overlaps its own, needs
//   another translation (another address or prefix, or another reqid; npt6_disagreeing): one
//   rule would take the other's flows to its address. Neither takes a rule, and flows there leave
//   untranslated, as without ipsnat. Restricted policies that need the same translation share
//   the rule.
// Alone on its destination a restricted policy keeps its rule, as IPv4's route mode translates
// such a policy: the lookup carries the protocol (and through an interface the ports), so its
// flows reach it, and other flows there find no policy with or without ipsnat.
Npt6Mapping npt6_mapped(const Policy& p, const std::vector<Prefix>& inside, const std::vector<const Policy*>& spd,
                        const std::vector<Address>& local = {}, const std::vector<NatOverride>& rules = {});

// Why npt6_mapped refuses the mapping npt6_of gives p (the first of the reasons above, naming
// the other policy), or nullopt.
std::optional<std::string> npt6_refusal(const Policy& p, const std::vector<Prefix>& inside,
                                        const std::vector<const Policy*>& spd,
                                        const std::vector<NatOverride>& rules = {});

// For a restricted p: the first unrestricted IPv6 IPsec out-policy of its if_id whose destination
// holds p's (equal or shorter); nullptr when there is none or p is unrestricted.
const Policy* npt6_unrestricted_cover(const Policy& p, const std::vector<const Policy*>& spd);

// For a restricted p that alone would take a rule: the first other such restricted policy of its
// if_id whose destination overlaps p's (one holds the other) and whose rule translates otherwise;
// nullptr when there is none.
const Policy* npt6_disagreeing(const Policy& p, const std::vector<Prefix>& inside, const std::vector<const Policy*>& spd,
                               const std::vector<NatOverride>& rules = {});

// Where NPTv6 maps the inside address `a` (in m.inside) in m.outside, as bpf/lib/npt6.h does
// (RFC 6296 section 3.7); nullopt when RFC 6296 leaves it unmapped (the word to adjust is 0xffff).
std::optional<Address> npt6_map_address(const Npt6Mapping& m, const Address& a);

// The one's-complement value added to the adjusted word when an address of `from` becomes one of
// `to` (RFC 6296 section 3.2): sum(from) - sum(to), host order.
uint16_t npt6_adjustment(const Prefix& from, const Prefix& to);

// The map's entries for the SPD: per policy npt6_mapped maps an NPT6_OUT key (if_id, mark, its
// destination) and, for NPTv6, an NPT6_IN key (if_id, mark, its source), and with a rest an
// NPT6_OUT_REST key (if_id, mark, its destination; the NPT6_OUT rule then carries NPT6_FLAG_REST). Where two policies want one key, the one the kernel would
// evaluate first (lower priority value, then lower index) has it. Besides them the IPv6 inside set: an
// NPT6_INSIDE key (if_id 0, mark 0) per IPv6 inside prefix.
std::map<std::vector<uint8_t>, npt6_rule> npt6_entries(const SpdModel& model, const std::vector<Prefix>& inside,
                                                       const std::vector<Address>& local = {},
                                                       const std::vector<NatOverride>& rules = {});

}  // namespace ipsnat::spd
