#pragma once
// The BPF programs an attach hooks in: the object loaded with its maps pinned under the pin root
// (reused when compatible), or, when the host process re-plans a device, the program pins an
// earlier attach left (no second load and verification).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attach/plan.h"
#include "ipsnat_bpf.skel.h"
#include "pins/pin_store.h"
#include "util/fd.h"

namespace ipsnat::attach {

// The programs a device in `mode` can need, every one pinned so that a re-plan finds them all.
std::vector<std::string> program_names(Mode mode, bool xdp_prefilter);

class Programs {
 public:
  // Opens the object with its maps pinned under `pins` (a map this build must not reuse is
  // replaced, with a warning), gives ipsnat_ct ct_max entries and the SPD maps spd_max (0: the
  // pinned map's size, else the default), loads it and records the maps' schemas. Of the programs
  // only `names` are loaded: the verifier's time is most of an attach's, and the others'
  // descriptors are never asked for.
  static Programs load(const pins::PinStore& pins, uint32_t ct_max, uint32_t spd_max,
                       const std::vector<std::string>& names, std::vector<std::string>& warnings);
  // `names` from the recorded program pins; nullopt unless every one of them is pinned.
  static std::optional<Programs> open_pinned(const std::vector<std::string>& prog_pins,
                                             const std::vector<std::string>& names);

  // The loaded object, whose maps are open; nullptr when opened from pins.
  ipsnat_bpf* skel() const { return skel_.get(); }
  // The program's descriptor; throws UserError when there is no such program.
  int fd(const std::string& name) const;
  // Pins `names` of the loaded object under the pin root for attachment `id`; returns the paths.
  std::vector<std::string> pin(const pins::PinStore& pins, const std::string& id, const std::vector<std::string>& names) const;

 private:
  struct SkelDeleter {
    void operator()(ipsnat_bpf* s) const { ipsnat_bpf__destroy(s); }
  };
  std::unique_ptr<ipsnat_bpf, SkelDeleter> skel_;
  std::map<std::string, Fd> pinned_;  // by program name
};

}  // namespace ipsnat::attach
