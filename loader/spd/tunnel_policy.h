#pragma once
// The policy an IKE daemon installs for a tunnel, built the one way the tests, the benchmark and
// any caller that needs such a policy share.
#include <cstdint>
#include <optional>

#include "spd/policy.h"
#include "util/address.h"

namespace ipsnat::spd {

// src -> dst in `dir`, in src's family, with one ESP tunnel template (XFRM mode tunnel, endpoints
// left open) for `reqid`, or none without one (an allow policy without templates: a bypass).
// Index, priority and the rest are the caller's.
Policy tunnel_policy(Dir dir, const Prefix& src, const Prefix& dst, std::optional<uint32_t> reqid);

}  // namespace ipsnat::spd
