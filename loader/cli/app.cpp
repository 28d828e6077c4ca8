#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/command.h"
#include "cli/docgen.h"
#include "ipsnat/version.h"
#include "maps/common.h"
#include "pins/pin_store.h"
#include "util/error.h"

namespace ipsnat::cli {

namespace {

void print_error(const std::string& what, const std::string& hint) {
  std::cerr << "ipsnat: " << what;
  if (!hint.empty()) std::cerr << " (" << hint << ")";
  std::cerr << "\n";
}

// libbpf's messages go through spdlog: the verifier log at -vv, nothing on a clean run.
int libbpf_to_spdlog(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[4096];
  int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
  std::string_view msg(buf, n > 0 ? std::min<size_t>(n, sizeof(buf) - 1) : 0);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  if (level == LIBBPF_WARN)
    spdlog::info("libbpf: {}", msg);
  else
    spdlog::debug("libbpf: {}", msg);
  return n;
}

bool has_verb(CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->check_name(name)) return true;
  return false;
}

// The first word that is neither an option nor an option's value.
std::optional<std::string> first_verb(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.empty() || arg[0] != '-') return arg;
    if (arg.find('=') != std::string::npos) continue;
    const CLI::Option* opt = app.get_option_no_throw(arg);
    if (opt && opt->get_expected_min() > 0) ++i;  // skip the option's value
  }
  return std::nullopt;
}

// The generators of the man page's verb sections and of the completions (cmake/Docs.cmake runs
// them at build time): words no user types, kept out of --help.
std::optional<std::string> generated_doc(const CLI::App& app, int argc, char** argv) {
  std::string what = argc >= 2 ? argv[1] : "";
  std::string shell = argc == 3 ? argv[2] : "";
  if (argc == 2 && what == "--help-man") return man_sections(app);
  if (what == "--completion" && shell == "bash") return bash_completion(app);
  if (what == "--completion" && shell == "zsh") return zsh_completion(app);
  return std::nullopt;
}

}  // namespace

int run(int argc, char** argv) {
  Context ctx;
  CLI::App app{"ipsnat - source NAT in front of Linux IPsec, in eBPF", "ipsnat"};
  app.set_version_flag("-V,--version", std::string("ipsnat ") + kVersion);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_flag("-j,--json", ctx.global.json, "Machine-readable JSON output");
  app.add_flag("-p,--pretty", ctx.global.pretty, "Indent JSON output");
  app.add_flag("-v,--verbose", ctx.global.verbose, "More log output (repeat for debug)");
  app.add_option("--pin-root", ctx.global.pin_root,
                 "bpffs directory of ipsnat's pins (default $IPSNAT_PIN_ROOT or " IPSNAT_PIN_ROOT ")")
      ->type_name("DIR");
  app.footer("Run 'ipsnat VERB --help' for a verb's options.");

  register_check(app, ctx);
  register_attach(app, ctx);
  register_detach(app, ctx);
  register_run(app, ctx);
  register_status(app, ctx);
  register_flows(app, ctx);
  register_policies(app, ctx);
  register_explain(app, ctx);

  if (auto doc = generated_doc(app, argc, argv)) {
    std::cout << *doc;
    return 0;
  }

  // CLI11 would report an unknown verb as a missing subcommand; name it instead, like ip does.
  if (auto verb = first_verb(app, argc, argv); verb && !has_verb(app, *verb)) {
    print_error("unknown verb \"" + *verb + "\"", "try 'ipsnat --help'");
    return 2;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // CLI11's own messages already name the option; keep ip's terse one-line style.
    std::string help = "ipsnat";
    for (const CLI::App* sub : app.get_subcommands()) help += " " + sub->get_name();
    print_error(e.what(), "try '" + help + " --help'");
    return 2;
  }

  // The one place the pin root is decided: every verb reads ctx.global.pin_root. `ipsnat flows
  // --pin-root X` reaches the same option (fallthrough).
  ctx.global.pin_root = pins::PinStore::resolve_root(ctx.global.pin_root);
  spdlog::set_level(ctx.global.verbose >= 2 ? spdlog::level::debug
                    : ctx.global.verbose == 1 ? spdlog::level::info
                                              : spdlog::level::warn);
  libbpf_set_print(libbpf_to_spdlog);
  try {
    return ctx.action ? ctx.action() : 0;
  } catch (const UserError& e) {
    print_error(e.what(), e.hint());
  } catch (const SysError& e) {
    print_error(e.what(), "");
  } catch (const std::exception& e) {
    print_error(e.what(), "");
  }
  return 1;
}

}  // namespace ipsnat::cli
