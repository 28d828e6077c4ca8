#include "support/spd_fixture.h"

#include <arpa/inet.h>

#include <stdexcept>
#include <tuple>

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

spd_nat_target prefix_target(const std::string& nat_prefix, const std::string& inside_prefix, uint32_t reqid) {
  spd_nat_target t{};
  t.kind = SPD_NAT_PREFIX;
  std::tie(t.nat_addr, t.nat_mask) = parse_prefix(nat_prefix);
  std::tie(t.inside_net, t.inside_mask) = parse_prefix(inside_prefix);
  t.reqid = reqid;
  return t;
}

void install_nat_target(Datapath& dp, const std::string& dst_prefix, const spd_nat_target& target) {
  auto [addr, mask] = parse_prefix(dst_prefix);
  spd_dst_key key{};
  key.prefixlen = static_cast<uint32_t>(__builtin_popcount(mask));
  key.daddr = addr;
  if (bpf_map_update_elem(bpf_map__fd(dp.skel()->maps.spd_nat), &key, &target, BPF_ANY) != 0)
    throw std::runtime_error("writing spd_nat failed");
}

}  // namespace ipsnat::test
