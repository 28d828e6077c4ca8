#pragma once
// The datapath loaded for BPF_PROG_TEST_RUN: the real skeleton, with map pinning switched off
// so tests never touch /sys/fs/bpf/ipsnat.
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ipsnat_bpf.skel.h"
#include "maps/config.h"
#include "maps/ct.h"
#include "maps/inside.h"
#include "maps/stats.h"
#include "support/packet.h"

namespace ipsnat::test {

struct RunResult {
  uint32_t retval = 0;
  Bytes out;
  uint32_t duration_ns = 0;  // the kernel's measure of the program run (BPF_PROG_TEST_RUN)
};

class SpdProbeProgram;

class Datapath {
 public:
  // sa_reqid_from_mark: the reverse side takes a packet's SA reqid from skb->mark (0: no SA)
  // instead of its sec path, which BPF_PROG_TEST_RUN cannot give a packet
  // (ipsnat_test_sa_from_mark in bpf/lib/xlate.h); run() with a mark then plays "decrypted by the
  // SA of that reqid". Off, a policy-mode reply never has an SA here.
  explicit Datapath(bool sa_reqid_from_mark = false);
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  ipsnat_bpf* skel() { return skel_; }
  // Unique per Datapath in the process, unlike the object (and its maps' kernel ids): a finished
  // test's object serves the next one, emptied.
  uint64_t instance() const { return instance_; }
  // The test-only SPD probe (support/spd_probe.h) on this object's maps, loaded on first use.
  SpdProbeProgram& spd_probe();
  RunResult run(bpf_program* prog, const Bytes& pkt, uint32_t mark = 0);
  // As a forwarded packet: __sk_buff.ingress_ifindex set (0 in run(): sent by the host itself).
  RunResult run_forwarded(bpf_program* prog, const Bytes& pkt, uint32_t ingress_ifindex);
  // Sum over CPUs of one reason's packet counter.
  uint64_t reason_packets(enum ipsnat_reason r) const;
  // Reasons with a non-zero packet count, for failure messages.
  std::string nonzero_reasons() const;

  void set_config(const ipsnat_config& cfg);
  void set_port_range(uint16_t min, uint16_t max);
  // BPF_PROG_TEST_RUN runs TC programs on the loopback device: its ifindex.
  static uint32_t test_ifindex();
  // ipsnat_dev[ifindex]: the device's mode, if_id and flags (IPSNAT_DEV_BINAT, ...).
  void set_dev_mode(uint32_t ifindex, ipsnat_dev_mode mode, uint32_t if_id = 0, uint32_t flags = 0);
  // ipsnat_dev[ifindex] = d with its generation, as the loader writes it (pins/dev_map.h).
  void set_dev_cfg(uint32_t ifindex, const ipsnat_dev_cfg& d);
  // ipsnat_inside[prefix] = flags (maps/inside.h).
  void set_inside(const std::string& prefix, uint32_t flags);

  std::optional<ipsnat_ct_entry> ct_get(const ipsnat_ct_key& key) const;
  std::vector<std::pair<ipsnat_ct_key, ipsnat_ct_entry>> ct_all() const;
  int ct_fd() const { return bpf_map__fd(skel_->maps.ipsnat_ct); }
  int cfg_fd() const { return bpf_map__fd(skel_->maps.ipsnat_cfg); }

 private:
  RunResult run_ctx(bpf_program* prog, const Bytes& pkt, uint32_t mark, uint32_t ingress_ifindex);
  ipsnat_bpf* skel_ = nullptr;
  bool sa_reqid_from_mark_ = false;
  uint64_t instance_ = 0;
  std::unique_ptr<SpdProbeProgram> probe_;
};

// A CT key from dotted addresses and host-order ports.
// The object as a Datapath loads it (map pinning off), owned by the caller (ipsnat_bpf__destroy):
// for a test that needs the programs gone when it is done, which a Datapath's object is not.
ipsnat_bpf* load_unpinned_skeleton(bool sa_reqid_from_mark = false);
// The kernel's id of a loaded program (throws when the kernel gives no info).
uint32_t program_id(bpf_program* prog);

ipsnat_ct_key ct_key(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
                     uint8_t proto, ipsnat_ct_dir dir);

}  // namespace ipsnat::test
