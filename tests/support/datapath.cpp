#include "support/datapath.h"

#include <string>

namespace ipsnat::test {

Datapath::Datapath() {
  skel_ = ipsnat_bpf__open();
  if (!skel_) throw std::runtime_error("opening the BPF skeleton failed");
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) bpf_map__set_pin_path(map, nullptr);
  if (int err = ipsnat_bpf__load(skel_)) {
    ipsnat_bpf__destroy(skel_);
    throw std::runtime_error("loading the BPF skeleton failed: " + std::to_string(err));
  }
}

Datapath::~Datapath() { ipsnat_bpf__destroy(skel_); }

RunResult Datapath::run(bpf_program* prog, const Bytes& pkt) {
  RunResult r;
  r.out.resize(pkt.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = pkt.data();
  opts.data_size_in = static_cast<__u32>(pkt.size());
  opts.data_out = r.out.data();
  opts.data_size_out = static_cast<__u32>(r.out.size());
  opts.repeat = 1;
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts))
    throw std::runtime_error("BPF_PROG_TEST_RUN failed: " + std::to_string(err));
  r.retval = opts.retval;
  r.out.resize(opts.data_size_out);
  return r;
}

uint64_t Datapath::reason_packets(enum ipsnat_reason reason) const {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ipsnat_counter> values(ncpu);
  uint32_t key = reason;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ipsnat_stats), &key, values.data()) != 0)
    throw std::runtime_error("reading ipsnat_stats failed");
  uint64_t sum = 0;
  for (const auto& v : values) sum += v.packets;
  return sum;
}

}  // namespace ipsnat::test
