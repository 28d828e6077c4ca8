#pragma once
// `ipsnat run`: one event loop multiplexing signals (signalfd), the services' sockets and timers
// and the metrics endpoint. SIGHUP reloads the config file (a bad one is logged and the running
// config kept); SIGTERM/SIGINT end the loop WITHOUT detaching anything: the datapath keeps
// working from its pinned maps and the next start adopts them.
#include <memory>
#include <unordered_map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "sys/event_loop.h"
#include "daemon/service.h"
#include "state/daemon_state.h"

namespace ipsnat::metrics { class MetricsServer; }

namespace ipsnat::daemon {

// What the command line says; it wins over the config file, also across reloads.
struct Overrides {
  std::optional<config::ListenAddress> metrics;
  std::optional<config::LogFormat> log_format;
  std::optional<std::string> log_level;
  std::optional<std::string> state_dir;
  std::optional<uint32_t> limit_log_interval;  // seconds
};

struct DaemonOptions {
  std::string config_path;  // "" = built-in defaults, SIGHUP then only re-applies them
  std::string pin_root;
  Overrides overrides;
  bool exit_when_detached = false;  // started by `ipsnat attach` (attach/host.h): published
};

class SignalFd;

class Daemon {
 public:
  explicit Daemon(DaemonOptions opts);
  ~Daemon();

  // Adds a service; call before run(). The daemon owns it.
  void add_service(std::unique_ptr<Service> s);
  // A component whose plug point has nothing in this build: logged at start, listed in the
  // state file and in ipsnat_component_enabled{component=...} 0.
  void note_missing(std::string component) { missing_.push_back(std::move(component)); }
  // Loads the config, applies it, serves until SIGTERM/SIGINT. Returns the exit status.
  int run();

  // Ends run() after the current event, like SIGTERM (nothing is detached).
  void stop(const std::string& why);

  // Exposed for tests and for the signal handler.
  bool reload();
  std::string render_metrics() const;
  const config::Config& config() const { return config_; }

 private:
  config::Config load() const;
  void apply(const config::Config& c, bool initial);
  void on_signal();
  void publish();
  void rearm_timers();
  // (Re)registers each service's fd with the loop: a service may open its socket late (the
  // mirror adopts the pins once something is attached) or replace it on reload.
  void sync_fds();

  DaemonOptions opts_;
  config::Config config_;
  sys::EventLoop loop_;
  std::unique_ptr<SignalFd> signals_;
  std::vector<std::unique_ptr<Service>> services_;
  std::vector<std::unique_ptr<sys::PeriodicTimer>> timers_;
  std::unique_ptr<sys::PeriodicTimer> publisher_;
  std::unique_ptr<metrics::MetricsServer> metrics_;
  state::DaemonState state_;
  std::string published_state_dir_;
  std::vector<std::string> missing_;
  std::vector<int> registered_fds_;  // parallel to services_, -1 = none
};

}  // namespace ipsnat::daemon
