// libFuzzer target: a buffer of NETLINK_XFRM messages as recv() would return it (a dump or a
// burst of notifications) -> parse_policy_msg -> SpdModel -> compile_spd, and the compiled SPD
// evaluated against the reference for flows taken from the policies themselves. Whatever the
// kernel (or anything able to send on the socket) puts there must be parsed or refused, never
// read out of bounds, and the compiler must agree with the reference on what it accepts.
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/reference.h"
#include "xfrm/policy_msg.h"

using namespace ipsnat;
using namespace ipsnat::spd;

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_xfrm_policy: %s\n", what);
  std::abort();
}

// Flows at the corners of a policy's selector: what the datapath will be asked about.
std::vector<Flow4> flows_of(const Policy& p) {
  std::vector<Flow4> out;
  if (p.sel.family != AF_INET) return out;
  Flow4 f;
  f.saddr = p.sel.src.addr.v4_be();
  f.daddr = p.sel.dst.addr.v4_be();
  f.proto = p.sel.proto ? p.sel.proto : IPPROTO_UDP;
  f.sport = p.sel.sport;
  f.dport = p.sel.dport;
  f.mark = p.mark_v;
  f.if_id = p.if_id;
  out.push_back(f);
  f.daddr = htonl(ntohl(f.daddr) | ~v4_mask(p.sel.dst.len));
  out.push_back(f);
  f.saddr = htonl(0xc0a8010a);  // a typical inside host
  out.push_back(f);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy, so that reading one byte past what was received is reported.
  // (The socket buffer is aligned; so is the copy.)
  std::vector<uint8_t> copy(data, data + size);
  SpdModel model;
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(copy.data());
  int remaining = static_cast<int>(size);
  while (ipsnat::xfrm::nlmsg_ok(nlh, remaining)) {  // as PolicySource::handle walks it
    try {
      if (auto ev = ipsnat::xfrm::parse_policy_msg(nlh)) model.apply(*ev);
    } catch (const std::runtime_error&) {
      // Refused as malformed: the source logs it and goes on.
    }
    nlh = mnl_nlmsg_next(nlh, &remaining);
  }

  auto pols = model.ordered();
  NatConfig cfg;
  cfg.inside.push_back(parse_prefix("192.168.1.0/24"));
  CompiledSpd c = compile_spd(pols, cfg);
  // Policies the maps carry as UNKNOWN are judged by SpdEquivalence.UnknownPolicies* instead.
  if (c.refused || !c.unknown.empty()) return 0;
  CompiledEvaluator ev(c);
  for (const Policy* p : pols) {
    for (const Flow4& f : flows_of(*p)) {
      const Policy* want = reference_lookup(pols, f);
      auto got = ev.lookup(f);
      if ((want != nullptr) != got.has_value()) finding("compiled lookup disagrees with the reference");
      if (want && want->index != got->policy_index) finding("compiled lookup chose another policy");
      if (reference_out_covered(pols, f) != (ev.out_covered(f) == CompiledCover::kIpsec)) finding("coverage disagrees with the reference");
      auto wn = reference_nat_target(pols, cfg, f);
      auto gn = ev.nat_target(f);
      if (wn.has_value() != gn.has_value()) finding("NAT target presence disagrees with the reference");
      if (wn && std::memcmp(&*wn, &*gn, sizeof(*wn)) != 0) finding("NAT target disagrees with the reference");
    }
  }
  return 0;
}
