#include "spd/explain.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "spd/reference.h"
#include "util/error.h"

namespace ipsnat::spd {

namespace {

template <class Flow>
void fill_before(Explanation& e, const std::vector<const Policy*>& pols, const Flow& f, uint16_t family) {
  e.flow = f.str();
  e.before = reference_lookup(pols, f);
  for (const Policy* p : pols) {
    if (p->dir != Dir::Out || p->type != PolicyType::Main || p->sel.family != family || p == e.before) continue;
    std::string why = reference_mismatch(*p, f);
    if (why.rfind("destination not in", 0) == 0 || why == "another address family") continue;
    if (why.empty())
      why = "matches, but policy " + std::to_string(e.before->index) + " comes first (priority " +
            std::to_string(e.before->priority) + ")";
    e.not_chosen.push_back({p->index, why});
  }
}

// Policy mode translates in the LWT route's xmit, after the kernel's first lookup (forwarding,
// or the gateway's own output): a flow an IPsec or block out-policy takes there never reaches it.
template <class Flow>
bool taken_before_translation(Explanation& e, const Flow& f) {
  if (f.if_id != 0 || !e.before || e.before->is_bypass()) return false;
  e.none_why = "policy mode: the kernel's first lookup (forwarding, or this host's output) puts the flow under policy " +
               std::to_string(e.before->index) + " before the LWT route takes it";
  return true;
}

template <class Flow>
void fill_after(Explanation& e, const std::vector<const Policy*>& pols, const Flow& x) {
  e.after_flow = x.str();
  e.after = reference_lookup(pols, x);
}

void explain4(Explanation& e, const std::vector<const Policy*>& pols, const NatConfig& cfg, const Flow4& f) {
  fill_before(e, pols, f, AF_INET);
  if (taken_before_translation(e, f)) return;
  auto target = reference_nat_target(pols, cfg, f);
  if (!target) {
    e.none_why = "no IPsec out-policy for this destination implies a source this flow may take";
    return;
  }
  Flow4 x = f;
  x.saddr = nat_translate(*target, f.saddr);
  e.kind = target->kind == SPD_NAT_NAPT ? "napt" : "prefix";
  e.ports = target->kind == SPD_NAT_NAPT;
  e.to = Address::v4(x.saddr);
  e.nat_policy = target->policy_index;
  e.reqid = target->reqid;
  fill_after(e, pols, x);
}

void explain6(Explanation& e, const std::vector<const Policy*>& pols, const std::vector<Prefix>& inside, bool binat,
              const Flow6& f, const std::vector<Address>& local, const std::vector<NatOverride>& rules) {
  fill_before(e, pols, f, AF_INET6);
  if (taken_before_translation(e, f)) return;
  Nat6Outcome n = reference_nat6(pols, inside, binat, f, local, rules);
  if (!n.to) {
    e.none_why = n.why;
    if (n.policy) e.none_why += " (policy " + std::to_string(n.policy->index) + ": " + n.mapping.str() + ")";
    return;
  }
  e.kind = n.mapping.nat66 ? "nat66" : "nptv6";
  e.ports = n.mapping.nat66;
  e.to = *n.to;
  e.nat_policy = n.policy->index;
  e.reqid = n.policy->tmpls.empty() ? 0 : n.policy->tmpls.front().reqid;
  Flow6 x = f;
  x.saddr = *n.to;
  fill_after(e, pols, x);
}

}  // namespace

AnyFlow parse_flow(const FlowArgs& a) {
  Address src = parse_address(a.src), dst = parse_address(a.dst);
  if (src.family != dst.family)
    throw UserError("source " + a.src + " and destination " + a.dst + " are of different address families",
                    "give two IPv4 or two IPv6 addresses");
  if (!proto_has_ports(a.proto) && (a.sport || a.dport))
    throw UserError("protocol " + proto_name(a.proto) + " has no ports", "leave SPORT and DPORT out");
  uint16_t sport = a.sport.value_or(0), dport = a.dport.value_or(0);
  if (src.family == AF_INET)
    return Flow4{src.v4_be(), dst.v4_be(), a.proto, sport, dport, a.mark, a.if_id};
  return Flow6{src, dst, a.proto, sport, dport, a.mark, a.if_id};
}

Explanation explain(const std::vector<const Policy*>& pols, const NatConfig& cfg, const std::vector<Prefix>& inside6,
                    bool binat, const AnyFlow& flow) {
  Explanation e;
  if (const auto* f4 = std::get_if<Flow4>(&flow))
    explain4(e, pols, cfg, *f4);
  else
    explain6(e, pols, inside6, binat, std::get<Flow6>(flow), cfg.local, cfg.overrides);
  return e;
}

}  // namespace ipsnat::spd
