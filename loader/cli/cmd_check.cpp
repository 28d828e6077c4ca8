#include <cstdio>

#include "cli/command.h"
#include "cli/output.h"
#include "sys/features.h"

namespace ipsnat::cli {

void register_check(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("check", "Probe the kernel and privileges for what ipsnat needs");
  cmd->footer("Exit status 0 when every required feature is present.");
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      auto features = sys::FeatureProbe().probe();
      bool all = true;
      for (const auto& f : features) all &= !f.required || f.ok;
      if (ctx.global.json) {
        print_json(ctx.global, {{"ok", all}, {"features", sys::FeatureProbe::to_json(features)}});
      } else {
        for (const auto& f : features)
          std::printf("%-18s %-8s %s\n", f.name.c_str(),
                      f.ok ? "ok" : (f.required ? "MISSING" : "absent"), f.detail.c_str());
      }
      return all ? 0 : 1;
    };
  });
}

}  // namespace ipsnat::cli
