#include "limits/watcher.h"

#include <algorithm>

namespace ipsnat::limits {

namespace {

uint64_t count_of(const LimitSample& s, Limit l) {
  switch (l) {
    case Limit::kCtFull: return s.ct_full_drops;
    case Limit::kNoPort: return s.no_port_drops;
    case Limit::kSpdTooLarge: return s.spd_incomplete_drops;
    case Limit::kSpdPolicyUnknown: return s.spd_unrepresentable_drops;
  }
  return 0;
}

std::string seconds(LimitWatcher::Clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string(std::max<int64_t>(1, (s + 500) / 1000)) + "s";
}

// cause: the SPD's (the sample's while it stands, the episode's after).
std::string warning(const LimitSample& s, Limit l, uint64_t n, const std::string& window, SpdCause cause) {
  std::string pk = std::to_string(n) + (n == 1 ? " packet" : " packets");
  switch (l) {
    case Limit::kCtFull:
      return "limit: conntrack table full: " + pk + " dropped in the last " + window + " (ct-max " +
             std::to_string(s.ct_max) + " entries = " + std::to_string(s.ct_max / 2) +
             " flows; raise --ct-max, or shorten the timeouts)";
    case Limit::kNoPort:
      return "limit: NAT port range exhausted: " + pk + " of new flows dropped in the last " + window +
             " (port_range " + std::to_string(s.port_min) + "-" + std::to_string(s.port_max) + ", " +
             std::to_string(s.port_max >= s.port_min ? s.port_max - s.port_min + 1 : 0) +
             " ports per NAT address and remote endpoint; widen port_range)";
    case Limit::kSpdTooLarge:
      if (cause == SpdCause::kUnrepresentable)
        return std::string("limit: SPD not representable in the maps: ") +
               (s.spd_fail_closed ? "the datapath fails closed, " : "mirrored exactly again, ") + pk +
               " of cleartext dropped in the last " + window +
               " (a policy cannot be mirrored exactly: `ipsnat policies` names it; remove or change it)";
      if (cause == SpdCause::kWriteFailed)
        return std::string("limit: SPD maps not written: ") +
               (s.spd_fail_closed ? "the datapath fails closed, " : "written again, ") + pk +
               " of cleartext dropped in the last " + window +
               " (the kernel refused a map write; the log of the SPD mirror says why; retried every second)";
      return std::string("limit: SPD larger than the maps: ") +
             (s.spd_fail_closed ? "the datapath fails closed, " : "fitted again, ") + pk +
             " of cleartext dropped in the last " + window + " (the SPD needs " + std::to_string(s.spd_dst) +
             " spd_dst, " + std::to_string(s.spd_src) + " spd_src, " + std::to_string(s.spd_lists) +
             " spd_lists entries per generation; each map holds " + std::to_string(s.spd_max) +
             " for both generations; raise --spd-max)";
    case Limit::kSpdPolicyUnknown:
      return std::string("limit: a policy is not representable in the maps: ") +
             (s.spd_policy_unknown ? "cleartext to its destinations fails closed, " : "gone, ") + pk +
             " dropped in the last " + window +
             " (drop-spd-unrepresentable; the rest of the SPD is mirrored exactly; `ipsnat policies` and the SPD "
             "mirror's log name the policy; remove or change it)";
  }
  return "";
}

std::string recovered(Limit l, const std::string& window, SpdCause cause) {
  switch (l) {
    case Limit::kCtFull: return "limit: conntrack table full: recovered, no drops in the last " + window;
    case Limit::kNoPort: return "limit: NAT port range exhausted: recovered, no drops in the last " + window;
    case Limit::kSpdTooLarge:
      return std::string(cause == SpdCause::kUnrepresentable ? "limit: SPD not representable in the maps"
                         : cause == SpdCause::kWriteFailed   ? "limit: SPD maps not written"
                                                             : "limit: SPD larger than the maps") +
             ": recovered, the maps hold the SPD again and nothing was dropped in the last " + window;
    case Limit::kSpdPolicyUnknown:
      return "limit: a policy is not representable in the maps: recovered, every policy is mirrored exactly and "
             "nothing was dropped in the last " + window;
  }
  return "";
}

}  // namespace

const char* limit_name(Limit l) {
  switch (l) {
    case Limit::kCtFull: return "ct-full";
    case Limit::kNoPort: return "no-port";
    case Limit::kSpdTooLarge: return "spd-too-large";
    case Limit::kSpdPolicyUnknown: return "spd-policy-unknown";
  }
  return "unknown";
}

std::vector<LimitLine> LimitWatcher::observe(const LimitSample& s, Clock::time_point now) {
  std::vector<LimitLine> out;
  for (int i = 0; i < kLimitCount; ++i) {
    Limit l = static_cast<Limit>(i);
    State& st = st_[i];
    uint64_t c = count_of(s, l);
    if (!primed_) {
      st.last = c;
      st.since = now;
    }
    st.pending += c >= st.last ? c - st.last : c;
    st.last = c;
    bool condition = (l == Limit::kSpdTooLarge && s.spd_fail_closed) ||
                     (l == Limit::kSpdPolicyUnknown && s.spd_policy_unknown);
    bool bad = st.pending > 0 || condition;
    if (!st.active) {
      if (bad) {
        st.cause = s.spd_cause;
        out.push_back({l, false, st.pending, warning(s, l, st.pending, seconds(now - st.since), st.cause)});
        st.active = true;
        st.pending = 0;
      }
      st.since = now;
      continue;
    }
    if (now - st.since < interval_) continue;
    if (bad) {
      if (s.spd_fail_closed) st.cause = s.spd_cause;
      out.push_back({l, false, st.pending, warning(s, l, st.pending, seconds(now - st.since), st.cause)});
      st.pending = 0;
    } else {
      out.push_back({l, true, 0, recovered(l, seconds(now - st.since), st.cause)});
      st.active = false;
    }
    st.since = now;
  }
  primed_ = true;
  return out;
}

}  // namespace ipsnat::limits
