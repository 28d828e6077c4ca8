#include <cstdio>
#include <iostream>

#include "attach/session.h"
#include "cli/command.h"
#include "cli/output.h"
#include "config/config.h"
#include "maps/ct.h"
#include "maps/spd.h"
#include "spd/policy.h"
#include "util/error.h"

namespace ipsnat::cli {

void register_attach(CLI::App& app, Context& ctx) {
  struct Args {
    std::string dev;
    std::string mode = "auto";
    std::vector<std::string> inside;
    std::vector<std::string> forwards;
    attach::Settings settings;
    bool dry_run = false;
    bool quiet = false;
    bool no_daemon = false;
    uint32_t ct_max = 0;
    uint32_t spd_max = 0;
    std::string limit_log_interval;
    std::string masquerade;  // "" with the flag alone: the uplink's address
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("attach", "Translate traffic that leaves through DEV into IPsec");
  cmd->add_option("DEV", args->dev, "Tunnel device (xfrm interface, VTI) or uplink of policy-based SAs")
      ->required();
  cmd->add_option("-m,--mode", args->mode, "auto (from the device kind) | route | policy")
      ->check(CLI::IsMember({"auto", "route", "policy"}));
  cmd->add_option("--inside", args->inside,
                  "LAN prefix to translate (repeatable; default: connected prefixes of the other devices)");
  cmd->add_option("--forward", args->forwards,
                  "Port-forward into the LAN, PROTO:[NATADDR:]PORT=ADDR:PORT (repeatable; NATADDR "
                  "default: the device's NAPT addresses), e.g. tcp:8080=192.168.1.10:80");
  auto* table = cmd->add_option("--table", args->settings.table,
                                "Routing table for the LWT routes, behind ipsnat's rule (policy mode; default: the "
                                "main table where the namespace has no other rule, else this)")
                    ->capture_default_str();
  auto* rule_priority =
      cmd->add_option("--rule-priority", args->settings.rule_priority, "Priority of ipsnat's ip rule (before 220)")
          ->capture_default_str();
  cmd->add_option("--route-mtu", args->settings.route_mtu, "MTU of the LWT routes (default: device MTU - 88)");
  auto* masq = cmd->add_option("--masquerade", args->masquerade,
                               "Also translate what leaves DEV (policy mode) towards no IPsec policy, from the LAN, to "
                               "ADDRESS (default: DEV's IPv4 address, followed when it changes): NAPT, no netfilter")
                   ->expected(0, 1)
                   ->type_name("[ADDRESS]");
  cmd->add_flag("--allow-empty", args->settings.allow_empty,
                "Attach although no IPsec out-policy concerns DEV yet");
  cmd->add_flag("--binat", args->settings.binat,
                "Let the far side open connections, through a policy's SA, to the addresses of the policy's "
                "1:1 map: they reach the LAN hosts mapped to them");
  cmd->add_flag("--xdp-prefilter", args->settings.xdp_prefilter,
                "Policy mode: drop spoofed cleartext from remote prefixes the SPD protects in the uplink's "
                "native XDP (refused when the driver has none)");
  cmd->add_option("--ct-max", args->ct_max,
                  "Conntrack entries, 2 per flow (default: the pinned map's size, else " +
                      std::to_string(IPSNAT_CT_MAX_ENTRIES) + "; preallocated, ~128 bytes each)");
  cmd->add_option("--spd-max", args->spd_max,
                  "Entries of each SPD map (spd_dst, spd_src, spd_lists), both generations together (default: the "
                  "pinned maps' size, else " +
                      std::to_string(IPSNAT_SPD_MAX_ENTRIES) + "; allocated as used)");
  cmd->add_option("--limit-log-interval", args->limit_log_interval,
                  "At most one warning per resource limit per interval (e.g. 30s, 2m; default 60s), in the "
                  "host process this attach starts");
  cmd->add_flag("-n,--dry-run", args->dry_run, "Print what would be done, change nothing");
  cmd->add_flag("-q,--quiet", args->quiet, "Do not print the plan carried out (warnings still go to stderr)");
  cmd->add_flag("--no-daemon", args->no_daemon,
                "Do not start the host process (SPD changes and conntrack housekeeping are then someone "
                "else's job)");
  cmd->footer(
      "Route mode (xfrm/vti DEV): TC egress translates, TC ingress translates back.\n"
      "Policy mode (uplink DEV): LWT routes in ipsnat's table translate and re-route, TC ingress\n"
      "translates decrypted replies back, TC egress drops cleartext to covered destinations\n"
      "(with --masquerade it translates the LAN's other traffic to the uplink's address).\n"
      "Unless one runs, attach starts the host process `ipsnat run --exit-when-detached` (SPD mirror,\n"
      "conntrack housekeeping, limit warnings), logging to STATE_DIR/<netns>@DEV.log; detaching the\n"
      "last device stops it.");
  cmd->callback([&ctx, args, masq, table, rule_priority] {
    ctx.action = [&ctx, args, masq, table, rule_priority] {
      attach::AttachRequest req;
      req.dev = args->dev;
      req.settings = args->settings;
      req.settings.mode = attach::parse_mode_request(args->mode);
      for (const auto& p : args->inside) req.settings.inside.push_back(parse_prefix(p));
      for (const auto& f : args->forwards) req.settings.forwards.push_back(attach::parse_forward_spec(f));
      req.settings.masquerade = masq->count() > 0;
      if (!args->masquerade.empty()) req.settings.masquerade_addr = parse_address(args->masquerade);
      req.pin_root = ctx.global.pin_root;
      req.dry_run = args->dry_run;
      req.ct_max = args->ct_max;
      req.spd_max = args->spd_max;
      if (!args->limit_log_interval.empty()) {
        auto s = config::parse_duration(args->limit_log_interval);
        if (!s) throw UserError("--limit-log-interval: \"" + args->limit_log_interval + "\" is not a duration", "e.g. 30s, 2m");
        req.limit_log_interval = *s;
      }
      req.start_host = !args->no_daemon && !args->dry_run;
      req.settings.own_table = table->count() > 0 || rule_priority->count() > 0;
      req.settings.replanned = !args->no_daemon;
      auto res = attach::attach(req);
      if (ctx.global.json && !args->quiet) {
        auto j = attach::plan_to_json(res.plan);
        j["dry_run"] = req.dry_run;
        j["warnings"] = res.warnings;
        print_json(ctx.global, j);
      } else {
        // What was done (or, with --dry-run, would be): the same lines either way.
        if (!args->quiet) std::cout << attach::plan_to_text(res.plan, req.dry_run) << std::flush;
        if (!req.dry_run)
          for (const auto& w : res.warnings) std::cerr << "ipsnat: warning: " << w << "\n";
      }
      return 0;
    };
  });
}

void register_detach(CLI::App& app, Context& ctx) {
  auto dev_name = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("detach", "Remove everything ipsnat added to DEV, and nothing else");
  cmd->add_option("DEV", *dev_name, "Device given to 'ipsnat attach'")->required();
  cmd->callback([&ctx, dev_name] {
    ctx.action = [dev_name] {
      if (!attach::detach(*dev_name))
        throw UserError("ipsnat is not attached to \"" + *dev_name + "\"", "see: ipsnat status");
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
