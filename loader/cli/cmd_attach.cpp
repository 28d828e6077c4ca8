#include <cstdio>

#include <bpf/libbpf.h>

#include "cli/command.h"
#include "ipsnat_bpf.skel.h"
#include "sys/features.h"
#include "sys/netdev.h"
#include "sys/tc_hook.h"
#include "util/error.h"

namespace ipsnat::cli {

void register_attach(CLI::App& app, Context& ctx) {
  struct Args {
    std::string dev;
    std::string mode = "auto";
    bool dry_run = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("attach", "Translate traffic that leaves through DEV into IPsec");
  cmd->add_option("DEV", args->dev, "Tunnel device (xfrm interface, VTI) or uplink of policy-based SAs")
      ->required();
  cmd->add_option("-m,--mode", args->mode, "auto | route | policy")
      ->check(CLI::IsMember({"auto", "route", "policy"}));
  cmd->add_flag("-n,--dry-run", args->dry_run, "Print what would be done, change nothing");
  cmd->callback([&ctx, args] {
    ctx.action = [args] {
      auto dev = NetDevice::resolve(args->dev);
      if (args->dry_run) {
        std::printf("attach %s: tc egress program tc_snat_egress\n", dev.name.c_str());
        return 0;
      }
      FeatureProbe::require_all(FeatureProbe().probe());
      auto* skel = ipsnat_bpf__open_and_load();
      if (!skel) throw UserError("loading the BPF programs failed", "run with -vv for the verifier log");
      TcHook(dev.ifindex, TcDirection::kEgress).attach(bpf_program__fd(skel->progs.tc_snat_egress));
      ipsnat_bpf__destroy(skel);
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
      auto dev = NetDevice::resolve(*dev_name);
      if (!TcHook(dev.ifindex, TcDirection::kEgress).detach())
        throw UserError("ipsnat is not attached to \"" + dev.name + "\"", "see: ipsnat status");
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
