#include "daemon/logging.h"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace ipsnat::daemon {

namespace {

// %* : the message as a JSON string literal (quotes included), escaped by nlohmann.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string quoted = nlohmann::json(std::string(msg.payload.data(), msg.payload.size()))
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_log_formatter(config::LogFormat format) {
  if (format == config::LogFormat::kJson) {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc, std::string("\n"));
    f->add_flag<JsonMessageFlag>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":%*})");
    return f;
  }
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %l: %v", spdlog::pattern_time_type::utc);
}

void setup_logging(config::LogFormat format, const std::string& level) {
  // stderr, unbuffered: stdout stays free for command output, and journald/kubectl read stderr.
  if (!spdlog::get("ipsnat")) {
    auto logger = std::make_shared<spdlog::logger>("ipsnat", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    spdlog::set_default_logger(logger);
  }
  spdlog::set_formatter(make_log_formatter(format));
  spdlog::set_level(spdlog::level::from_str(level == "warn" ? "warning" : level));
  spdlog::flush_on(spdlog::level::trace);  // a daemon's log is read live (journald, kubectl logs)
}

}  // namespace ipsnat::daemon
