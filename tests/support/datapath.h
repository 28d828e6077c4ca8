#pragma once
// The datapath loaded for BPF_PROG_TEST_RUN: the real skeleton, with map pinning switched off
// so tests never touch /sys/fs/bpf/ipsnat.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ipsnat_bpf.skel.h"
#include "maps/stats.h"
#include "support/packet.h"

namespace ipsnat::test {

struct RunResult {
  uint32_t retval = 0;
  Bytes out;
};

class Datapath {
 public:
  Datapath();
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  ipsnat_bpf* skel() { return skel_; }
  RunResult run(bpf_program* prog, const Bytes& pkt);
  // Sum over CPUs of one reason's packet counter.
  uint64_t reason_packets(enum ipsnat_reason r) const;

 private:
  ipsnat_bpf* skel_ = nullptr;
};

}  // namespace ipsnat::test
