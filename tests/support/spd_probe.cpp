#include "support/spd_probe.h"

#include <linux/bpf.h>
#include <netinet/in.h>

#include <string>

#include "spd_probe_bpf.skel.h"

namespace ipsnat::test {

SpdProbeProgram::SpdProbeProgram(bpf_object* datapath) {
  skel_ = spd_probe_bpf__open();
  if (!skel_) throw std::runtime_error("opening the SPD probe skeleton failed");
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    bpf_map__set_pin_path(map, nullptr);
    const bpf_map* shared = bpf_object__find_map_by_name(datapath, bpf_map__name(map));
    if (shared && bpf_map__reuse_fd(map, bpf_map__fd(shared)) != 0) {
      spd_probe_bpf__destroy(skel_);
      throw std::runtime_error(std::string("sharing map ") + bpf_map__name(map) + " with the SPD probe failed");
    }
  }
  if (int err = spd_probe_bpf__load(skel_)) {
    spd_probe_bpf__destroy(skel_);
    throw std::runtime_error("loading the SPD probe failed: " + std::to_string(err));
  }
}

SpdProbeProgram::~SpdProbeProgram() { spd_probe_bpf__destroy(skel_); }

spd_probe_result SpdProbeProgram::run(const spd::Flow4& f) {
  Ipv4Spec ip{Address::v4(f.saddr).str(), Address::v4(f.daddr).str(), f.proto};
  PacketBuilder b;
  Bytes pkt = f.proto == IPPROTO_TCP   ? b.tcp(ip, f.sport, f.dport, 0x02, {})
              : f.proto == IPPROTO_UDP ? b.udp(ip, f.sport, f.dport, Bytes(4, 1))
                                       : b.icmp_echo(ip, 8, 77, 1, {});
  __sk_buff ctx{};
  ctx.mark = f.mark;
  ctx.cb[0] = f.if_id;
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = pkt.data();
  opts.data_size_in = static_cast<__u32>(pkt.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.repeat = 1;
  if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.tc_spd_probe), &opts) != 0)
    throw std::runtime_error("test run of tc_spd_probe failed");
  spd_probe_result r{};
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.spd_probe_res), &zero, &r) != 0)
    throw std::runtime_error("reading spd_probe_res failed");
  return r;
}

}  // namespace ipsnat::test
