#pragma once
// Keeps the datapath's SPD maps equal to the kernel's SPD.
//
//   SpdMapFds fds = SpdMapFds::from_object(skel->obj);   // or ::from_pins(pin_root)
//   SpdMirror mirror(fds, nat_config);
//   mirror.sync_once();          // dump, compile, write, swap
//   mirror.run(stop_token);      // follow notifications until stop is requested
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <stop_token>
#include <string>
#include <vector>

#include "maps/spd.h"
#include "spd/compiler.h"
#include "mirror/cover6.h"
#include "mirror/npt6_map.h"
#include "spd/incremental.h"
#include "spd/model.h"
#include "spd/nat.h"
#include "spd/spoof.h"
#include "util/fd.h"

struct bpf_object;

namespace ipsnat::xfrm { class PolicySource; }

namespace ipsnat::mirror {

struct SpdMapFds {
  int active = -1, dst = -1, src = -1, lists = -1;
  int health = -1;  // spd_health; -1 when pins of an older build lack it (no fail-closed flag then)
  int cover6 = -1;  // spd_cover6 (IPv6 guard); -1 when pins of an older build lack it
  int inside = -1;  // ipsnat_inside (maps/inside.h); -1 when pins of an older build lack it
  int spoof_set = -1, spoof_act = -1;  // xdp_spoof4, xdp_spoof_act (XDP pre-filter); -1 likewise
  int npt6 = -1;  // ipsnat_npt6 (IPv6 prefix translation); -1 likewise
  // The descriptors from_pins opened, closed with the last copy of this struct; none for
  // from_object's (the skeleton owns those).
  std::shared_ptr<std::vector<Fd>> owned;
  static SpdMapFds from_object(bpf_object* obj);
  // Opens the pinned maps, owned by the result and its copies.
  static SpdMapFds from_pins(const std::string& pin_root);
  // Closes every descriptor now, owned or not, for every copy.
  void close_all();

 private:
  std::array<int*, 10> all();
};

// A write found a map full (E2BIG/ENOSPC): the SPD does not fit next to the active generation.
// The inactive generation is left unused (never activated) and rewritten whole next time.
class SpdMapFull : public std::runtime_error {
 public:
  SpdMapFull(std::string map, int err);
  const std::string& map() const { return map_; }

 private:
  std::string map_;
};

// Writes compiled SPDs into the inactive generation, then flips the one-entry switch.
// Two modes (one per writer): write(spd::CompiledSpd) brings the generation to a whole compiled SPD
// by difference; stage()+write(spd::IncrementalSpd) rewrites only the keys the deltas named since
// that generation was last written (each generation is one write behind the other).
class SpdMapWriter {
 public:
  explicit SpdMapWriter(SpdMapFds fds);
  void write(const spd::CompiledSpd& c);
  // Records changed keys for both generations (also while the compiled state is refused).
  void stage(const spd::SpdDelta& d);
  void write(const spd::IncrementalSpd& s);
  // Batched map updates were refused by this kernel for some map (per-element fallback used).
  bool batch_fallback() const { return batch_off_[0] || batch_off_[1] || batch_off_[2]; }
  uint32_t active_gen() const { return active_; }
  // spd_active's version of the last flip (next_version()).
  uint64_t version() const { return version_; }
  // Map operations of the last write (updates + deletes).
  size_t last_ops() const { return last_ops_; }
  // spd_health[0] (no-op without the map).
  spd_health health() const;
  void set_health(const spd_health& h);
  // The inactive generation has not been written by this writer yet (a write fills it whole).
  bool inactive_unwritten() const { return !written_[active_ ^ 1].known; }

 private:
  void find_stale();
  void forget_partial(uint32_t gen);
  void purge(uint32_t gen);
  void write_diff(const spd::CompiledSpd& c, uint32_t gen);
  template <class K, class V>
  void put(int slot, int fd, const std::vector<K>& keys, const std::vector<V>& values, const char* what);
  SpdMapFds fds_;
  spd::SpdDelta pending_[2];
  size_t pending_distinct_[2] = {0, 0};  // size of pending_ after its last dedupe()
  bool batch_off_[3] = {false, false, false};
  uint64_t next_version();
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
  // Entries an earlier process left, per generation: deleted before this writer first writes
  // that generation.
  struct Stale {
    std::vector<spd_dst_key> dst;
    std::vector<spd_src_key> src;
    std::vector<spd_list_key> lists;
  } stale_[2];
};

// Where the time of the last sync_once() went (wall ms): the datapath uses the new SPD after
// dump + compile + write; the second write fills the other generation (first sync only; its
// CPU time, user + system of the calling thread, too).
struct SpdSyncTimes {
  double dump_ms = 0, compile_ms = 0, write_ms = 0, second_write_ms = 0, second_write_cpu_ms = 0;
};

struct SpdMirrorStats {
  // The maps do not hold the kernel's SPD (it did not fit, or the compiler refused it):
  // spd_health says FAIL_CLOSED.
  bool fail_closed = false;
  uint64_t capacity_failures = 0;
  std::string last_capacity_error;  // "spd_src is full (...)"
  uint64_t events = 0;
  uint64_t resyncs = 0;   // full dumps after an overrun (the first sync not counted)
  uint64_t refusals = 0;  // compiles refused: the maps keep the last exact SPD, failing closed
  uint64_t swaps = 0;
  std::string last_refusal;
  // Policies carried as SPD_V_UNKNOWN (spd_health SPD_HEALTH_POLICY_UNKNOWN): only where they
  // could apply does the datapath fail closed.
  std::vector<std::string> unknown_policies;
  uint64_t write_errors = 0;       // writes refused for another reason than room; retried
  std::string last_write_error;    // while the last write failed: "writing spd_dst: Operation not permitted"
};

class SpdMirror {
 public:
  SpdMirror(SpdMapFds fds, spd::NatConfig nat, int rcvbuf = 0);
  ~SpdMirror();
  // Writes the inside set (ipsnat_inside) from the NAT config first, then the SPD.
  void sync_once();
  // The gateway's addresses changed: rewrites the inside set and, when a NAPT or NAT66 pool
  // (which leaves the gateway's addresses out) changed with them, the SPD as a new version
  // (spd::local_change_moves_nat).
  void set_local(std::vector<Address> local);
  // Waits up to timeout_ms for notifications, applies them (resyncs on overrun), rewrites the
  // maps when the SPD changed (or retries a failed write). Returns true when the maps were
  // rewritten.
  bool poll_once(int timeout_ms);
  // After a map write failed for another reason than room: writes again, at most once a second
  // (poll_once does it; an event loop calls it from a timer). True when it tried.
  bool retry_failed_write();
  void run(std::stop_token stop);
  // The NETLINK_XFRM socket, for an event loop that calls poll_once(0) when it is readable.
  int fd() const;
  const spd::SpdModel& model() const { return model_; }
  const SpdMirrorStats& stats() const { return stats_; }
  const SpdSyncTimes& last_sync() const { return sync_times_; }

 private:
  void publish(bool full);
  void fail_closed(spd_health h, uint32_t cause);
  std::chrono::steady_clock::time_point retry_at_{};  // of a failed write (stats_.last_write_error)
  spd::IncrementalSpd compiled_;
  xfrm::PolicySource* source_;
  SpdMapWriter writer_;
  Cover6Writer cover6_;
  Npt6Writer npt6_;
  spd::SpoofWriter spoof_;
  spd::NatConfig nat_;
  int inside_fd_ = -1;
  spd::SpdModel model_;
  SpdMirrorStats stats_;
  SpdSyncTimes sync_times_;
};

}  // namespace ipsnat::mirror
