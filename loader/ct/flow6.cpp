#include "ct/flow6.h"

#include <arpa/inet.h>

#include <cstring>
#include <map>
#include <sstream>

namespace ipsnat::ct {
namespace {

bool key_less(const ipsnat_ct6_key& a, const ipsnat_ct6_key& b) { return std::memcmp(&a, &b, sizeof(a)) < 0; }

std::optional<Entry> shadow(const std::optional<Entry6>& e) {
  if (!e) return std::nullopt;
  Entry s;
  s.key.proto = e->key.proto == IPPROTO_ICMPV6 ? uint8_t(IPPROTO_ICMP) : e->key.proto;
  s.key.dir = e->key.dir;
  s.value.kind = e->value.kind;
  s.value.seen = e->value.seen;
  s.value.created_ns = e->value.created_ns;
  s.value.last_ns = e->value.last_ns;
  s.value.packets = e->value.packets;
  s.value.bytes = e->value.bytes;
  return s;
}

std::string addr6(const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a, buf, sizeof(buf));
  return buf;
}

uint64_t seconds_since(uint64_t then_ns, uint64_t now_ns) { return now_ns > then_ns ? (now_ns - then_ns) / 1000000000ull : 0; }

}  // namespace

ipsnat_ct6_key Flow6::orig_key() const { return orig ? orig->key : ct6_partner_key(&reply->key, &reply->value); }

ipsnat_ct6_key Flow6::reply_key() const { return reply ? reply->key : ct6_partner_key(&orig->key, &orig->value); }

Flow Flow6::as_flow() const { return Flow{shadow(orig), shadow(reply)}; }

bool points_to(const Entry6& e, const ipsnat_ct6_key& partner) {
  ipsnat_ct6_key p = ct6_partner_key(&e.key, &e.value);
  return std::memcmp(&p, &partner, sizeof(p)) == 0;
}

std::vector<Flow6> pair_entries6(const std::vector<Entry6>& entries) {
  std::map<ipsnat_ct6_key, const Entry6*, decltype(&key_less)> replies(&key_less);
  for (const auto& e : entries)
    if (e.key.dir == IPSNAT_CT_REPLY) replies.emplace(e.key, &e);
  std::vector<Flow6> flows;
  for (const auto& e : entries) {
    if (e.key.dir != IPSNAT_CT_ORIG) continue;
    Flow6 f;
    f.orig = e;
    auto it = replies.find(ct6_partner_key(&e.key, &e.value));
    if (it != replies.end() && points_to(*it->second, e.key)) {
      f.reply = *it->second;
      replies.erase(it);
    }
    flows.push_back(f);
  }
  for (const auto& [key, e] : replies) flows.push_back(Flow6{std::nullopt, *e});
  return flows;
}

std::string flow6_line(const Flow6& f, uint64_t now_ns) {
  ipsnat_ct6_key o = f.orig_key(), r = f.reply_key();
  Flow v = f.as_flow();
  std::ostringstream s;
  if (o.proto == IPPROTO_ICMPV6)
    s << "icmp6 " << addr6(o.saddr) << " -> " << addr6(o.daddr) << " id " << ntohs(o.sport) << " as "
      << addr6(r.daddr) << " id " << ntohs(r.dport);
  else
    s << (o.proto == IPPROTO_TCP ? "tcp" : o.proto == IPPROTO_UDP ? "udp" : std::to_string(o.proto)) << " ["
      << addr6(o.saddr) << "]:" << ntohs(o.sport) << " -> [" << addr6(o.daddr) << "]:" << ntohs(o.dport) << " as ["
      << addr6(r.daddr) << "]:" << ntohs(r.dport);
  s << " nat66 " << state_name(classify(v)) << (v.complete() ? "" : " (half)");
  s << " age " << seconds_since(v.created_ns(), now_ns) << "s idle " << seconds_since(v.last_ns(), now_ns) << "s";
  s << " pkts " << (f.orig ? f.orig->value.packets : 0) << "/" << (f.reply ? f.reply->value.packets : 0);
  s << " bytes " << (f.orig ? f.orig->value.bytes : 0) << "/" << (f.reply ? f.reply->value.bytes : 0);
  return s.str();
}

nlohmann::json flow6_json(const Flow6& f, uint64_t now_ns) {
  ipsnat_ct6_key o = f.orig_key(), r = f.reply_key();
  Flow v = f.as_flow();
  bool icmp = o.proto == IPPROTO_ICMPV6;
  nlohmann::json j = {
      {"proto", icmp ? "icmp6" : o.proto == IPPROTO_TCP ? "tcp" : o.proto == IPPROTO_UDP ? "udp" : std::to_string(o.proto)},
      {"original", {{"src", addr6(o.saddr)}, {"dst", addr6(o.daddr)}}},
      {"translated", {{"src", addr6(r.daddr)}, {"dst", addr6(o.daddr)}}},
      {"kind", "nat66"},
      {"state", std::string(state_name(classify(v)))},
      {"complete", v.complete()},
      {"age_s", seconds_since(v.created_ns(), now_ns)},
      {"idle_s", seconds_since(v.last_ns(), now_ns)},
      {"packets", {{"original", f.orig ? f.orig->value.packets : 0}, {"reply", f.reply ? f.reply->value.packets : 0}}},
      {"bytes", {{"original", f.orig ? f.orig->value.bytes : 0}, {"reply", f.reply ? f.reply->value.bytes : 0}}},
  };
  if (icmp) {
    j["original"]["id"] = ntohs(o.sport);
    j["translated"]["id"] = ntohs(r.dport);
  } else {
    j["original"]["sport"] = ntohs(o.sport);
    j["original"]["dport"] = ntohs(o.dport);
    j["translated"]["sport"] = ntohs(r.dport);
    j["translated"]["dport"] = ntohs(o.dport);
  }
  return j;
}

}  // namespace ipsnat::ct
