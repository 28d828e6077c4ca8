#include "attach/forward.h"

#include <algorithm>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <charconv>
#include <set>
#include <tuple>

#include "config/config.h"
#include "util/error.h"

namespace ipsnat::attach {
namespace {

constexpr const char* kExpected = "expected PROTO:[NATADDR:]PORT=INSIDEADDR:PORT, e.g. tcp:8080=192.168.1.10:80";

std::string addr_str(uint32_t be) { return config::ipv4_str(ntohl(be)); }

std::optional<uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v < 1 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

[[noreturn]] void bad(std::string_view spec, const std::string& what) {
  throw UserError("--forward \"" + std::string(spec) + "\": " + what, kExpected);
}

}  // namespace

std::string ForwardRule::str() const {
  return std::string(proto == IPPROTO_TCP ? "tcp" : "udp") + " " + (nat_addr ? addr_str(*nat_addr) : "*") + ":" +
         std::to_string(port) + " -> " + addr_str(inside_addr) + ":" + std::to_string(inside_port);
}

std::string ForwardRule::spec() const {
  return std::string(proto == IPPROTO_TCP ? "tcp" : "udp") + ":" + (nat_addr ? addr_str(*nat_addr) + ":" : "") +
         std::to_string(port) + "=" + addr_str(inside_addr) + ":" + std::to_string(inside_port);
}

ForwardRule parse_forward_spec(std::string_view spec) {
  ForwardRule r;
  auto eq = spec.find('=');
  if (eq == std::string_view::npos) bad(spec, "no '='");
  std::string_view outside = spec.substr(0, eq), inside = spec.substr(eq + 1);
  auto c1 = outside.find(':');
  if (c1 == std::string_view::npos) bad(spec, "no protocol");
  std::string_view proto = outside.substr(0, c1);
  if (proto == "tcp") r.proto = IPPROTO_TCP;
  else if (proto == "udp") r.proto = IPPROTO_UDP;
  else bad(spec, "protocol \"" + std::string(proto) + "\" is not tcp or udp");
  std::string_view rest = outside.substr(c1 + 1);
  if (auto c2 = rest.rfind(':'); c2 != std::string_view::npos) {
    auto a = config::parse_ipv4(rest.substr(0, c2));
    if (!a) bad(spec, "\"" + std::string(rest.substr(0, c2)) + "\" is not an IPv4 address");
    r.nat_addr = htonl(*a);
    rest = rest.substr(c2 + 1);
  }
  auto port = parse_port(rest);
  if (!port) bad(spec, "outside port \"" + std::string(rest) + "\" is not 1-65535");
  r.port = *port;
  auto c3 = inside.rfind(':');
  if (c3 == std::string_view::npos) bad(spec, "the inside host needs ADDRESS:PORT");
  auto ia = config::parse_ipv4(inside.substr(0, c3));
  if (!ia) bad(spec, "\"" + std::string(inside.substr(0, c3)) + "\" is not an IPv4 address");
  r.inside_addr = htonl(*ia);
  auto ip = parse_port(inside.substr(c3 + 1));
  if (!ip) bad(spec, "inside port \"" + std::string(inside.substr(c3 + 1)) + "\" is not 1-65535");
  r.inside_port = *ip;
  return r;
}

ForwardRule forward_rule_of(const config::PortForward& f) {
  ForwardRule r;
  r.proto = f.proto;
  r.nat_addr = htonl(f.nat_addr);
  r.port = f.outside_port;
  r.inside_addr = htonl(f.inside_addr);
  r.inside_port = f.inside_port;
  return r;
}

std::vector<ForwardRule> resolve_forwards(const std::vector<ForwardRule>& rules,
                                          const std::vector<uint32_t>& napt_addrs) {
  std::vector<ForwardRule> out;
  std::set<std::tuple<uint8_t, uint32_t, uint16_t>> seen;
  auto add = [&](ForwardRule r) {
    if (!seen.insert({r.proto, *r.nat_addr, r.port}).second)
      throw UserError("port-forward " + r.str() + ": that outside port is forwarded twice",
                      "each (protocol, address, port) once");
    out.push_back(r);
  };
  for (const auto& r : rules) {
    if (r.nat_addr) {
      add(r);
      continue;
    }
    if (napt_addrs.empty())
      throw UserError("port-forward " + r.str() + ": no NAT address to put it on",
                      "no out-policy of the device implies a single-address NAT; name it: PROTO:NATADDR:PORT=...");
    for (uint32_t a : napt_addrs) {
      ForwardRule x = r;
      x.nat_addr = a;
      add(x);
    }
  }
  return out;
}

std::vector<ForwardEntry> forward_entries(const std::vector<ForwardRule>& resolved) {
  std::vector<ForwardEntry> out;
  for (const auto& r : resolved) {
    ForwardEntry e{};
    e.key.nat_addr = r.nat_addr.value_or(0);
    e.key.port = htons(r.port);
    e.key.proto = r.proto;
    e.target.inside_addr = r.inside_addr;
    e.target.inside_port = htons(r.inside_port);
    out.push_back(e);
  }
  return out;
}

void write_forward_map(pins::ForwardMap& map, const std::vector<ForwardEntry>& entries) {
  // Added, never replacing the map's content: another device's attach may own other entries;
  // each attach records its own and detach deletes exactly those.
  for (const auto& e : entries) map.put(e.key, e.target);
}

void delete_forward_entries(pins::ForwardMap& map, const std::vector<ForwardEntry>& entries) {
  for (const auto& e : entries) map.erase(e.key);
}

std::vector<ipsnat_fwd_key> stale_forward_keys(const std::vector<ipsnat_fwd_key>& present,
                                               const std::vector<ForwardEntry>& wanted) {
  auto same = [](const ipsnat_fwd_key& a, const ipsnat_fwd_key& b) {
    return a.nat_addr == b.nat_addr && a.port == b.port && a.proto == b.proto;
  };
  std::vector<ipsnat_fwd_key> out;
  for (const auto& k : present)
    if (std::none_of(wanted.begin(), wanted.end(), [&](const ForwardEntry& e) { return same(e.key, k); }))
      out.push_back(k);
  return out;
}

size_t sync_forward_map(pins::ForwardMap& map, const std::vector<ForwardEntry>& wanted) {
  auto stale = stale_forward_keys(map.keys(), wanted);
  // New ones first: a forward that moves to another inside host is never absent meanwhile.
  write_forward_map(map, wanted);
  for (const auto& k : stale) map.erase(k);
  return stale.size();
}

}  // namespace ipsnat::attach
