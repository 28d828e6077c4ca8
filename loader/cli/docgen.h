#pragma once
// The man page's generated part, written from the CLI11 definition that also prints --help, so
// the two cannot disagree. The build runs it (`ipsnat --help-man`; cmake/Docs.cmake). Pure:
// walks the App.
#include <string>

#include <CLI/CLI.hpp>

namespace ipsnat::cli {

// roff: the OPTIONS section (the global options) and the COMMANDS section (each verb with its
// usage, description, arguments, options and footer), for docs/ipsnat.8.in.
std::string man_sections(const CLI::App& app);

}  // namespace ipsnat::cli
