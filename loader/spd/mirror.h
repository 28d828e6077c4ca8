#pragma once
// Keeps the datapath's SPD maps equal to the kernel's SPD.
//
//   SpdMapFds fds = SpdMapFds::from_object(skel->obj);   // or ::from_pins(pin_root)
//   SpdMirror mirror(fds, nat_config);
//   mirror.sync_once();          // dump, compile, write, swap
//   mirror.run(stop_token);      // follow notifications until stop is requested
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <stop_token>
#include <string>
#include <vector>

#include "maps/spd.h"
#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/nat.h"

struct bpf_object;

namespace ipsnat::xfrm {
class PolicySource;
}

namespace ipsnat::spd {

struct SpdMapFds {
  int active = -1, dst = -1, src = -1, lists = -1;
  static SpdMapFds from_object(bpf_object* obj);
  // Opens the pinned maps (the caller owns the fds; close_all() closes them).
  static SpdMapFds from_pins(const std::string& pin_root);
  void close_all();
};

// Writes compiled SPDs: the inactive generation completely, then the one-entry switch.
class SpdMapWriter {
 public:
  explicit SpdMapWriter(SpdMapFds fds);
  void write(const CompiledSpd& c);
  uint32_t active_gen() const { return active_; }
  uint64_t swaps() const { return version_; }
  // Map operations of the last write (updates + deletes).
  size_t last_ops() const { return last_ops_; }

 private:
  void purge(uint32_t gen);
  SpdMapFds fds_;
  uint32_t active_ = 0;
  uint64_t version_ = 0;
  size_t last_ops_ = 0;
  // What each generation holds, to write only the difference (ids are stable across compiles).
  struct Written {
    bool known = false;
    std::map<std::tuple<uint32_t, uint8_t, uint32_t>, spd_cell> dst;
    std::map<std::tuple<uint32_t, uint8_t, uint32_t>, uint32_t> src;
    std::map<uint32_t, spd_list> lists;
  } written_[2];
};

struct SpdMirrorStats {
  uint64_t events = 0;
  uint64_t resyncs = 0;   // full dumps after an overrun (the first sync not counted)
  uint64_t refusals = 0;  // compiles refused: the maps keep the last exact SPD
  uint64_t swaps = 0;
  std::string last_refusal;
};

class SpdMirror {
 public:
  SpdMirror(SpdMapFds fds, NatConfig nat, int rcvbuf = 0);
  ~SpdMirror();
  void sync_once();
  // Waits up to timeout_ms for notifications, applies them (resyncs on overrun), rewrites the
  // maps when the SPD changed. Returns true when the maps were rewritten.
  bool poll_once(int timeout_ms);
  void run(std::stop_token stop);
  const SpdModel& model() const { return model_; }
  const SpdMirrorStats& stats() const { return stats_; }

 private:
  void publish();
  CompileIds ids_;
  xfrm::PolicySource* source_;
  SpdMapWriter writer_;
  NatConfig nat_;
  SpdModel model_;
  SpdMirrorStats stats_;
};

}  // namespace ipsnat::spd
