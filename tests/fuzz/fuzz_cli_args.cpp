// libFuzzer target: every parser that turns a command-line word (or a config/state string) into
// an address, prefix, port, protocol or duration. The first byte picks the parser, the rest is
// the word. Oracles: glibc's inet_pton for addresses, a wide-integer reference for durations,
// and round trips through the printed form for prefixes and listen addresses.
#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "cli/args.h"
#include "config/config.h"
#include "ct/flow_view.h"
#include "spd/policy.h"
#include "util/error.h"

namespace {

[[noreturn]] void finding(const char* parser, const std::string& word, const char* what) {
  std::fprintf(stderr, "fuzz_cli_args: %s(\"%s\"): %s\n", parser, word.c_str(), what);
  std::abort();
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

std::optional<uint32_t> inet_pton4(const std::string& s) {
  in_addr a{};
  if (has_nul(s) || inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

// Durations: "N" (seconds) or one or more "N<s|m|h|d>" groups; the sum must be 1..2^32-1.
std::optional<uint32_t> reference_duration(const std::string& s) {
  if (s.empty()) return std::nullopt;
  unsigned __int128 total = 0;
  size_t i = 0;
  bool plain = s.find_first_not_of("0123456789") == std::string::npos;
  while (i < s.size()) {
    unsigned __int128 v = 0;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + unsigned(s[i] - '0');
      if (v > (unsigned __int128)1 << 64) v = (unsigned __int128)1 << 64;  // saturate: too large anyway
      i++;
    }
    if (i == start) return std::nullopt;
    unsigned unit = 1;
    if (i == s.size()) {
      if (!plain) return std::nullopt;
    } else {
      switch (s[i++]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return std::nullopt;
      }
    }
    total += v * unit;
    if (total > 0xffffffffu) return std::nullopt;
  }
  if (total == 0) return std::nullopt;
  return static_cast<uint32_t>(total);
}

template <typename Fn>
auto user_error_as_nullopt(Fn fn) -> std::optional<decltype(fn())> {
  try {
    return fn();
  } catch (const ipsnat::UserError&) {
    return std::nullopt;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string word(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace cfg = ipsnat::config;
  namespace spd = ipsnat::spd;
  switch (data[0] % 9) {
    case 0: {  // config/metrics address: exactly what inet_pton accepts
      auto got = cfg::parse_ipv4(word);
      if (got != inet_pton4(word)) finding("config::parse_ipv4", word, "disagrees with inet_pton");
      break;
    }
    case 1: {  // config prefix: "A.B.C.D[/N]", printed form parses back to the same
      if (auto p = cfg::parse_ipv4_prefix(word)) {
        if (p->len > 32) finding("config::parse_ipv4_prefix", word, "length > 32");
        if (cfg::parse_ipv4_prefix(p->str()) != p) finding("config::parse_ipv4_prefix", word, "no round trip");
        auto slash = word.find('/');
        if (cfg::parse_ipv4(word.substr(0, slash)) != p->addr) finding("config::parse_ipv4_prefix", word, "address");
      }
      break;
    }
    case 2: {  // --metrics ADDR:PORT
      if (auto a = cfg::parse_listen_address(word)) {
        if (a->port == 0) finding("config::parse_listen_address", word, "port 0 accepted");
        if (cfg::parse_listen_address(a->str()) != a) finding("config::parse_listen_address", word, "no round trip");
      }
      break;
    }
    case 3: {  // durations in the config ("2h4m")
      if (cfg::parse_duration(word) != reference_duration(word))
        finding("config::parse_duration", word, "disagrees with the reference");
      break;
    }
    case 4: {  // --inside / explain addresses: IPv4 or IPv6, exactly what inet_pton accepts
      auto a = user_error_as_nullopt([&] { return ipsnat::parse_address(word); });
      in6_addr a6{};
      bool v4 = inet_pton4(word).has_value();
      bool v6 = !has_nul(word) && inet_pton(AF_INET6, word.c_str(), &a6) == 1;
      if (a.has_value() != (v4 || v6)) finding("parse_address", word, "disagrees with inet_pton");
      break;
    }
    case 5: {  // --inside PREFIX: canonical (host bits zero), printed form parses back
      auto p = user_error_as_nullopt([&] { return ipsnat::parse_prefix(word); });
      if (p) {
        unsigned max = p->addr.family == AF_INET ? 32 : 128;
        if (p->len > max) finding("parse_prefix", word, "length beyond the family");
        auto q = user_error_as_nullopt([&] { return ipsnat::parse_prefix(p->str()); });
        if (q != p) finding("parse_prefix", word, "no round trip");
        auto slash = word.find('/');
        if (!user_error_as_nullopt([&] { return ipsnat::parse_address(word.substr(0, slash)); }))
          finding("parse_prefix", word, "accepted a prefix whose address is invalid");
      }
      break;
    }
    case 6: {  // explain PORT
      auto p = user_error_as_nullopt([&] { return ipsnat::cli::parse_port_arg(word); });
      bool digits = !word.empty() && word.size() <= 5 && word.find_first_not_of("0123456789") == std::string::npos;
      if (p.has_value() != (digits && std::stoul(word) <= 65535)) finding("parse_port_arg", word, "accept/refuse");
      if (p && *p != std::stoul(word)) finding("parse_port_arg", word, "value");
      break;
    }
    case 7: {  // explain PROTO (numbers are checked; names come from /etc/protocols)
      auto p = user_error_as_nullopt([&] { return ipsnat::cli::parse_proto_arg(word); });
      bool digits = !word.empty() && word.find_first_not_of("0123456789") == std::string::npos;
      if (digits && word.size() <= 3 && std::stoul(word) <= 255 && p != std::stoul(word))
        finding("parse_proto_arg", word, "number refused or changed");
      break;
    }
    case 8: {  // flows --proto / --state
      auto p = ipsnat::ct::parse_proto(word);
      bool digits = !word.empty() && word.size() <= 9 && word.find_first_not_of("0123456789") == std::string::npos;
      if (digits && (std::stoul(word) <= 255 ? p != std::stoul(word) : p.has_value()))
        finding("ct::parse_proto", word, "number refused, changed or > 255 accepted");
      (void)ipsnat::ct::parse_state(word);
      break;
    }
  }
  return 0;
}
