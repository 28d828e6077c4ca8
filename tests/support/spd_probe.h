#pragma once
// Runs a flow through tc_spd_probe (tests/bpf_progs/spd_probe.bpf.c: the lookups of
// bpf/lib/spd.h) on the SPD maps of a loaded datapath and returns what it found.
#include "maps/spd.h"
#include "spd/policy.h"
#include "support/datapath.h"

struct spd_probe_bpf;

namespace ipsnat::test {

// The probe object, its maps shared with a loaded ipsnat_bpf object: every map of the probe
// whose name the datapath's object also has is that map (bpf_map__reuse_fd).
class SpdProbeProgram {
 public:
  explicit SpdProbeProgram(bpf_object* datapath);
  ~SpdProbeProgram();
  SpdProbeProgram(const SpdProbeProgram&) = delete;
  SpdProbeProgram& operator=(const SpdProbeProgram&) = delete;
  spd_probe_result run(const spd::Flow4& f);

 private:
  spd_probe_bpf* skel_ = nullptr;
};

inline spd_probe_result spd_probe(Datapath& dp, const spd::Flow4& f) { return dp.spd_probe().run(f); }

}  // namespace ipsnat::test
