#pragma once
// The man page's generated part and the shell completions, written from the CLI11 definition
// that also prints --help, so the three cannot disagree. The build runs them
// (`ipsnat --help-man`, `ipsnat --completion bash|zsh`; cmake/Docs.cmake). Pure: walks the App.
#include <string>

#include <CLI/CLI.hpp>

namespace ipsnat::cli {

// roff: the OPTIONS section (the global options) and the COMMANDS section (each verb with its
// usage, description, arguments, options and footer), for docs/ipsnat.8.in.
std::string man_sections(const CLI::App& app);
// A bash completion script: verbs, their options and arguments; devices for attach/detach.
std::string bash_completion(const CLI::App& app);
// A zsh completion script (#compdef ipsnat) with the same knowledge.
std::string zsh_completion(const CLI::App& app);

}  // namespace ipsnat::cli
