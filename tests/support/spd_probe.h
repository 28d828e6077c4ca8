#pragma once
// Runs a flow through tc_spd_probe (bpf/lib/spd.h in the kernel) and returns what it found.
#include "maps/spd.h"
#include "spd/policy.h"
#include "support/datapath.h"

namespace ipsnat::test {

spd_probe_result spd_probe(Datapath& dp, const spd::Flow4& f);

}  // namespace ipsnat::test
