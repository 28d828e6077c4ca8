// `ipsnat policies` and `ipsnat explain`: the kernel's SPD read directly over XFRM netlink (works
// without anything attached), with the NAT each out-policy implies.
#include <arpa/inet.h>
#include <netdb.h>

#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/output.h"
#include "spd/compiler.h"
#include "spd/npt6.h"
#include "spd/reference.h"
#include "util/error.h"
#include "xfrm/policy_source.h"

namespace ipsnat::cli {

using namespace ipsnat::spd;

namespace {

// IPv4 prefixes go to the NAT of IPv4 policies, IPv6 ones to NPTv6 (spd/npt6.h) only.
NatConfig nat_config(const std::vector<std::string>& inside) {
  NatConfig cfg;
  for (const auto& s : inside) cfg.inside.push_back(parse_prefix(s));
  return cfg;
}

// Why policy mode (the uplink, LWT xmit) does not apply an out-policy's NAT after all: the
// reroute's lookup would miss the policy. "" when it applies (or the policy is a tunnel device's).
std::string policy_mode_refusal(const Policy& p, const ImpliedNat& n) {
  if (n.kind == SPD_NAT_NONE || p.if_id) return "";
  return reroute_misses(p).value_or("");
}

// What an IPv4 or IPv6 IPsec out-policy implies: {kind, to, inside, why}.
nlohmann::json implied_json(const Policy& p, const NatConfig& cfg) {
  if (p.sel.family == AF_INET6) {
    auto m = npt6_of(p, cfg.inside);
    return {{"kind", m.ok ? "nptv6" : "none"}, {"to", m.ok ? m.outside.str() : ""},
            {"inside", m.ok ? m.inside.str() : ""}, {"why", m.why}};
  }
  ImpliedNat n = implied_nat(p, cfg);
  return {{"kind", n.kind == SPD_NAT_NAPT ? "napt" : n.kind == SPD_NAT_PREFIX ? "prefix" : "none"},
          {"to", n.kind == SPD_NAT_NONE ? "" : n.nat_count > 1 ? n.nat_str() : n.nat.str()},
          {"inside", n.kind == SPD_NAT_NONE ? "" : n.inside_str()},
          {"why", n.why}};
}

std::string implied_text(const Policy& p, const NatConfig& cfg) {
  return p.sel.family == AF_INET6 ? npt6_of(p, cfg.inside).str() : implied_nat(p, cfg).str();
}

nlohmann::json policy_json(const Policy& p, const NatConfig& cfg) {
  nlohmann::json t = nlohmann::json::array();
  for (const auto& tm : p.tmpls)
    t.push_back({{"mode", tm.mode == 1 ? "tunnel" : tm.mode == 0 ? "transport" : std::to_string(tm.mode)},
                 {"proto", tm.proto},
                 {"reqid", tm.reqid},
                 {"optional", tm.optional},
                 {"src", tm.tunnel_src.str()},
                 {"dst", tm.tunnel_dst.str()}});
  nlohmann::json j = {{"index", p.index},
                      {"dir", to_string(p.dir)},
                      {"src", p.sel.src.str()},
                      {"dst", p.sel.dst.str()},
                      {"proto", p.sel.proto},
                      {"sport", p.sel.sport},
                      {"sport_mask", p.sel.sport_mask},
                      {"dport", p.sel.dport},
                      {"dport_mask", p.sel.dport_mask},
                      {"ifindex", p.sel.ifindex},
                      {"priority", p.priority},
                      {"action", to_string(p.action)},
                      {"type", p.type == PolicyType::Main ? "main" : "sub"},
                      {"mark", p.mark_v},
                      {"mark_mask", p.mark_m},
                      {"if_id", p.if_id},
                      {"templates", t}};
  if (p.dir == Dir::Out && p.is_ipsec()) {
    j["nat"] = implied_json(p, cfg);
    j["nat"]["policy_mode_refusal"] = p.sel.family == AF_INET ? policy_mode_refusal(p, implied_nat(p, cfg)) : "";
  }
  return j;
}

// Why a policy whose destination covers the flow was not chosen.
std::string mismatch(const Policy& p, const Flow4& f) {
  if (p.if_id != f.if_id) return "if_id " + std::to_string(p.if_id) + " != " + std::to_string(f.if_id);
  if ((f.mark & p.mark_m) != p.mark_v) return "mark does not match";
  if (!p.sel.src.contains(Address::v4(f.saddr))) return "source not in " + p.sel.src.str();
  if (p.sel.proto && p.sel.proto != f.proto) return "protocol " + std::to_string(p.sel.proto);
  if (((f.sport ^ p.sel.sport) & p.sel.sport_mask) != 0) return "source port";
  if (((f.dport ^ p.sel.dport) & p.sel.dport_mask) != 0) return "destination port";
  if (p.sel.ifindex) return "bound to a device";
  return "";
}

}  // namespace

void register_policies(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("policies", "Show the kernel's XFRM policies and the NAT each out-policy implies");
  static std::vector<std::string> inside;
  cmd->add_option("--inside", inside,
                  "Inside prefix (repeatable) for the implied NAT: IPv4 for IPv4 policies, IPv6 for NPTv6");
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      NatConfig cfg = nat_config(inside);
      SpdModel m = xfrm::PolicySource::read_once();
      auto pols = m.ordered();
      CompiledSpd c = compile_spd(pols, cfg);
      if (ctx.global.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const Policy* p : pols) arr.push_back(policy_json(*p, cfg));
        print_json(ctx.global, {{"policies", arr},
                                {"mirrorable", !c.refused},
                                {"refused", c.refused ? *c.refused : ""},
                                {"not_representable", c.unknown}});
        return 0;
      }
      for (const Policy* p : pols) {
        std::printf("%s\n", p->describe().c_str());
        if (p->dir != Dir::Out || !p->is_ipsec()) continue;
        std::printf("\tnat %s\n", implied_text(*p, cfg).c_str());
        if (p->sel.family != AF_INET) continue;
        if (std::string why = policy_mode_refusal(*p, implied_nat(*p, cfg)); !why.empty())
          std::printf("\tpolicy mode: not translated: %s\n", why.c_str());
      }
      if (c.refused) std::printf("not mirrorable: %s\n", c.refused->c_str());
      for (const auto& u : c.unknown) std::printf("not representable: %s\n", u.c_str());
      return 0;
    };
  });
}

void register_explain(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("explain", "Which out-policy a flow matches before and after translation, and why");
  static std::string src, dst, proto = "udp", sport = "0", dport = "0";
  static std::vector<std::string> inside;
  static uint32_t mark = 0, if_id = 0;
  cmd->add_option("SRC", src, "Source IPv4 address")->required();
  cmd->add_option("DST", dst, "Destination IPv4 address")->required();
  cmd->add_option("PROTO", proto, "Protocol (name or number)");
  cmd->add_option("SPORT", sport, "Source port");
  cmd->add_option("DPORT", dport, "Destination port");
  cmd->add_option("--mark", mark, "Packet mark");
  cmd->add_option("--if-id", if_id, "xfrm interface if_id (route-based IPsec)");
  cmd->add_option("--inside", inside, "Inside IPv4 prefix (repeatable) for the implied NAT");
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      Flow4 f;
      f.saddr = parse_v4_arg(src, "source");
      f.daddr = parse_v4_arg(dst, "destination");
      f.proto = parse_proto_arg(proto);
      if (proto_has_ports(f.proto)) {
        f.sport = parse_port_arg(sport);
        f.dport = parse_port_arg(dport);
      }
      f.mark = mark;
      f.if_id = if_id;
      NatConfig cfg = nat_config(inside);
      SpdModel m = xfrm::PolicySource::read_once();
      auto pols = m.ordered();
      const Policy* before = reference_lookup(pols, f);
      auto target = reference_nat_target(pols, cfg, f);
      nlohmann::json j = {{"flow", f.str()}};
      auto verdict = [](const Policy* p) {
        return !p ? "no out-policy: leaves in cleartext" : p->is_ipsec() ? "protected" : p->is_bypass() ? "bypass (cleartext)" : "blocked";
      };
      j["before"] = {{"policy", before ? nlohmann::json(before->index) : nlohmann::json()}, {"verdict", verdict(before)}};
      nlohmann::json skipped = nlohmann::json::array();
      for (const Policy* p : pols) {
        if (p->dir != Dir::Out || p->sel.family != AF_INET || !p->sel.dst.contains(Address::v4(f.daddr))) continue;
        std::string why = mismatch(*p, f);
        if (why.empty() && p != before) why = "matches, but policy " + std::to_string(before->index) + " comes first (priority " + std::to_string(before->priority) + ")";
        if (!why.empty()) skipped.push_back({{"policy", p->index}, {"why", why}});
      }
      j["not_chosen"] = skipped;
      const Policy* after = nullptr;
      Flow4 x = f;
      if (target) {
        x.saddr = nat_translate(*target, f.saddr);
        after = reference_lookup(pols, x);
        j["translation"] = {{"kind", target->kind == SPD_NAT_NAPT ? "napt" : "prefix"},
                            {"to", Address::v4(x.saddr).str()},
                            {"policy", target->policy_index},
                            {"reqid", target->reqid}};
        j["after"] = {{"flow", x.str()}, {"policy", after ? nlohmann::json(after->index) : nlohmann::json()}, {"verdict", verdict(after)}};
      }
      CompiledSpd c = compile_spd(pols, cfg);
      if (c.refused) j["refused"] = *c.refused;
      if (!c.unknown.empty()) j["not_representable"] = c.unknown;
      if (ctx.global.json) {
        print_json(ctx.global, j);
        return 0;
      }
      std::printf("flow    %s\n", f.str().c_str());
      std::printf("before  %s%s\n", verdict(before), before ? (": " + before->describe()).c_str() : "");
      for (const auto& s : skipped)
        std::printf("        not policy %u: %s\n", s["policy"].get<uint32_t>(), s["why"].get<std::string>().c_str());
      if (target) {
        std::printf("nat     %s to %s (policy %u reqid %u)\n", target->kind == SPD_NAT_NAPT ? "napt" : "prefix",
                    Address::v4(x.saddr).str().c_str(), target->policy_index, target->reqid);
        std::printf("after   %s%s\n", verdict(after), after ? (": " + after->describe()).c_str() : "");
      } else {
        std::printf("nat     none: no IPsec out-policy for this destination implies a source this flow may take\n");
      }
      if (c.refused) std::printf("warning: the SPD cannot be mirrored exactly: %s\n", c.refused->c_str());
      for (const auto& u : c.unknown) std::printf("warning: %s\n", u.c_str());
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
