#include "support/spd_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "mirror/mirror.h"
#include "spd/compiler.h"
#include "spd/tunnel_policy.h"

namespace ipsnat::test {
namespace {

std::pair<uint32_t, uint32_t> parse_prefix(const std::string& p) {
  auto slash = p.find('/');
  uint32_t addr = parse_ipv4(p.substr(0, slash));
  int len = slash == std::string::npos ? 32 : std::stoi(p.substr(slash + 1));
  uint32_t mask = len == 0 ? 0 : htonl(~uint32_t(0) << (32 - len));
  return {addr & mask, mask};
}

}  // namespace

spd_nat_target napt_target(const std::string& nat_addr, const std::string& inside_prefix, uint32_t reqid) {
  spd_nat_target t{};
  t.kind = SPD_NAT_NAPT;
  t.nat_addr = parse_ipv4(nat_addr);
  t.nat_mask = 0xffffffff;
  std::tie(t.inside_net, t.inside_mask) = parse_prefix(inside_prefix);
  t.reqid = reqid;
  return t;
}

spd_nat_target napt_set_target(const std::string& nat_addr, uint32_t reqid) {
  spd_nat_target t = napt_target(nat_addr, "0.0.0.0/0", reqid);
  t.flags = SPD_NAT_INSIDE_SET;
  return t;
}

spd_nat_target napt_pool_target(const std::string& first, uint32_t count, const std::string& inside_prefix,
                                uint32_t reqid) {
  spd_nat_target t = napt_target(first, inside_prefix, reqid);
  t.nat_span = static_cast<uint16_t>(count - 1);
  return t;
}

spd_nat_target prefix_target(const std::string& nat_prefix, const std::string& inside_prefix, uint32_t reqid) {
  spd_nat_target t{};
  t.kind = SPD_NAT_PREFIX;
  std::tie(t.nat_addr, t.nat_mask) = parse_prefix(nat_prefix);
  std::tie(t.inside_net, t.inside_mask) = parse_prefix(inside_prefix);
  t.reqid = reqid;
  return t;
}

spd_nat_target for_destination(spd_nat_target t, const std::string& dst_prefix) {
  std::tie(t.dst_net, t.dst_mask) = parse_prefix(dst_prefix);
  return t;
}

// The SPD maps are a compiled classifier now (maps/spd.h): each call adds one IPsec out-policy
// for dst_prefix whose NAT is forced to `target` by an override, recompiles all of this
// datapath's policies and writes them the way the mirror does.
namespace {

struct Installed {
  std::vector<spd::Policy> policies;
  spd::NatConfig cfg;
};

// What this datapath's SPD holds, keyed by the Datapath's instance: a loaded object (and so the
// maps' kernel ids) serves one test after another (support/datapath.cpp).
Installed& installed_in(Datapath& dp) {
  static std::map<uint64_t, Installed> installed;
  return installed[dp.instance()];
}

void write_spd(Datapath& dp, const Installed& in) {
  std::vector<const spd::Policy*> ordered;
  for (const auto& q : in.policies) ordered.push_back(&q);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const spd::Policy* a, const spd::Policy* b) { return a->priority < b->priority; });
  auto compiled = spd::compile_spd(ordered, in.cfg);
  if (compiled.refused) throw std::runtime_error("SPD compile refused: " + *compiled.refused);
  mirror::SpdMapWriter writer(mirror::SpdMapFds::from_object(dp.skel()->obj));
  writer.write(compiled);
}

}  // namespace

void remove_nat_targets(Datapath& dp, const std::string& dst_prefix) {
  auto& in = installed_in(dp);
  auto [daddr, dmask] = parse_prefix(dst_prefix);
  Prefix dst{Address::v4(daddr), static_cast<uint8_t>(__builtin_popcount(dmask))};
  std::vector<uint32_t> gone;
  std::erase_if(in.policies, [&](const spd::Policy& p) {
    if (!(p.sel.dst == dst)) return false;
    gone.push_back(p.index);
    return true;
  });
  std::erase_if(in.cfg.overrides, [&](const spd::NatOverride& o) {
    return std::find(gone.begin(), gone.end(), o.policy_index) != gone.end();
  });
  write_spd(dp, in);
}

void publish_spd(Datapath& dp) { write_spd(dp, installed_in(dp)); }

void install_policy(Datapath& dp, const spd::Policy& p) {
  auto& in = installed_in(dp);
  in.policies.push_back(p);
  in.policies.back().seq = 1000000 + in.policies.size();  // after every policy installed before
  write_spd(dp, in);
}

void install_nat_target(Datapath& dp, const std::string& dst_prefix, const spd_nat_target& target) {
  Prefix src{Address::v4(target.nat_addr), static_cast<uint8_t>(__builtin_popcount(target.nat_mask))};
  install_nat_target_from(dp, src.str(), dst_prefix, target);
}

void install_nat_target_from(Datapath& dp, const std::string& src_selector, const std::string& dst_prefix,
                             const spd_nat_target& target, uint32_t priority) {
  auto& in = installed_in(dp);
  auto [daddr, dmask] = parse_prefix(dst_prefix);
  spd::Policy p = spd::tunnel_policy(spd::Dir::Out, ipsnat::parse_prefix(src_selector),
                                     {Address::v4(daddr), static_cast<uint8_t>(__builtin_popcount(dmask))},
                                     target.reqid);
  // Like the kernel's: a policy added again gets a new index.
  static uint32_t next = 0;
  p.index = 8 * ++next + 1;
  p.seq = next;
  // The old single-LPM fixture let the longest destination win; keep that meaning in the
  // kernel's terms (lower priority value first).
  p.priority = priority ? priority : 100 - p.sel.dst.len;
  in.policies.push_back(p);
  if (target.flags & SPD_NAT_INSIDE_SET) {
    // No override: the NAT the SPD implies for a one-address source. Any inside prefix makes it
    // ask the inside set; the set itself is the map the test writes.
    if (in.cfg.inside.empty()) in.cfg.inside.push_back(ipsnat::parse_prefix("0.0.0.0/0"));
    write_spd(dp, in);
    return;
  }
  spd::NatOverride o;
  o.policy_index = p.index;
  o.kind = static_cast<spd_nat_kind>(target.kind);
  o.nat = {Address::v4(target.nat_addr), static_cast<uint8_t>(__builtin_popcount(target.nat_mask))};
  o.nat_count = target.nat_span + 1u;
  o.inside = {Address::v4(target.inside_net), static_cast<uint8_t>(__builtin_popcount(target.inside_mask))};
  if (target.dst_mask)
    o.destinations.push_back({Address::v4(target.dst_net), static_cast<uint8_t>(__builtin_popcount(target.dst_mask))});
  in.cfg.overrides.push_back(o);
  write_spd(dp, in);
}

spd::Policy tunnel_policy(spd::Dir dir, const std::string& src, const std::string& dst, uint32_t index,
                          uint32_t priority, bool ipsec) {
  spd::Policy p = spd::tunnel_policy(dir, ipsnat::parse_prefix(src), ipsnat::parse_prefix(dst),
                                     ipsec ? std::optional<uint32_t>(1) : std::nullopt);
  p.index = index;
  p.priority = priority;
  return p;
}

}  // namespace ipsnat::test
