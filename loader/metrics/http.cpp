#include "metrics/http.h"

namespace ipsnat::metrics {

RequestHead parse_request_head(std::string_view buf, size_t max) {
  RequestHead r;
  // Scrapers end the head with CRLF CRLF; accept bare LF LF from hand-typed requests too.
  size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) end = buf.find("\n\n");
  if (end == std::string_view::npos) {
    r.state = buf.size() >= max ? RequestHead::State::kTooLarge : RequestHead::State::kIncomplete;
    return r;
  }
  if (end > max) {
    r.state = RequestHead::State::kTooLarge;
    return r;
  }
  std::string_view line = buf.substr(0, buf.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0 || sp2 == sp1 + 1 ||
      line.substr(sp2 + 1).rfind("HTTP/", 0) != 0) {
    r.state = RequestHead::State::kBad;
    return r;
  }
  r.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.path = std::string(target.substr(0, target.find('?')));
  r.state = RequestHead::State::kComplete;
  return r;
}

namespace {
std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}
}  // namespace

std::string http_response(int status, std::string_view content_type, std::string_view body, bool head_only) {
  std::string out = "HTTP/1.0 " + std::to_string(status) + " " + std::string(reason(status)) + "\r\n";
  out += "Content-Type: " + std::string(content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

}  // namespace ipsnat::metrics
