#include "attach/programs.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace ipsnat::attach {
namespace {

bpf_program* find_program(bpf_object* obj, const std::string& name) {
  auto* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) throw UserError("program " + name + " is missing from the BPF object", "a build error");
  return prog;
}

}  // namespace

std::vector<std::string> program_names(Mode mode, bool xdp_prefilter) {
  std::vector<std::string> names = mode == Mode::Route
                                       ? std::vector<std::string>{"tc_rev_ingress", "tc_snat_egress", "tc_lo_egress"}
                                       : std::vector<std::string>{"tc_guard_egress", "tc_rev_ingress", "lwt_snat_xmit"};
  if (xdp_prefilter) names.push_back("xdp_spoof_drop");
  return names;
}

Programs Programs::load(const pins::PinStore& pins, uint32_t ct_max, uint32_t spd_max,
                        const std::vector<std::string>& names, std::vector<std::string>& warnings) {
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.pin_root_path = pins.root().c_str();
  Programs p;
  p.skel_.reset(ipsnat_bpf__open_opts(&opts));
  ipsnat_bpf* skel = p.skel_.get();
  if (!skel) throw SysError("opening the BPF object", errno);
  uint32_t entries = pins.ct_entries_for(ct_max);
  if (int err = bpf_map__set_max_entries(skel->maps.ipsnat_ct, entries))
    throw SysError("sizing ipsnat_ct to " + std::to_string(entries) + " entries", -err);
  uint32_t spd_entries = pins.spd_entries_for(spd_max);
  for (bpf_map* m : {skel->maps.spd_dst, skel->maps.spd_src, skel->maps.spd_lists})
    if (int err = bpf_map__set_max_entries(m, spd_entries))
      throw SysError("sizing " + std::string(bpf_map__name(m)) + " to " + std::to_string(spd_entries) + " entries", -err);
  for (auto& m : pins.drop_incompatible(skel->obj)) warnings.push_back(m);
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bool wanted = std::find(names.begin(), names.end(), bpf_program__name(prog)) != names.end();
    if (int err = bpf_program__set_autoload(prog, wanted))
      throw SysError("choosing the programs to load", -err);
  }
  if (int err = ipsnat_bpf__load(skel))
    throw UserError("loading the BPF programs failed: " + std::string(strerror(-err)), "run with -vv for the verifier log");
  pins.record(skel->obj);
  return p;
}

std::optional<Programs> Programs::open_pinned(const std::vector<std::string>& prog_pins,
                                              const std::vector<std::string>& names) {
  Programs p;
  for (const auto& path : prog_pins)
    if (Fd fd(bpf_obj_get(path.c_str())); fd) p.pinned_[path.substr(path.rfind('/') + 1)] = std::move(fd);
  for (const auto& name : names)
    if (!p.pinned_.count(name)) return std::nullopt;
  return p;
}

int Programs::fd(const std::string& name) const {
  if (!skel_) {
    auto it = pinned_.find(name);
    if (it == pinned_.end()) throw UserError("program " + name + " is not pinned", "ipsnat attach the device again");
    return it->second.get();
  }
  return bpf_program__fd(find_program(skel_->obj, name));
}

std::vector<std::string> Programs::pin(const pins::PinStore& pins, const std::string& id,
                                       const std::vector<std::string>& names) const {
  std::vector<bpf_program*> progs;
  for (const auto& name : names) progs.push_back(find_program(skel_->obj, name));
  return pins.pin_programs(id, progs);
}

}  // namespace ipsnat::attach
