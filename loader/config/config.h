#pragma once
// ipsnat's configuration file (TOML, docs/config.md): what `ipsnat run` attaches to, the explicit
// NAT rules that override or extend what the SPD implies, conntrack timeouts, the port range, the
// metrics endpoint and the log format. The parser is pure (text in, Config out) so every error
// message is unit-tested; load_config_file only adds the read.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/address.h"
#include "util/error.h"

namespace ipsnat::config {

// An IPv4 address or prefix in host byte order.
struct Ipv4Prefix {
  uint32_t addr = 0;
  uint8_t len = 32;
  bool operator==(const Ipv4Prefix&) const = default;
  bool contains(uint32_t a) const;
  std::string str() const;
};
std::string ipv4_str(uint32_t host_order_addr);

enum class DeviceMode { kAuto, kRoute, kPolicy };
const char* to_string(DeviceMode m);

struct Device {
  std::string name;
  DeviceMode mode = DeviceMode::kAuto;
  // `masquerade = true` (the device's address) or `= "ADDRESS"`: attach --masquerade [ADDRESS].
  bool masquerade = false;
  std::optional<uint32_t> masquerade_addr;  // network order
  bool binat = false;  // `binat = true`: attach --binat
  int line = 0;  // where it was configured, for later diagnostics ("device eth0 (line 7): ...")
};

// An explicit translation. `to` with length 32 is single-address NAPT (many inside hosts share
// one address, ports rewritten); a shorter `to` is a 1:1 prefix map and must have the inside
// prefix's length. Empty `destinations`: wherever the SPD covers the NAT address as a source.
struct NatRule {
  enum class Kind { kNapt, kPrefixMap };
  Kind kind = Kind::kNapt;
  Ipv4Prefix inside;
  // As written: one address, a prefix, or the first address (/32) of a range "A-B".
  Ipv4Prefix to;
  // NAPT: the pool's size, addresses from to.addr on (1: to.addr alone); a prefix smaller than
  // `inside` or a range is a pool (docs/config.md).
  uint32_t to_count = 1;
  std::vector<Ipv4Prefix> destinations;
  int line = 0;
  // An IPv6 rule (`inside` an IPv6 prefix): inside6 and to6 hold it, the IPv4 fields above stay
  // unset. to6: one address (/128, NAT66 with ports), a range's first address (/128, to_count its
  // size), a prefix longer than inside6 (/112 to /127: a NAT66 pool of its addresses after the
  // all-zeros one, as the automatic pool, spd/npt6.h) or of inside6's length (NPTv6, kPrefixMap).
  // No destinations: IPv6 rules are keyed by the policy's destination (maps/npt6.h).
  bool ipv6 = false;
  Prefix inside6;
  Prefix to6;
};

// A port-forward into the LAN: packets arriving (decrypted) for `nat_addr:outside_port` are
// translated to `inside_addr:inside_port`.
struct PortForward {
  uint8_t proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
  uint32_t nat_addr = 0;
  uint16_t outside_port = 0;
  uint32_t inside_addr = 0;
  uint16_t inside_port = 0;
  int line = 0;
};

// Seconds. Defaults follow RFC 5382 (TCP), RFC 4787 (UDP) and RFC 5508 (ICMP).
struct Timeouts {
  uint32_t tcp_established = 7440;
  uint32_t tcp_transitory = 240;
  uint32_t udp = 60;          // one direction seen
  uint32_t udp_stream = 300;  // replies seen
  uint32_t icmp = 60;
  bool operator==(const Timeouts&) const = default;
};

struct PortRange {
  uint16_t min = 1024;
  uint16_t max = 65535;
  bool operator==(const PortRange&) const = default;
  uint32_t size() const { return uint32_t(max) - min + 1; }
};

struct ListenAddress {
  uint32_t addr = 0;  // host order
  uint16_t port = 0;
  bool operator==(const ListenAddress&) const = default;
  std::string str() const;
};

enum class LogFormat { kText, kJson };
const char* to_string(LogFormat f);

struct Config {
  std::string source;  // file name the config came from ("" for built-in defaults)
  std::vector<Device> devices;
  std::vector<Ipv4Prefix> inside;  // empty: what attach infers (connected LAN prefixes)
  std::vector<NatRule> nat;
  std::vector<PortForward> forwards;
  Timeouts timeouts;
  PortRange port_range;
  std::optional<ListenAddress> metrics;  // absent: no endpoint
  LogFormat log_format = LogFormat::kText;
  std::string log_level = "info";
  uint32_t gc_interval = 10;  // seconds between conntrack housekeeping passes
  uint32_t limit_log_interval = 60;  // seconds: at most one warning per resource limit per interval
  std::string state_dir = "/run/ipsnat";
};

// A config problem, already formatted "FILE:LINE: KEY: expected ...".
class ConfigError : public UserError {
 public:
  ConfigError(std::string file, int line, const std::string& key, const std::string& expected);
  const std::string& file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string file_;
  int line_;
};

// Parses TOML text; `file_name` only appears in messages. Throws ConfigError.
Config parse_config(std::string_view text, const std::string& file_name);
// Reads and parses a file. Throws ConfigError (also for an unreadable file).
Config load_config_file(const std::string& path);

// Parsers shared with the CLI (`--metrics 127.0.0.1:9477`): nullopt when malformed.
std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);
std::optional<uint32_t> parse_ipv4(std::string_view text);
std::optional<ListenAddress> parse_listen_address(std::string_view text);
// "90", "90s", "5m", "2h4m", "1d": seconds; nullopt when malformed or zero.
std::optional<uint32_t> parse_duration(std::string_view text);

}  // namespace ipsnat::config
