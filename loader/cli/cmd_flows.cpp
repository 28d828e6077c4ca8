#include <arpa/inet.h>

#include <iostream>

#include "cli/command.h"
#include "cli/output.h"
#include "ct/flow_view.h"
#include "pins/ct_gc.h"
#include "pins/ct_map.h"
#include "util/error.h"

namespace ipsnat::cli {

namespace {

// The options that select flows, the same for listing (`flows`) and deleting (`flows flush`).
struct FilterArgs {
  std::string addr, proto, state;
  int port = -1;
};

void add_filter_options(CLI::App* cmd, FilterArgs& a) {
  cmd->add_option("--addr", a.addr, "Only flows with this address (inside, remote or NAT)");
  cmd->add_option("--proto", a.proto, "Only this protocol: tcp, udp, icmp, gre, ipip, ipv6 or a number");
  cmd->add_option("--port", a.port, "Only flows with this port (any side)")->check(CLI::Range(0, 65535));
  cmd->add_option("--state", a.state, "Only this state: syn-sent established closing reset unreplied replied icmp other");
}

ct::FlowFilter filter_of(const FilterArgs& a) {
  ct::FlowFilter filter;
  if (!a.addr.empty()) {
    in_addr addr{};
    if (inet_pton(AF_INET, a.addr.c_str(), &addr) != 1)
      throw UserError("\"" + a.addr + "\" is not an IPv4 address", "e.g. --addr 192.168.1.10");
    filter.addr = addr.s_addr;
  }
  if (!a.proto.empty() && !(filter.proto = ct::parse_proto(a.proto)))
    throw UserError("unknown protocol \"" + a.proto + "\"", "tcp, udp, icmp, gre, ipip, ipv6 or a number");
  if (!a.state.empty() && !(filter.state = ct::parse_state(a.state)))
    throw UserError("unknown state \"" + a.state + "\"", "see: ipsnat flows --help");
  if (a.port >= 0) filter.port = static_cast<uint16_t>(a.port);
  return filter;
}

// An IPv6 (NAT66) flow against the filter: --addr takes IPv4 addresses only, so it selects none;
// --proto icmp selects ICMPv6 echoes too.
bool matches6(const ct::FlowFilter& filter, const ct::Flow6& f) {
  if (filter.addr) return false;
  ct::Flow v = f.as_flow();
  if (filter.proto && *filter.proto != v.proto()) return false;
  ipsnat_ct6_key o = f.orig_key(), r = f.reply_key();
  if (filter.port && *filter.port != ntohs(o.sport) && *filter.port != ntohs(o.dport) &&
      *filter.port != ntohs(r.dport))
    return false;
  return !filter.state || *filter.state == ct::classify(v);
}

// The pin root resolved once in cli/app.cpp (--pin-root before or after the verb, else the
// environment's or the default).
pins::CtMaps open_maps(const Context& ctx) {
  return pins::CtMaps::open_pinned(ctx.global.pin_root);
}

void register_flush(CLI::App* flows, Context& ctx) {
  auto args = std::make_shared<FilterArgs>();
  auto* cmd = flows->add_subcommand(
      "flush", "Delete the flows the filter selects (all without one), both directions of each; their next packet starts a new flow");
  add_filter_options(cmd, *args);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      ct::FlowFilter filter = filter_of(*args);
      auto maps = open_maps(ctx);
      auto r = pins::CtGc(maps).remove_if([&filter](const ct::Flow& f) { return filter.matches(f); });
      if (auto ct6 = pins::Ct6Map::open_pinned(ctx.global.pin_root))
        r += pins::Ct6Gc(*ct6).remove_if([&filter](const ct::Flow6& f) { return matches6(filter, f); });
      if (ctx.global.json)
        print_json(ctx.global, {{"flows", r.flows}, {"removed", r.removed}, {"entries_deleted", r.entries_deleted}});
      else
        std::cout << r.removed << " of " << r.flows << " flows removed\n";
      return 0;
    };
  });
}

}  // namespace

void register_flows(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<FilterArgs>();
  auto gc = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("flows", "List the flows ipsnat tracks (original and translated tuples)");
  add_filter_options(cmd, *args);
  cmd->add_flag("--gc", *gc, "Delete expired flows first (one sweep, as the daemon does)");
  register_flush(cmd, ctx);
  cmd->callback([&ctx, args, gc, cmd] {
    if (cmd->got_subcommand("flush")) return;  // flush set the action (its callback ran first)
    ctx.action = [&ctx, args, gc] {
      ct::FlowFilter filter = filter_of(*args);
      auto maps = open_maps(ctx);
      uint64_t now = pins::boottime_ns();
      auto ct6 = pins::Ct6Map::open_pinned(ctx.global.pin_root);
      if (*gc) {
        auto r = pins::CtGc(maps).sweep(now);
        if (ct6) r += pins::Ct6Gc(*ct6).sweep(now, ct::Timeouts::from_config(maps.config()));
        if (!ctx.global.json) std::cout << "gc: " << r.removed << " of " << r.flows << " flows expired\n";
      }
      nlohmann::json out = nlohmann::json::array();
      // One table's flows that `matches` selects, as JSON or as lines (IPv4 first, then IPv6).
      auto show = [&](const auto& flows, const auto& matches, const auto& as_json, const auto& as_line) {
        for (const auto& f : flows) {
          if (!matches(f)) continue;
          if (ctx.global.json)
            out.push_back(as_json(f, now));
          else
            std::cout << as_line(f, now) << "\n";
        }
      };
      show(ct::pair_entries(maps.entries()), [&filter](const ct::Flow& f) { return filter.matches(f); },
           ct::flow_json, ct::flow_line);
      if (ct6)
        show(ct::pair_entries6(ct6->entries()), [&filter](const ct::Flow6& f) { return matches6(filter, f); },
             ct::flow6_json, ct::flow6_line);
      if (ctx.global.json) print_json(ctx.global, out);
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
