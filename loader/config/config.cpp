#include "config/config.h"

#include "maps/npt6.h"
#include "maps/spd.h"

#include <netinet/in.h>

#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace ipsnat::config {

namespace {

constexpr const char* kPortRangeExpected =
    "expected \"MIN-MAX\" with 1024 <= MIN <= MAX <= 65535";
constexpr const char* kDurationExpected =
    "expected a positive duration: seconds (e.g. 300) or a string like \"90s\", \"5m\", \"2h4m\"";

template <typename T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date/time";
  }
}

// Reads one TOML table: allow() rejects every key the table may not have, so
// that a typo ("prot = 6") is an error and never silently ignored.
class TableReader {
 public:
  TableReader(const toml::table& t, const std::string& file, std::string path, int line)
      : t_(t), file_(file), path_(std::move(path)), line_(line) {}

  [[noreturn]] void fail(const toml::node* at, const std::string& key, const std::string& what) const {
    throw ConfigError(file_, at ? line_of(*at) : line_, qualified(key), what);
  }
  std::string qualified(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  int line() const { return line_; }
  const std::string& file() const { return file_; }

  const toml::node* get(const std::string& key) {
    return t_.get(key);
  }

  std::optional<std::string> get_string(const std::string& key, const char* expected) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(n, key, std::string(expected) + ", got " + type_name(*n));
    return n->as_string()->get();
  }

  // A string with the node it came from, for errors about its content.
  const toml::node* get_string_node(const std::string& key, const char* expected) {
    const toml::node* n = get(key);
    if (n && !n->is_string()) fail(n, key, std::string(expected) + ", got " + type_name(*n));
    return n;
  }

  std::string require_string(const std::string& key, const char* expected) {
    auto s = get_string(key, expected);
    if (!s) fail(nullptr, key, std::string("missing; ") + expected);
    return *s;
  }

  // Seconds: an integer or a duration string.
  std::optional<uint32_t> get_duration(const std::string& key) {
    const toml::node* n = get(key);
    if (!n) return std::nullopt;
    if (n->is_integer()) {
      int64_t v = n->as_integer()->get();
      if (v <= 0 || v > 0xffffffffLL) fail(n, key, kDurationExpected);
      return static_cast<uint32_t>(v);
    }
    if (n->is_string()) {
      if (auto d = parse_duration(n->as_string()->get())) return d;
    }
    fail(n, key, kDurationExpected);
  }

  // Rejects every key not in `keys` before anything else is read, so that a typo is reported as
  // such rather than as the missing key it was meant to be.
  void allow(std::initializer_list<std::string_view> keys, const char* allowed) const {
    for (auto&& [k, v] : t_) {
      std::string key(k.str());
      bool ok = false;
      for (auto known : keys) ok |= known == key;
      if (ok) continue;
      int line = k.source().begin.line ? static_cast<int>(k.source().begin.line) : line_of(v);
      throw ConfigError(file_, line, qualified(key), std::string("unknown key; expected one of: ") + allowed);
    }
  }

 private:
  const toml::table& t_;
  const std::string& file_;
  std::string path_;
  int line_;
};

// Calls fn(table, path, line) for each table of an array of tables `[[key]]` (or a single table).
template <typename Fn>
void for_each_table(TableReader& r, const std::string& key, const char* what, Fn fn) {
  const toml::node* n = r.get(key);
  if (!n) return;
  if (const toml::table* t = n->as_table()) {
    fn(*t, r.qualified(key), line_of(*t));
    return;
  }
  const toml::array* a = n->as_array();
  if (!a) r.fail(n, key, std::string("expected ") + what + " ([[" + key + "]] tables)");
  size_t i = 0;
  for (const toml::node& e : *a) {
    const toml::table* t = e.as_table();
    if (!t) r.fail(&e, key, std::string("expected ") + what + " ([[" + key + "]] tables), got " + type_name(e));
    fn(*t, r.qualified(key) + "[" + std::to_string(i++) + "]", line_of(*t) ? line_of(*t) : line_of(*a));
  }
}

Ipv4Prefix require_prefix(TableReader& r, const toml::node* n, const std::string& key, bool network) {
  std::string text = n->as_string()->get();
  auto p = parse_ipv4_prefix(text);
  if (!p) r.fail(n, key, "expected an IPv4 address or prefix like \"192.168.1.0/24\", got \"" + text + "\"");
  if (network && p->len < 32) {
    uint32_t mask = p->len ? ~uint32_t(0) << (32 - p->len) : 0;
    if (p->addr & ~mask)
      r.fail(n, key, "expected a network prefix with the host bits zero (\"" +
                         Ipv4Prefix{p->addr & mask, p->len}.str() + "\"), got \"" + text + "\"");
  }
  return *p;
}

std::vector<Ipv4Prefix> read_prefix_list(TableReader& r, const std::string& key) {
  std::vector<Ipv4Prefix> out;
  const toml::node* n = r.get(key);
  if (!n) return out;
  const char* expected = "expected an array of IPv4 prefixes like [\"192.168.1.0/24\"]";
  if (n->is_string()) {
    out.push_back(require_prefix(r, n, key, true));
    return out;
  }
  const toml::array* a = n->as_array();
  if (!a) r.fail(n, key, expected);
  for (const toml::node& e : *a) {
    if (!e.is_string()) r.fail(&e, key, std::string(expected) + ", got " + type_name(e) + " in it");
    out.push_back(require_prefix(r, &e, key, true));
  }
  return out;
}

std::pair<uint32_t, uint16_t> require_host_port(TableReader& r, const toml::node* n, const std::string& key) {
  std::string text = n->as_string()->get();
  auto colon = text.rfind(':');
  std::optional<uint32_t> addr;
  std::optional<uint16_t> port;
  if (colon != std::string::npos) {
    addr = parse_ipv4(std::string_view(text).substr(0, colon));
    port = parse_number<uint16_t>(std::string_view(text).substr(colon + 1));
  }
  if (!addr || !port || *port == 0)
    r.fail(n, key, "expected \"ADDRESS:PORT\" like \"192.168.1.10:80\", got \"" + text + "\"");
  return {*addr, *port};
}

void read_devices(TableReader& top, Config& c) {
  for_each_table(top, "device", "device tables", [&](const toml::table& t, const std::string& path, int line) {
    TableReader r(t, top.file(), path, line);
    r.allow({"name", "mode", "masquerade", "binat"}, "name, mode, masquerade, binat");
    Device d;
    d.line = line;
    d.name = r.require_string("name", "expected a network device name like \"eth0\"");
    if (d.name.empty() || d.name.size() > 15 || d.name.find_first_of("/ \t:") != std::string::npos)
      r.fail(r.get("name"), "name", "expected a network device name of 1 to 15 characters without '/', ':' or spaces");
    if (const toml::node* n = r.get_string_node("mode", "expected \"auto\", \"route\" or \"policy\"")) {
      std::string m = n->as_string()->get();
      if (m == "auto") d.mode = DeviceMode::kAuto;
      else if (m == "route") d.mode = DeviceMode::kRoute;
      else if (m == "policy") d.mode = DeviceMode::kPolicy;
      else r.fail(n, "mode", "expected \"auto\", \"route\" or \"policy\", got \"" + m + "\"");
    }
    if (const toml::node* n = r.get("masquerade")) {
      const char* expected = "expected true, false or an IPv4 address like \"200.2.2.2\"";
      if (const auto* b = n->as_boolean()) {
        d.masquerade = b->get();
      } else if (const auto* s = n->as_string()) {
        d.masquerade = true;
        d.masquerade_addr = parse_ipv4(s->get());
        if (!d.masquerade_addr) r.fail(n, "masquerade", std::string(expected) + ", got \"" + s->get() + "\"");
      } else {
        r.fail(n, "masquerade", std::string(expected) + ", got " + type_name(*n));
      }
    }
    if (const toml::node* n = r.get("binat")) {
      if (const auto* b = n->as_boolean()) d.binat = b->get();
      else r.fail(n, "binat", std::string("expected true or false, got ") + type_name(*n));
    }
    for (const auto& other : c.devices)
      if (other.name == d.name)
        r.fail(nullptr, "name", "expected each device once; \"" + d.name + "\" is already configured at line " +
                                    std::to_string(other.line));
    c.devices.push_back(d);
  });
}

// A [[nat]] rule's `to`: NAPT to one address or over a pool (a range "A-B", or a prefix smaller
// than the inside prefix), or a 1:1 map (a prefix of the inside prefix's length).
void read_nat_to(TableReader& r, const toml::node* to, NatRule& rule) {
  std::string text = to->as_string()->get();
  auto dash = text.find('-');
  if (dash != std::string::npos) {
    auto first = parse_ipv4(std::string_view(text).substr(0, dash));
    auto last = parse_ipv4(std::string_view(text).substr(dash + 1));
    if (!first || !last || *last < *first || *last - *first >= SPD_NAT_MAX_POOL)
      r.fail(to, "to", "expected a pool \"FIRST-LAST\" of at most " + std::to_string(SPD_NAT_MAX_POOL) +
                           " addresses, FIRST <= LAST, like \"10.20.30.2-10.20.30.5\", got \"" + text + "\"");
    rule.to = Ipv4Prefix{*first, 32};
    rule.to_count = *last - *first + 1;
    return;
  }
  rule.to = require_prefix(r, to, "to", true);
  if (rule.to.len == 32) return;
  if (rule.to.len == rule.inside.len) {
    rule.kind = NatRule::Kind::kPrefixMap;
    return;
  }
  if (rule.to.len < rule.inside.len || 32 - rule.to.len > 16)
    r.fail(to, "to", "expected a /" + std::to_string(rule.inside.len) + " (1:1 map of inside " + rule.inside.str() +
                         "), a pool (a longer prefix, /16 to /31) or a single address, got /" +
                         std::to_string(rule.to.len));
  rule.to_count = uint32_t(1) << (32 - rule.to.len);
}

// An IPv6 address or prefix ("2001:db8:b::5", "2001:db8:a::/64") as written, host bits kept so
// require_prefix6 can refuse them; nullopt when malformed or IPv4. util/address.h parses it.
std::optional<Prefix> parse_ipv6_prefix(std::string_view s) {
  std::string text(s);
  try {
    Prefix p = parse_prefix(text);
    if (p.addr.family != AF_INET6) return std::nullopt;
    p.addr = parse_address(text.substr(0, text.find('/')));
    return p;
  } catch (const UserError&) {
    return std::nullopt;
  }
}

Prefix require_prefix6(TableReader& r, const toml::node* n, const std::string& key) {
  std::string text = n->as_string()->get();
  auto p = parse_ipv6_prefix(text);
  if (!p) r.fail(n, key, "expected an IPv6 address or prefix like \"2001:db8:a::/64\", got \"" + text + "\"");
  Prefix net = parse_prefix(text);  // host bits cleared
  if (net != *p)
    r.fail(n, key, "expected a network prefix with the host bits zero (\"" + net.str() + "\"), got \"" + text + "\"");
  return *p;
}

// The last 32 bits of an address, where an IPv6 pool's addresses differ (maps/npt6.h span).
uint32_t low_word(const Address& a) { return npt6_word32(a.bytes.data(), 12); }

// An IPv6 [[nat]] rule's `to`: NAT66 with ports to one address or over a pool (a range "A-B", or a
// prefix /112 to /127 longer than inside: its addresses after the all-zeros one, as the automatic
// pool), or NPTv6 (a prefix of the inside prefix's length, up to /112).
void read_nat6_to(TableReader& r, const toml::node* to, NatRule& rule) {
  std::string text = to->as_string()->get();
  if (text.find(':') == std::string::npos)
    r.fail(to, "to", "expected an IPv6 address, pool or prefix for the IPv6 inside " + rule.inside6.str() +
                         " (one family per rule), got \"" + text + "\"");
  auto dash = text.find('-');
  if (dash != std::string::npos) {
    auto first = parse_ipv6_prefix(std::string_view(text).substr(0, dash));
    auto last = parse_ipv6_prefix(std::string_view(text).substr(dash + 1));
    bool ok = first && last && first->len == 128 && last->len == 128 &&
              std::memcmp(first->addr.bytes.data(), last->addr.bytes.data(), 12) == 0 &&
              low_word(last->addr) >= low_word(first->addr) &&
              low_word(last->addr) - low_word(first->addr) < IPSNAT_NPT6_MAX_POOL;
    if (!ok)
      r.fail(to, "to", "expected a pool \"FIRST-LAST\" of at most " + std::to_string(IPSNAT_NPT6_MAX_POOL) +
                           " addresses differing in the last 32 bits, FIRST <= LAST, like "
                           "\"2001:db8:b::2-2001:db8:b::5\", got \"" + text + "\"");
    rule.to6 = *first;
    rule.to_count = low_word(last->addr) - low_word(first->addr) + 1;
    return;
  }
  rule.to6 = require_prefix6(r, to, "to");
  if (rule.to6.len == 128) return;
  if (rule.to6.len == rule.inside6.len && rule.to6.len <= IPSNAT_NPT6_MAX_LEN) {
    rule.kind = NatRule::Kind::kPrefixMap;
    return;
  }
  if (rule.to6.len <= rule.inside6.len || rule.to6.len < 112)
    r.fail(to, "to", "expected a /" + std::to_string(rule.inside6.len) + " (NPTv6 1:1 map of inside " +
                         rule.inside6.str() + ", up to /" + std::to_string(IPSNAT_NPT6_MAX_LEN) +
                         "), a pool (a longer prefix, /112 to /127, or \"FIRST-LAST\") or a single address, got /" +
                         std::to_string(rule.to6.len));
}

// An IPv6 [[nat]] rule (inside an IPv6 prefix): NAT66 or NPTv6 instead of what the SPD implies.
void read_nat6(TableReader& r, const toml::node* inside, const toml::node* to, NatRule& rule) {
  rule.ipv6 = true;
  rule.inside6 = require_prefix6(r, inside, "inside");
  read_nat6_to(r, to, rule);
  if (const toml::node* d = r.get("destinations"))
    r.fail(d, "destinations",
           "expected no destinations in an IPv6 rule: its translation is kept per policy destination (the "
           "datapath's IPv6 rules are keyed by it), so it applies to each policy's whole destination selector");
}

void read_nat(TableReader& top, Config& c) {
  for_each_table(top, "nat", "NAT rule tables", [&](const toml::table& t, const std::string& path, int line) {
    TableReader r(t, top.file(), path, line);
    r.allow({"inside", "to", "destinations"}, "inside, to, destinations");
    NatRule rule;
    rule.line = line;
    const char* pfx = "expected an IPv4 or IPv6 prefix like \"192.168.1.0/24\" or \"fd00:1::/64\"";
    const toml::node* inside = r.get_string_node("inside", pfx);
    if (!inside) r.fail(nullptr, "inside", std::string("missing; ") + pfx);
    const char* to_expected =
        "expected the NAT address (\"10.20.30.2\"), a pool (\"10.20.30.2-10.20.30.5\" or a prefix longer than "
        "inside's) or a prefix of the inside prefix's length";
    const toml::node* to = r.get_string_node("to", to_expected);
    if (std::string(inside->as_string()->get()).find(':') != std::string::npos) {
      if (!to) r.fail(nullptr, "to", std::string("missing; ") + to_expected);
      read_nat6(r, inside, to, rule);
    } else {
      rule.inside = require_prefix(r, inside, "inside", true);
      if (!to) r.fail(nullptr, "to", std::string("missing; ") + to_expected);
      if (std::string(to->as_string()->get()).find(':') != std::string::npos)
        r.fail(to, "to", "expected an IPv4 address, pool or prefix for the IPv4 inside " + rule.inside.str() +
                             " (one family per rule), got \"" + std::string(to->as_string()->get()) + "\"");
      read_nat_to(r, to, rule);
      rule.destinations = read_prefix_list(r, "destinations");
    }
    for (const auto& other : c.nat)
      if (other.ipv6 == rule.ipv6 && (rule.ipv6 ? other.inside6 == rule.inside6 : other.inside == rule.inside))
        r.fail(inside, "inside", "expected one rule per inside prefix; " +
                                     (rule.ipv6 ? rule.inside6.str() : rule.inside.str()) +
                                     " already has a rule at line " + std::to_string(other.line));
    c.nat.push_back(rule);
  });
}

void read_forwards(TableReader& top, Config& c) {
  for_each_table(top, "forward", "port-forward tables", [&](const toml::table& t, const std::string& path, int line) {
    TableReader r(t, top.file(), path, line);
    r.allow({"proto", "port", "address", "to"}, "proto, port, address, to");
    PortForward f;
    f.line = line;
    const toml::node* proto = r.get_string_node("proto", "expected \"tcp\" or \"udp\"");
    if (!proto) r.fail(nullptr, "proto", "missing; expected \"tcp\" or \"udp\"");
    std::string p = proto->as_string()->get();
    if (p == "tcp") f.proto = IPPROTO_TCP;
    else if (p == "udp") f.proto = IPPROTO_UDP;
    else r.fail(proto, "proto", "expected \"tcp\" or \"udp\", got \"" + p + "\"");

    const toml::node* port = r.get("port");
    if (!port) r.fail(nullptr, "port", "missing; expected the outside port on the NAT address (1-65535)");
    if (!port->is_integer() || port->as_integer()->get() < 1 || port->as_integer()->get() > 65535)
      r.fail(port, "port", "expected the outside port on the NAT address, an integer 1-65535");
    f.outside_port = static_cast<uint16_t>(port->as_integer()->get());

    const toml::node* addr = r.get_string_node("address", "expected the NAT address like \"10.20.30.2\"");
    if (!addr) r.fail(nullptr, "address", "missing; expected the NAT address like \"10.20.30.2\"");
    auto a = parse_ipv4(addr->as_string()->get());
    if (!a) r.fail(addr, "address", "expected the NAT address like \"10.20.30.2\", got \"" +
                                        std::string(addr->as_string()->get()) + "\"");
    f.nat_addr = *a;

    const toml::node* to = r.get_string_node("to", "expected \"ADDRESS:PORT\" of the inside host");
    if (!to) r.fail(nullptr, "to", "missing; expected \"ADDRESS:PORT\" of the inside host like \"192.168.1.10:80\"");
    std::tie(f.inside_addr, f.inside_port) = require_host_port(r, to, "to");

    if (!c.inside.empty()) {
      bool inside = false;
      for (const auto& pfx : c.inside) inside |= pfx.contains(f.inside_addr);
      if (!inside)
        r.fail(to, "to", "expected a host inside one of the `inside` prefixes; " + ipv4_str(f.inside_addr) +
                             " is in none");
    }
    for (const auto& other : c.forwards)
      if (other.proto == f.proto && other.nat_addr == f.nat_addr && other.outside_port == f.outside_port)
        r.fail(port, "port", "expected each (proto, address, port) once; " + p + " " + ipv4_str(f.nat_addr) + ":" +
                                 std::to_string(f.outside_port) + " is already forwarded at line " +
                                 std::to_string(other.line));
    c.forwards.push_back(f);
  });
}

void read_timeouts(TableReader& top, Config& c) {
  const toml::node* n = top.get("timeouts");
  if (!n) return;
  const toml::table* t = n->as_table();
  if (!t) top.fail(n, "timeouts", "expected a [timeouts] table");
  TableReader r(*t, top.file(), "timeouts", line_of(*t));
  r.allow({"tcp_established", "tcp_transitory", "udp", "udp_stream", "icmp"},
          "tcp_established, tcp_transitory, udp, udp_stream, icmp");
  Timeouts& to = c.timeouts;
  if (auto v = r.get_duration("tcp_established")) to.tcp_established = *v;
  if (auto v = r.get_duration("tcp_transitory")) to.tcp_transitory = *v;
  if (auto v = r.get_duration("udp")) to.udp = *v;
  if (auto v = r.get_duration("udp_stream")) to.udp_stream = *v;
  if (auto v = r.get_duration("icmp")) to.icmp = *v;
}

}  // namespace

bool Ipv4Prefix::contains(uint32_t a) const {
  uint32_t mask = len ? ~uint32_t(0) << (32 - len) : 0;
  return (a & mask) == (addr & mask);
}

std::string ipv4_str(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::string Ipv4Prefix::str() const { return ipv4_str(addr) + "/" + std::to_string(len); }
std::string ListenAddress::str() const { return ipv4_str(addr) + ":" + std::to_string(port); }

const char* to_string(DeviceMode m) {
  switch (m) {
    case DeviceMode::kRoute: return "route";
    case DeviceMode::kPolicy: return "policy";
    default: return "auto";
  }
}

const char* to_string(LogFormat f) { return f == LogFormat::kJson ? "json" : "text"; }

ConfigError::ConfigError(std::string file, int line, const std::string& key, const std::string& expected)
    : UserError(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " +
                (key.empty() ? "" : key + ": ") + expected),
      file_(std::move(file)),
      line_(line) {}

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  uint32_t out = 0;
  for (int i = 0; i < 4; ++i) {
    size_t dot = i < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos) return std::nullopt;
    auto part = s.substr(0, dot);
    if (part.size() > 1 && part[0] == '0') return std::nullopt;  // no octal-looking octets
    auto v = parse_number<unsigned>(part);
    if (!v || *v > 255) return std::nullopt;
    out = out << 8 | *v;
    s = i < 3 ? s.substr(dot + 1) : std::string_view();
  }
  return out;
}

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view s) {
  auto slash = s.find('/');
  auto addr = parse_ipv4(s.substr(0, slash));
  if (!addr) return std::nullopt;
  if (slash == std::string_view::npos) return Ipv4Prefix{*addr, 32};
  auto len = parse_number<unsigned>(s.substr(slash + 1));
  if (!len || *len > 32) return std::nullopt;
  return Ipv4Prefix{*addr, static_cast<uint8_t>(*len)};
}

std::optional<ListenAddress> parse_listen_address(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto addr = parse_ipv4(s.substr(0, colon));
  auto port = parse_number<uint16_t>(s.substr(colon + 1));
  if (!addr || !port || *port == 0) return std::nullopt;
  return ListenAddress{*addr, *port};
}

std::optional<uint32_t> parse_duration(std::string_view s) {
  if (auto plain = parse_number<uint32_t>(s)) return *plain ? plain : std::nullopt;
  uint64_t total = 0;
  bool any = false;
  while (!s.empty()) {
    size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0 || digits == s.size()) return std::nullopt;
    auto v = parse_number<uint64_t>(s.substr(0, digits));
    if (!v) return std::nullopt;
    uint64_t unit = 0;
    switch (s[digits]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return std::nullopt;
    }
    // Checked before multiplying: "213503982334602d" overflowed 64 bits and wrapped to a small,
    // accepted duration (found by tests/fuzz/fuzz_cli_args).
    if (*v > (0xffffffffULL - total) / unit) return std::nullopt;
    total += *v * unit;
    any = true;
    s = s.substr(digits + 1);
  }
  if (!any || total == 0) return std::nullopt;
  return static_cast<uint32_t>(total);
}

Config parse_config(std::string_view text, const std::string& file_name) {
  toml::table doc;
  try {
    doc = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(file_name, static_cast<int>(e.source().begin.line), "",
                      "expected valid TOML: " + std::string(e.description()));
  }
  Config c;
  c.source = file_name;
  TableReader top(doc, file_name, "", 1);
  top.allow({"inside", "port_range", "metrics", "log_format", "log_level", "gc_interval", "limit_log_interval",
             "state_dir", "device", "nat", "forward", "timeouts"},
            "inside, port_range, metrics, log_format, log_level, gc_interval, limit_log_interval, state_dir, "
            "[[device]], [[nat]], [[forward]], [timeouts]");

  // `inside` first: port-forwards are checked against it.
  c.inside = read_prefix_list(top, "inside");
  read_devices(top, c);
  read_nat(top, c);
  read_forwards(top, c);
  read_timeouts(top, c);

  if (const toml::node* n = top.get_string_node("port_range", kPortRangeExpected)) {
    std::string_view s = n->as_string()->get();
    auto dash = s.find('-');
    std::optional<uint16_t> lo, hi;
    if (dash != std::string_view::npos) {
      lo = parse_number<uint16_t>(s.substr(0, dash));
      hi = parse_number<uint16_t>(s.substr(dash + 1));
    }
    if (!lo || !hi || *lo < 1024 || *lo > *hi) top.fail(n, "port_range", kPortRangeExpected);
    c.port_range = {*lo, *hi};
  }
  if (const toml::node* n = top.get_string_node("metrics", "expected \"ADDRESS:PORT\" like \"127.0.0.1:9477\"")) {
    auto a = parse_listen_address(n->as_string()->get());
    if (!a)
      top.fail(n, "metrics", "expected \"ADDRESS:PORT\" like \"127.0.0.1:9477\" (IPv4, port 1-65535), got \"" +
                                 std::string(n->as_string()->get()) + "\"");
    c.metrics = *a;
  }
  if (const toml::node* n = top.get_string_node("log_format", "expected \"text\" or \"json\"")) {
    std::string f = n->as_string()->get();
    if (f == "text") c.log_format = LogFormat::kText;
    else if (f == "json") c.log_format = LogFormat::kJson;
    else top.fail(n, "log_format", "expected \"text\" or \"json\", got \"" + f + "\"");
  }
  if (const toml::node* n = top.get_string_node("log_level", "expected \"debug\", \"info\", \"warn\" or \"error\"")) {
    std::string l = n->as_string()->get();
    if (l != "debug" && l != "info" && l != "warn" && l != "error")
      top.fail(n, "log_level", "expected \"debug\", \"info\", \"warn\" or \"error\", got \"" + l + "\"");
    c.log_level = l;
  }
  if (auto v = top.get_duration("gc_interval")) c.gc_interval = *v;
  if (auto v = top.get_duration("limit_log_interval")) c.limit_log_interval = *v;
  if (auto v = top.get_string("state_dir", "expected an absolute directory like \"/run/ipsnat\"")) {
    if (v->empty() || (*v)[0] != '/')
      top.fail(top.get("state_dir"), "state_dir", "expected an absolute directory like \"/run/ipsnat\"");
    c.state_dir = *v;
  }
  return c;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, 0, "", "expected a readable file: " + std::string(std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace ipsnat::config
