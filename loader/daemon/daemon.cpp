#include "daemon/daemon.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <csignal>
#include <ctime>

#include <spdlog/spdlog.h>

#include "daemon/logging.h"
#include "daemon/signals.h"
#include "metrics/server.h"
#include "util/error.h"

namespace ipsnat::daemon {

namespace {
int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }
}  // namespace

Daemon::Daemon(DaemonOptions opts) : opts_(std::move(opts)) {}

Daemon::~Daemon() {
  // Owned objects deregister from loop_ in their destructors: destroy them before the loop.
  for (int fd : registered_fds_)
    if (fd >= 0) loop_.remove(fd);
  metrics_.reset();
  publisher_.reset();
  timers_.clear();
  signals_.reset();
  services_.clear();
}

void Daemon::add_service(std::unique_ptr<Service> s) { services_.push_back(std::move(s)); }

config::Config Daemon::load() const {
  config::Config c = opts_.config_path.empty() ? config::Config{} : config::load_config_file(opts_.config_path);
  const Overrides& o = opts_.overrides;
  if (o.metrics) c.metrics = o.metrics;
  if (o.log_format) c.log_format = *o.log_format;
  if (o.log_level) c.log_level = *o.log_level;
  if (o.state_dir) c.state_dir = *o.state_dir;
  if (o.limit_log_interval) c.limit_log_interval = *o.limit_log_interval;
  return c;
}

void Daemon::apply(const config::Config& c, bool initial) {
  setup_logging(c.log_format, c.log_level);
  for (auto& s : services_) s->apply(c);

  bool metrics_changed = !metrics_ || !c.metrics || metrics_->address() != *c.metrics;
  if (metrics_changed) {
    metrics_.reset();
    if (c.metrics) {
      metrics_ = std::make_unique<metrics::MetricsServer>(loop_, *c.metrics, [this] { return render_metrics(); });
      spdlog::info("metrics: serving http://{}/metrics", c.metrics->str());
    }
  }
  config_ = c;
  rearm_timers();
  sync_fds();

  state_.config = opts_.config_path;
  state_.config_loaded = now_unix();
  state_.devices.clear();
  for (const auto& d : c.devices) state_.devices.push_back(d.name);
  state_.metrics = c.metrics ? c.metrics->str() : "";
  if (!initial) ++state_.reloads;
}

void Daemon::sync_fds() {
  registered_fds_.resize(services_.size(), -1);
  for (size_t i = 0; i < services_.size(); ++i) {
    int fd = services_[i]->fd();
    if (fd == registered_fds_[i]) continue;
    if (registered_fds_[i] >= 0) loop_.remove(registered_fds_[i]);
    registered_fds_[i] = -1;
    if (fd < 0) continue;
    Service* raw = services_[i].get();
    loop_.add(fd, EPOLLIN, [this, raw](uint32_t) {
      try {
        raw->on_readable();
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", raw->name(), e.what());
      }
      sync_fds();
    });
    registered_fds_[i] = fd;
  }
}

void Daemon::rearm_timers() {
  timers_.clear();
  for (auto& s : services_) {
    auto period = s->period();
    if (period.count() <= 0) continue;
    Service* raw = s.get();
    timers_.push_back(std::make_unique<sys::PeriodicTimer>(loop_, period, [this, raw] {
      try {
        raw->on_timer();
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", raw->name(), e.what());
      }
      sync_fds();
    }));
  }
}

bool Daemon::reload() {
  config::Config next;
  try {
    next = load();
  } catch (const std::exception& e) {
    ++state_.reload_failures;
    state_.last_reload_error = e.what();
    spdlog::error("reload: {}; keeping the running configuration", e.what());
    publish();
    return false;
  }
  config::Config previous = config_;
  try {
    apply(next, false);
  } catch (const std::exception& e) {
    ++state_.reload_failures;
    state_.last_reload_error = e.what();
    spdlog::error("reload: {}; restoring the running configuration", e.what());
    try {
      apply(previous, true);
    } catch (const std::exception& e2) {
      spdlog::error("reload: restoring failed too: {}", e2.what());
    }
    publish();
    return false;
  }
  state_.last_reload_error.clear();
  spdlog::info("reload: configuration {} applied ({} devices)", opts_.config_path.empty() ? "(defaults)" : opts_.config_path,
               config_.devices.size());
  publish();
  return true;
}

std::string Daemon::render_metrics() const {
  metrics::Exposition e;
  e.family("ipsnat_up", "1 while the ipsnat daemon runs", metrics::MetricType::kGauge).add(1);
  e.family("ipsnat_config_reloads_total", "Successful configuration reloads (SIGHUP)", metrics::MetricType::kCounter)
      .add(state_.reloads);
  e.family("ipsnat_config_reload_failures_total", "Rejected configuration reloads; the old one was kept",
           metrics::MetricType::kCounter)
      .add(state_.reload_failures);
  e.family("ipsnat_config_loaded_timestamp_seconds", "When the running configuration was loaded",
           metrics::MetricType::kGauge)
      .add(static_cast<uint64_t>(state_.config_loaded));
  auto& enabled = e.family("ipsnat_component_enabled", "1 for each daemon component running in this build",
                           metrics::MetricType::kGauge);
  for (const auto& s : services_) enabled.add(1, {{"component", s->name()}});
  for (const auto& m : missing_) enabled.add(0, {{"component", m}});
  for (const auto& s : services_) s->collect(e);
  return e.render();
}

void Daemon::publish() {
  state_.pid = getpid();
  state_.running = true;
  state_.updated = now_unix();
  state_.pin_root = opts_.pin_root;
  state_.exit_when_detached = opts_.exit_when_detached;
  for (const auto& s : services_) s->report(state_);
  try {
    write_state_file(config_.state_dir, state_);
    published_state_dir_ = config_.state_dir;
  } catch (const std::exception& e) {
    spdlog::warn("state: {}", e.what());
  }
}

void Daemon::stop(const std::string& why) {
  spdlog::info("{}: exiting", why);
  loop_.stop();
}

void Daemon::on_signal() {
  while (int sig = signals_->read_signal()) {
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", opts_.config_path.empty() ? "(defaults)" : opts_.config_path);
      reload();
    } else {
      spdlog::info("{}: exiting; the datapath stays attached", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      loop_.stop();
      return;
    }
  }
}

int Daemon::run() {
  // Signals first, so a SIGTERM during start-up is not lost to the default action.
  signals_ = std::make_unique<SignalFd>(std::vector<int>{SIGHUP, SIGTERM, SIGINT});
  signal(SIGPIPE, SIG_IGN);  // a scraper that hangs up must not kill the daemon

  config::Config initial = load();
  apply(initial, true);
  state_.started = now_unix();

  loop_.add(signals_->fd(), EPOLLIN, [this](uint32_t) { on_signal(); });
  publisher_ = std::make_unique<sys::PeriodicTimer>(loop_, state::kPublishInterval, [this] { publish(); });
  publish();
  spdlog::info("ipsnat daemon started (pid {}, config {}, {} devices, pin root {})", getpid(),
               opts_.config_path.empty() ? "(defaults)" : opts_.config_path, config_.devices.size(), opts_.pin_root);

  for (const auto& m : missing_) spdlog::warn("{}: not part of this build (plug point in daemon/plugins.cpp)", m);

  loop_.run();

  state_.running = false;
  state_.updated = now_unix();
  try {
    write_state_file(published_state_dir_.empty() ? config_.state_dir : published_state_dir_, state_);
  } catch (const std::exception& e) {
    spdlog::warn("state: {}", e.what());
  }
  return 0;
}

}  // namespace ipsnat::daemon
