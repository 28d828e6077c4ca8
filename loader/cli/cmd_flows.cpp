#include <arpa/inet.h>

#include <iostream>

#include "cli/command.h"
#include "cli/output.h"
#include "ct/ct_map.h"
#include "ct/flow_view.h"
#include "ct/gc.h"
#include "util/error.h"

namespace ipsnat::cli {

void register_flows(CLI::App& app, Context& ctx) {
  struct Args {
    std::string addr, proto, state;
    int port = -1;
    bool gc = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("flows", "List the flows ipsnat tracks (original and translated tuples)");
  cmd->add_option("--addr", args->addr, "Only flows with this address (inside, remote or NAT)");
  cmd->add_option("--proto", args->proto, "Only this protocol: tcp, udp, icmp or a number");
  cmd->add_option("--port", args->port, "Only flows with this port (any side)")->check(CLI::Range(0, 65535));
  cmd->add_option("--state", args->state,
                  "Only this state: syn-sent established closing reset unreplied replied icmp other");
  cmd->add_flag("--gc", args->gc, "Delete expired flows first (one sweep, as the daemon does)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      ct::FlowFilter filter;
      if (!args->addr.empty()) {
        in_addr a{};
        if (inet_pton(AF_INET, args->addr.c_str(), &a) != 1)
          throw UserError("\"" + args->addr + "\" is not an IPv4 address", "e.g. --addr 192.168.1.10");
        filter.addr = a.s_addr;
      }
      if (!args->proto.empty() && !(filter.proto = ct::parse_proto(args->proto)))
        throw UserError("unknown protocol \"" + args->proto + "\"", "tcp, udp, icmp or a number");
      if (!args->state.empty() && !(filter.state = ct::parse_state(args->state)))
        throw UserError("unknown state \"" + args->state + "\"", "see: ipsnat flows --help");
      if (args->port >= 0) filter.port = static_cast<uint16_t>(args->port);

      auto maps = ct::CtMaps::open_pinned(ctx.global.pin_root);
      uint64_t now = ct::boottime_ns();
      if (args->gc) {
        auto r = ct::CtGc(maps).sweep(now);
        if (!ctx.global.json) std::cout << "gc: " << r.expired << " of " << r.flows << " flows expired\n";
      }
      auto flows = ct::pair_entries(maps.entries());
      nlohmann::json out = nlohmann::json::array();
      for (const auto& f : flows) {
        if (!filter.matches(f)) continue;
        if (ctx.global.json)
          out.push_back(ct::flow_json(f, now));
        else
          std::cout << ct::flow_line(f, now) << "\n";
      }
      if (ctx.global.json) print_json(ctx.global, out);
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
