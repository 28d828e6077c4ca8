// libFuzzer target: the metrics endpoint's HTTP request-head parser, which reads whatever a
// peer on the metrics port sends. Oracles: the size bound holds and a complete head's method
// and path are pieces of its first line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "metrics/http.h"

using ipsnat::metrics::RequestHead;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view buf(reinterpret_cast<const char*>(data), size);
  size_t max = 64 + (size ? data[0] : 0);  // small bounds too, not only the default
  for (size_t bound : {max, ipsnat::metrics::kMaxRequestHead}) {
    RequestHead r = ipsnat::metrics::parse_request_head(buf, bound);
    if (r.state != RequestHead::State::kComplete) continue;
    std::string_view line = buf.substr(0, buf.find('\n'));
    bool ok = !r.method.empty() && line.find(r.method) == 0 && line.find(r.path) != std::string_view::npos &&
              r.path.find('?') == std::string::npos && r.method.size() + r.path.size() < bound;
    if (!ok) {
      std::fprintf(stderr, "fuzz_metrics_http: complete head with method/path not from its first line\n");
      std::abort();
    }
  }
  return 0;
}
