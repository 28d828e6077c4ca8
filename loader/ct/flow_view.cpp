#include "ct/flow_view.h"

#include <arpa/inet.h>

#include <array>
#include <sstream>
#include <utility>

namespace ipsnat::ct {
namespace {

// The flow's tuples in host terms, whichever entries are present.
struct Tuples {
  uint32_t inside, remote, nat;  // network order
  uint16_t inside_port, remote_port, nat_port;  // host order
};

Tuples tuples_of(const Flow& f) {
  ipsnat_ct_key o = f.orig_key(), r = f.reply_key();
  return Tuples{o.saddr, o.daddr, r.daddr, ntohs(o.sport), ntohs(o.dport), ntohs(r.dport)};
}

std::string addr_str(uint32_t a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

const char* kind_name(uint8_t kind) {
  switch (kind) {
    case IPSNAT_CT_KIND_PREFIX: return "prefix";
    case IPSNAT_CT_KIND_FORWARD: return "forward";
    case IPSNAT_CT_KIND_MASQ: return "masquerade";
    case IPSNAT_CT_KIND_BINAT: return "binat";
    default: return "napt";
  }
}

// The protocols the datapath translates, by their iproute2 names; any other by its number.
constexpr std::pair<uint8_t, const char*> kProtoNames[] = {{6, "tcp"}, {17, "udp"}, {1, "icmp"},
                                                           {47, "gre"}, {4, "ipip"}, {41, "ipv6"}};

std::string proto_str(uint8_t p) {
  for (auto [number, name] : kProtoNames)
    if (number == p) return name;
  return std::to_string(p);
}

// TCP and UDP flows are keyed by their ports, ICMP echo by its id; the datapath keys every other
// protocol by its addresses alone (bpf/lib/nat.h nat_proto_portless).
bool has_ports(uint8_t p) { return p == 6 || p == 17; }

uint64_t seconds_since(uint64_t then_ns, uint64_t now_ns) { return now_ns > then_ns ? (now_ns - then_ns) / 1000000000ull : 0; }

}  // namespace

bool FlowFilter::matches(const Flow& f) const {
  Tuples t = tuples_of(f);
  if (addr && *addr != t.inside && *addr != t.remote && *addr != t.nat) return false;
  if (proto && *proto != f.proto()) return false;
  if (port && *port != t.inside_port && *port != t.remote_port && *port != t.nat_port) return false;
  if (state && *state != classify(f)) return false;
  return true;
}

std::optional<uint8_t> parse_proto(const std::string& s) {
  for (auto [number, name] : kProtoNames)
    if (s == name) return number;
  try {
    size_t used = 0;
    int n = std::stoi(s, &used);
    if (used == s.size() && n >= 0 && n <= 255) return static_cast<uint8_t>(n);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<State> parse_state(const std::string& s) {
  for (State st : {State::kTcpSynSent, State::kTcpEstablished, State::kTcpClosing, State::kTcpReset,
                   State::kUdpUnreplied, State::kUdpReplied, State::kIcmp, State::kOther})
    if (state_name(st) == s) return st;
  return std::nullopt;
}

nlohmann::json flow_json(const Flow& f, uint64_t now_ns) {
  Tuples t = tuples_of(f);
  bool icmp = f.proto() == 1;
  auto counters = [&](const std::optional<Entry>& e, bool bytes) -> uint64_t {
    return e ? (bytes ? e->value.bytes : e->value.packets) : 0;
  };
  const auto& any = f.orig ? f.orig->value : f.reply->value;
  nlohmann::json j = {
      {"proto", proto_str(f.proto())},
      {"original", {{"src", addr_str(t.inside)}, {"dst", addr_str(t.remote)}}},
      {"translated", {{"src", addr_str(t.nat)}, {"dst", addr_str(t.remote)}}},
      {"kind", kind_name(any.kind)},
      // A masqueraded flow's entries hold the guard's ipsnat_dev generation there (maps/ct.h).
      {"reqid", any.kind == IPSNAT_CT_KIND_MASQ ? 0u : any.reqid},
      {"state", std::string(state_name(classify(f)))},
      {"complete", f.complete()},
      {"age_s", seconds_since(f.created_ns(), now_ns)},
      {"idle_s", seconds_since(f.last_ns(), now_ns)},
      {"packets", {{"original", counters(f.orig, false)}, {"reply", counters(f.reply, false)}}},
      {"bytes", {{"original", counters(f.orig, true)}, {"reply", counters(f.reply, true)}}},
  };
  if (icmp) {
    j["original"]["id"] = t.inside_port;
    j["translated"]["id"] = t.nat_port;
  } else if (has_ports(f.proto())) {
    j["original"]["sport"] = t.inside_port;
    j["original"]["dport"] = t.remote_port;
    j["translated"]["sport"] = t.nat_port;
    j["translated"]["dport"] = t.remote_port;
  }
  return j;
}

std::string flow_line(const Flow& f, uint64_t now_ns) {
  Tuples t = tuples_of(f);
  std::ostringstream s;
  s << proto_str(f.proto()) << " ";
  if (f.proto() == 1) {
    s << addr_str(t.inside) << " -> " << addr_str(t.remote) << " id " << t.inside_port << " as "
      << addr_str(t.nat) << " id " << t.nat_port;
  } else if (has_ports(f.proto())) {
    s << addr_str(t.inside) << ":" << t.inside_port << " -> " << addr_str(t.remote) << ":" << t.remote_port
      << " as " << addr_str(t.nat) << ":" << t.nat_port;
  } else {
    s << addr_str(t.inside) << " -> " << addr_str(t.remote) << " as " << addr_str(t.nat);
  }
  // Masqueraded flows (no IPsec, the uplink's address) say so; the translations before IPsec
  // are the rule.
  if ((f.orig ? f.orig->value : f.reply->value).kind == IPSNAT_CT_KIND_MASQ) s << " masquerade";
  s << " " << state_name(classify(f)) << (f.complete() ? "" : " (half)");
  s << " age " << seconds_since(f.created_ns(), now_ns) << "s idle " << seconds_since(f.last_ns(), now_ns) << "s";
  s << " pkts " << (f.orig ? f.orig->value.packets : 0) << "/" << (f.reply ? f.reply->value.packets : 0);
  s << " bytes " << (f.orig ? f.orig->value.bytes : 0) << "/" << (f.reply ? f.reply->value.bytes : 0);
  return s.str();
}

}  // namespace ipsnat::ct
