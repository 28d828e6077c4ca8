#pragma once
// The smallest HTTP/1.0 a Prometheus scraper needs, pure: parse a request head out of a byte
// buffer with a hard size bound, and format a response. The socket side is metrics/server.*.
#include <cstddef>
#include <string>
#include <string_view>

namespace ipsnat::metrics {

inline constexpr size_t kMaxRequestHead = 4096;

struct RequestHead {
  enum class State { kIncomplete, kComplete, kBad, kTooLarge };
  State state = State::kIncomplete;
  std::string method;
  std::string path;  // without the query string
};

// `buf` holds everything received so far on the connection.
RequestHead parse_request_head(std::string_view buf, size_t max = kMaxRequestHead);

std::string http_response(int status, std::string_view content_type, std::string_view body, bool head_only = false);

}  // namespace ipsnat::metrics
