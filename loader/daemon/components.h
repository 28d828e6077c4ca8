#pragma once
// The daemon's adapters around the SPD mirror (mirror/mirror.h) and the conntrack GC (pins/ct_gc.h).
// Both adopt the pinned maps lazily: when nothing is attached yet they report so and retry on
// their timer, so `ipsnat run` may start before `ipsnat attach` (or the attach service) pins.
#include <functional>
#include <memory>
#include <vector>
#include <string>

#include "config/config.h"
#include "daemon/service.h"
#include "spd/nat.h"

namespace ipsnat::mirror { class SpdMirror; }
namespace ipsnat::pins { class CtMaps; class GcPacer; }

namespace ipsnat::daemon {

// The configuration's inside prefixes (else those attach inferred) and its [[nat]] rules as the
// SPD's NAT configuration (spd::NatOverride per rule, origin "FILE:LINE").
spd::NatConfig nat_config_of(const config::Config& c, const std::vector<std::string>& inferred_inside);

class SpdMirrorService : public Service {
 public:
  explicit SpdMirrorService(std::string pin_root);
  ~SpdMirrorService() override;
  std::string name() const override { return "spd_mirror"; }
  int fd() const override;
  void on_readable() override;
  std::chrono::milliseconds period() const override { return std::chrono::seconds(2); }
  void on_timer() override;  // adopts the pins once they exist
  void apply(const config::Config& c) override;
  void collect(metrics::Exposition& e) const override;
  void report(state::DaemonState& s) const override;

  bool live() const { return mirror_ != nullptr; }
  // Called after the mirror rewrote the maps for an SPD change (the attach service re-plans).
  void set_on_change(std::function<void()> f) { on_change_ = std::move(f); }
  // The inside prefixes attach inferred (used when the config names none); rebuilds the mirror
  // when they changed.
  void set_inferred_inside(std::vector<std::string> inside);
  // The host's addresses may have changed: the gateway's own addresses in the inside set follow.
  void refresh_local();

 private:
  void try_adopt();
  std::function<void()> on_change_;
  std::vector<std::string> inferred_inside_;
  std::string pin_root_;
  std::unique_ptr<config::Config> config_;
  std::unique_ptr<mirror::SpdMirror> mirror_;
  int64_t last_resync_ = 0;
  uint64_t resyncs_before_ = 0;
  std::string last_error_;
};

// Sweeps every gc_interval, and at most once a second while the table is under pressure
// (pins::GcPacer): a full table is cleared of expired flows before new ones are refused for long.
class CtGcService : public Service {
 public:
  explicit CtGcService(std::string pin_root);
  ~CtGcService() override;
  std::string name() const override { return "ct_gc"; }
  std::chrono::milliseconds period() const override { return std::chrono::seconds(1); }
  void on_timer() override;
  // Writes port range and timeouts into the datapath's config map (ipsnat_cfg) when pinned.
  void apply(const config::Config& c) override;
  void collect(metrics::Exposition& e) const override;
  void report(state::DaemonState& s) const override;

 private:
  bool open();
  void write_config();
  std::string pin_root_;
  std::unique_ptr<config::Config> config_;
  std::unique_ptr<pins::CtMaps> maps_;
  std::unique_ptr<pins::GcPacer> pacer_;
  uint64_t runs_ = 0, evicted_ = 0, entries_deleted_ = 0;
  int64_t last_run_ = 0;
  std::string last_error_;
};

}  // namespace ipsnat::daemon
