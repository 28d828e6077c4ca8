#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "attach/facts.h"
#include "attach/host.h"
#include "attach/session.h"
#include "attach/state.h"
#include "cli/command.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "daemon/components.h"
#include "daemon/plugins.h"
#include "state/daemon_state.h"
#include "state/pinned.h"
#include "pins/mirror_lock.h"
#include "pins/pin_store.h"
#include "util/error.h"

namespace ipsnat::cli {

namespace {

// One host per pin root (attach/host.h). One that `ipsnat attach` started hands over to a user's
// daemon (it is stopped); started by attach too, this one leaves the running host alone (nullopt);
// any other holder is an error naming it.
std::optional<std::pair<std::string, pins::MirrorLock>> take_mirror_lock(const std::string& pin_root,
                                                                   bool exit_when_detached) {
  attach::require_privileges(true);
  pins::PinStore(pin_root).prepare();
  const std::string state_dir = attach::StateStore::resolve_dir();
  bool asked = false;
  // An attach-started host publishes that it is one right after taking the lock; a holder still
  // unknown after a second is someone else. Asked to stop, a host gets 5 s.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (auto lock = pins::MirrorLock::try_acquire(pin_root)) return std::make_pair(pin_root, std::move(*lock));
    auto h = attach::running_host(pin_root, state_dir);
    if (h && !h->started_by_attach && !asked && attempt >= 10) break;
    if (h && exit_when_detached) {
      std::fprintf(stderr, "ipsnat run: %s already serves %s\n", h->description.c_str(), pin_root.c_str());
      return std::nullopt;
    }
    if (h && h->started_by_attach && !asked) {
      // Logging is configured once the config is loaded; this goes to stderr like it.
      std::fprintf(stderr, "ipsnat run: taking over from the host process that ipsnat attach started, %s\n",
                   h->description.c_str());
      kill(h->pid, SIGTERM);
      asked = true;
    }
    usleep(100 * 1000);
  }
  auto h = attach::running_host(pin_root, state_dir);
  if (asked)
    throw UserError("the host process holding " + pins::MirrorLock::path(pin_root) + " did not stop",
                    "ipsnat detach its devices, or kill it");
  throw UserError("another ipsnat already mirrors the SPD into " + pin_root + ": " +
                      (h ? h->description : std::string("a process holding ") + pins::MirrorLock::path(pin_root)),
                  "stop it, or give this daemon its own --pin-root");
}

}  // namespace

void register_run(CLI::App& app, Context& ctx) {
  struct Args {
    std::string config;
    std::string metrics;
    std::string log_format;
    std::string log_level;
    std::string state_dir;
    std::string limit_log_interval;
    bool check_config = false;
    bool exit_when_detached = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("run", "Run as a daemon: attach the configured devices, keep the SPD mirror and conntrack housekeeping going");
  cmd->add_option("-c,--config", args->config, "TOML configuration file (docs/config.md)")->type_name("FILE");
  cmd->add_option("--metrics", args->metrics, "Serve Prometheus metrics on ADDR:PORT (e.g. 127.0.0.1:9477)");
  cmd->add_option("--log-format", args->log_format, "text | json")->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--log-level", args->log_level, "debug | info | warn | error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  cmd->add_option("--state-dir", args->state_dir, "Where daemon.json is published (default /run/ipsnat)")->type_name("DIR");
  cmd->add_option("--limit-log-interval", args->limit_log_interval,
                  "At most one warning per resource limit per interval (e.g. 30s; config limit_log_interval, "
                  "default 60s)");
  cmd->add_flag("--check-config", args->check_config, "Parse the configuration, report errors, and exit");
  cmd->add_flag("--exit-when-detached", args->exit_when_detached,
                "Exit once no device is attached under the pin root; a later `ipsnat run` takes over (how "
                "ipsnat attach starts the host process)");
  cmd->footer(
      "Devices attached before (by an earlier daemon or by hand) are adopted, not re-attached.\n"
      "SIGHUP reloads the configuration: devices added are attached, removed ones detached (a bad\n"
      "file is reported with FILE:LINE and the running configuration kept).\n"
      "SIGTERM/SIGINT exit without detaching: the datapath keeps translating.\n"
      "One host process per pin root: a second daemon is refused; one that ipsnat attach started\n"
      "hands over. Devices attached by hand under the pin root are re-planned after SPD changes too.");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      daemon::DaemonOptions opts;
      opts.config_path = args->config;
      opts.pin_root = ctx.global.pin_root;
      if (!args->metrics.empty()) {
        auto a = config::parse_listen_address(args->metrics);
        if (!a) throw UserError("--metrics: expected ADDR:PORT like 127.0.0.1:9477, got \"" + args->metrics + "\"");
        opts.overrides.metrics = *a;
      }
      if (!args->log_format.empty())
        opts.overrides.log_format = args->log_format == "json" ? config::LogFormat::kJson : config::LogFormat::kText;
      if (!args->log_level.empty()) opts.overrides.log_level = args->log_level;
      else if (ctx.global.verbose >= 2) opts.overrides.log_level = "debug";
      if (!args->state_dir.empty()) opts.overrides.state_dir = args->state_dir;
      if (!args->limit_log_interval.empty()) {
        auto s = config::parse_duration(args->limit_log_interval);
        if (!s) throw UserError("--limit-log-interval: \"" + args->limit_log_interval + "\" is not a duration", "e.g. 30s, 2m");
        opts.overrides.limit_log_interval = *s;
      }

      if (args->check_config) {
        config::Config c = args->config.empty() ? config::Config{} : config::load_config_file(args->config);
        std::printf("%s: ok (%zu devices, %zu NAT rules, %zu port-forwards)\n",
                    args->config.empty() ? "(defaults)" : args->config.c_str(), c.devices.size(), c.nat.size(),
                    c.forwards.size());
        return 0;
      }

      auto mirror_lock = take_mirror_lock(opts.pin_root, args->exit_when_detached);
      if (!mirror_lock) return 0;
      opts.exit_when_detached = args->exit_when_detached;
      if (opts.exit_when_detached) {
        // Known as attach's host from the moment it holds the lock (take_mirror_lock above).
        state::DaemonState early;
        early.pid = getpid();
        early.running = true;
        early.started = early.updated = static_cast<int64_t>(std::time(nullptr));
        early.pin_root = opts.pin_root;
        early.exit_when_detached = true;
        state::write_state_file(opts.overrides.state_dir.value_or(attach::StateStore::resolve_dir()), early);
      }
      daemon::Daemon d(std::move(opts));
      daemon::ServiceContext sctx{mirror_lock->first, {}};
      if (args->exit_when_detached) sctx.when_nothing_attached = [&d] { d.stop("the last device was detached"); };
      auto mirror = daemon::make_spd_mirror_service(sctx);
      auto attach = daemon::make_attach_service(sctx, mirror.get());
      struct Plug {
        const char* what;
        std::unique_ptr<daemon::Service> service;
      };
      // Order matters: apply() attaches first, so the mirror finds the pinned maps to adopt.
      Plug plugs[] = {
          {"attach", std::move(attach)},
          {"spd_mirror", std::move(mirror)},
          {"ct_gc", daemon::make_ct_gc_service(sctx)},
          {"datapath_metrics", daemon::make_datapath_metrics_service(sctx)},
          {"limits", daemon::make_limit_service(sctx)},
      };
      for (auto& p : plugs) {
        if (p.service) d.add_service(std::move(p.service));
        else d.note_missing(p.what);
      }
      return d.run();
    };
  });
}

}  // namespace ipsnat::cli
