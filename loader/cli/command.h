#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace ipsnat::cli {

// Options every verb understands, in the ip/tc/bpftool manner (`ipsnat -j policies` or
// `ipsnat policies -j`).
struct GlobalOptions {
  bool json = false;
  bool pretty = false;
  int verbose = 0;
  std::string pin_root;  // --pin-root, $IPSNAT_PIN_ROOT or the default: resolved once after parsing
};

// Each verb adds its subcommand and sets `action` from its callback; main runs the action after
// parsing so that errors are reported in one place and one format.
struct Context {
  GlobalOptions global;
  std::function<int()> action;
};

// Registration functions, one per verb (loader/cli/cmd_<verb>.cpp).
void register_check(CLI::App& app, Context& ctx);
void register_attach(CLI::App& app, Context& ctx);
void register_detach(CLI::App& app, Context& ctx);
void register_run(CLI::App& app, Context& ctx);
void register_status(CLI::App& app, Context& ctx);
void register_flows(CLI::App& app, Context& ctx);
void register_policies(CLI::App& app, Context& ctx);
void register_explain(CLI::App& app, Context& ctx);

// Runs the CLI: parses, dispatches, turns exceptions into one-line errors. Returns the exit status.
int run(int argc, char** argv);

}  // namespace ipsnat::cli
