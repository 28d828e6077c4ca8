#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/output.h"
#include "state/pinned.h"
#include "state/status.h"

namespace ipsnat::cli {

void register_status(CLI::App& app, Context& ctx) {
  struct Args {
    std::string state_dir = "/run/ipsnat";
    bool check = false;
    bool alive = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("status", "Show hooks, maps, counters by reason and the daemon's health");
  cmd->add_option("--state-dir", args->state_dir, "Where the daemon publishes daemon.json")
      ->capture_default_str()
      ->type_name("DIR");
  cmd->add_flag("--check", args->check,
                "Probe mode: exit 0 when the daemon runs and its devices are hooked, else print why and exit 1");
  cmd->add_flag("--alive", args->alive,
                "Liveness probe: exit 0 while the daemon runs (a device failing to attach does not count: "
                "restarting the daemon would not fix it)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      state::StatusOptions opts{ctx.global.pin_root, args->state_dir};
      auto s = state::gather_status(opts);
      std::string why;
      bool healthy = state::status_healthy(s, why);
      if (args->alive) {
        healthy = s.at("daemon").value("alive", false);
        if (!healthy) state::status_healthy(s, why);  // names the state file
      }
      if (args->check || args->alive) {
        if (ctx.global.json) print_json(ctx.global, {{"healthy", healthy}, {"why", why}});
        else if (!healthy) std::cerr << "ipsnat: unhealthy: " << why << "\n";
        return healthy ? 0 : 1;
      }
      s["healthy"] = healthy;
      if (!healthy) s["unhealthy_because"] = why;
      if (ctx.global.json) print_json(ctx.global, s);
      else std::fputs(state::status_to_text(s).c_str(), stdout);
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
