#include "ct/flow.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace ipsnat::ct {
namespace {

bool key_less(const ipsnat_ct_key& a, const ipsnat_ct_key& b) { return std::memcmp(&a, &b, sizeof(a)) < 0; }

uint32_t or_default(uint32_t v, uint32_t def) { return v ? v : def; }

}  // namespace

uint64_t Flow::created_ns() const {
  if (orig && reply) return std::min(orig->value.created_ns, reply->value.created_ns);
  return orig ? orig->value.created_ns : reply->value.created_ns;
}

uint64_t Flow::last_ns() const {
  uint64_t o = orig ? orig->value.last_ns : 0, r = reply ? reply->value.last_ns : 0;
  return std::max(o, r);
}

ipsnat_ct_key Flow::orig_key() const { return orig ? orig->key : ct_partner_key(&reply->key, &reply->value); }

ipsnat_ct_key Flow::reply_key() const { return reply ? reply->key : ct_partner_key(&orig->key, &orig->value); }

std::vector<Flow> pair_entries(const std::vector<Entry>& entries) {
  std::map<ipsnat_ct_key, const Entry*, decltype(&key_less)> replies(&key_less);
  for (const auto& e : entries)
    if (e.key.dir == IPSNAT_CT_REPLY) replies.emplace(e.key, &e);
  std::vector<Flow> flows;
  for (const auto& e : entries) {
    if (e.key.dir != IPSNAT_CT_ORIG) continue;
    Flow f;
    f.orig = e;
    auto it = replies.find(ct_partner_key(&e.key, &e.value));
    // A REPLY entry belongs to this flow only if it points back at it.
    if (it != replies.end()) {
      ipsnat_ct_key back = ct_partner_key(&it->second->key, &it->second->value);
      if (std::memcmp(&back, &e.key, sizeof(back)) == 0) {
        f.reply = *it->second;
        replies.erase(it);
      }
    }
    flows.push_back(f);
  }
  for (const auto& [key, e] : replies) {
    Flow f;
    f.reply = *e;
    flows.push_back(f);
  }
  return flows;
}

std::string_view state_name(State s) {
  switch (s) {
    case State::kTcpSynSent: return "syn-sent";
    case State::kTcpEstablished: return "established";
    case State::kTcpClosing: return "closing";
    case State::kTcpReset: return "reset";
    case State::kUdpUnreplied: return "unreplied";
    case State::kUdpReplied: return "replied";
    case State::kIcmp: return "icmp";
    case State::kOther: return "other";
  }
  return "unknown";
}

State classify(const Flow& f) {
  uint32_t seen_o = f.orig ? f.orig->value.seen : 0, seen_r = f.reply ? f.reply->value.seen : 0;
  bool replied = f.reply && f.reply->value.packets > 0;
  switch (f.proto()) {
    case 6:
      if ((seen_o | seen_r) & IPSNAT_CT_SEEN_RST) return State::kTcpReset;
      if ((seen_o | seen_r) & IPSNAT_CT_SEEN_FIN) return State::kTcpClosing;
      if (replied && (seen_o & IPSNAT_CT_SEEN_ACK)) return State::kTcpEstablished;
      return State::kTcpSynSent;
    case 17:
      return replied ? State::kUdpReplied : State::kUdpUnreplied;
    case 1:
      return State::kIcmp;
    default:
      return State::kOther;
  }
}

Timeouts Timeouts::from_config(const ipsnat_config& c) {
  return Timeouts{
      or_default(c.tcp_syn_s, IPSNAT_DEF_TCP_SYN_S),       or_default(c.tcp_est_s, IPSNAT_DEF_TCP_EST_S),
      or_default(c.tcp_fin_s, IPSNAT_DEF_TCP_FIN_S),       or_default(c.tcp_rst_s, IPSNAT_DEF_TCP_RST_S),
      or_default(c.udp_s, IPSNAT_DEF_UDP_S),               or_default(c.udp_stream_s, IPSNAT_DEF_UDP_STREAM_S),
      or_default(c.icmp_s, IPSNAT_DEF_ICMP_S),             or_default(c.other_s, IPSNAT_DEF_OTHER_S),
  };
}

uint32_t Timeouts::for_state(State s) const {
  switch (s) {
    case State::kTcpSynSent: return tcp_syn_s;
    case State::kTcpEstablished: return tcp_est_s;
    case State::kTcpClosing: return tcp_fin_s;
    case State::kTcpReset: return tcp_rst_s;
    case State::kUdpUnreplied: return udp_s;
    case State::kUdpReplied: return udp_stream_s;
    case State::kIcmp: return icmp_s;
    case State::kOther: return other_s;
  }
  return other_s;
}

bool expired(const Flow& f, uint64_t now_ns, const Timeouts& t) {
  uint64_t last = f.last_ns();
  if (now_ns <= last) return false;
  return now_ns - last > uint64_t(t.for_state(classify(f))) * 1000000000ull;
}

}  // namespace ipsnat::ct
