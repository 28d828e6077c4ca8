// libFuzzer target: ipsnat's TOML configuration (toml++ and config::parse_config). Any text must
// either parse into a Config that keeps the documented invariants or be refused with a
// ConfigError; every other exception, crash or out-of-bounds read is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "config/config.h"
#include "maps/spd.h"

using namespace ipsnat::config;

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_config: accepted a config that breaks: %s\n", what);
  std::abort();
}

bool network(const Ipv4Prefix& p) {
  return p.len <= 32 && (p.len == 32 || (p.addr & ~(p.len ? ~uint32_t(0) << (32 - p.len) : 0)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Config c;
  try {
    c = parse_config(text, "fuzz.toml");
  } catch (const ConfigError& e) {
    require(e.what()[0] != '\0', "an empty error message");
    return 0;
  }
  require(c.port_range.min >= 1024 && c.port_range.min <= c.port_range.max, "port_range bounds");
  for (const auto& p : c.inside) require(network(p), "inside prefix with host bits");
  for (const auto& d : c.devices) require(!d.name.empty() && d.name.size() <= 15, "device name length");
  for (const auto& r : c.nat) {
    require(network(r.inside) && network(r.to), "nat prefixes");
    // A 1:1 map is a prefix of the inside prefix's length; NAPT names one address, a range (to
    // its first address, /32) or a longer prefix, whose addresses are all the pool.
    if (r.kind == NatRule::Kind::kPrefixMap)
      require(r.to.len == r.inside.len && r.to.len < 32 && r.to_count == 1, "nat kind (1:1 map)");
    else
      require(r.to_count >= 1 && r.to_count <= SPD_NAT_MAX_POOL &&
                  (r.to.len == 32 || (r.to.len > r.inside.len && r.to_count == uint32_t(1) << (32 - r.to.len))),
              "nat kind (NAPT pool)");
    require(r.kind == NatRule::Kind::kNapt || r.to.len == r.inside.len, "1:1 map of unequal lengths");
  }
  for (const auto& f : c.forwards) {
    require(f.outside_port != 0 && f.inside_port != 0, "forward port 0");
    require(f.proto == 6 || f.proto == 17, "forward protocol");
  }
  const Timeouts& t = c.timeouts;
  require(t.tcp_established && t.tcp_transitory && t.udp && t.udp_stream && t.icmp, "zero timeout");
  require(c.gc_interval > 0, "zero gc_interval");
  require(!c.state_dir.empty() && c.state_dir[0] == '/', "relative state_dir");
  if (c.metrics) require(c.metrics->port != 0, "metrics port 0");
  return 0;
}
