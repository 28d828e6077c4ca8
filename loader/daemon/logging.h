#pragma once
// spdlog set up for a daemon: text lines (journald adds its own timestamps, but a terminal or a
// container log wants them) or JSON lines {"time","level","logger","msg"} for log shippers.
#include <memory>
#include <string>

#include <spdlog/formatter.h>

#include "config/config.h"

namespace ipsnat::daemon {

std::unique_ptr<spdlog::formatter> make_log_formatter(config::LogFormat format);
// Applies format and level ("debug", "info", "warn", "error") to the default logger (stderr).
void setup_logging(config::LogFormat format, const std::string& level);

}  // namespace ipsnat::daemon
