// `ipsnat policies` and `ipsnat explain`: the kernel's SPD read directly over XFRM netlink (works
// without anything attached), with the NAT each out-policy implies.
#include <arpa/inet.h>
#include <netdb.h>

#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/output.h"
#include "config/config.h"
#include "daemon/components.h"
#include "spd/compiler.h"
#include "spd/explain.h"
#include "spd/npt6.h"
#include "sys/rtnl.h"
#include "util/error.h"
#include "xfrm/policy_source.h"

namespace ipsnat::cli {

using namespace ipsnat::spd;

namespace {

// IPv4 prefixes go to the NAT of IPv4 policies, IPv6 ones to NPTv6 (spd/npt6.h) only.
// The gateway's own addresses too: a NAT66 pool leaves them out (spd/npt6.h npt6_of).
// --config FILE: its [[nat]] rules decide the translation of the policies they apply to, as in
// `ipsnat run --config FILE` (docs/config.md).
NatConfig nat_config(const std::vector<std::string>& inside, const std::string& config_file) {
  NatConfig cfg;
  for (const auto& s : inside) cfg.inside.push_back(parse_prefix(s));
  cfg.local = sys::local_addresses();
  if (!config_file.empty()) cfg.overrides = daemon::nat_config_of(config::load_config_file(config_file), {}).overrides;
  return cfg;
}

constexpr const char* kConfigHelp =
    "Configuration file (TOML) whose [[nat]] rules decide the translation, as ipsnat run --config does";

// Why policy mode (the uplink, LWT xmit) does not apply an out-policy's NAT after all: the
// reroute's lookup would miss the policy. "" when it applies (or the policy is a tunnel device's).
std::string policy_mode_refusal(const Policy& p, const NatConfig& cfg) {
  bool translates = p.sel.family == AF_INET6 ? npt6_of(p, cfg.inside, cfg.local, cfg.overrides).ok : implied_nat(p, cfg).kind != SPD_NAT_NONE;
  if (!translates || p.if_id) return "";
  // A marked policy (a VTI's) is not the uplink's: policy mode leaves it alone (attach/plan.cpp).
  if (!p.meets_unmarked()) return "";
  // An IPv6 policy with a mark (a VTI's) has rules only that mark's device asks for (maps/npt6.h).
  if (p.sel.family == AF_INET6 && !npt6_policy_mode_rule(p)) return "";
  return reroute_misses(p).value_or("");
}

// What an IPv4 or IPv6 IPsec out-policy implies: {kind, to, inside, why}.
nlohmann::json implied_json(const Policy& p, const NatConfig& cfg) {
  if (p.sel.family == AF_INET6) {
    auto m = npt6_of(p, cfg.inside, cfg.local, cfg.overrides);
    // A NAT66 pool as IPv4's NAPT pool: "FIRST-LAST" (spd/npt6.h to_str).
    auto to = [](const Npt6Mapping& n) { return n.nat66 && n.pool > 1 ? n.to_str() : n.outside.str(); };
    nlohmann::json j = {{"kind", !m.ok ? "none" : m.nat66 ? "nat66" : "nptv6"}, {"to", m.ok ? to(m) : ""},
                        {"inside", m.inside_str()}, {"why", m.why}};
    // Beside NPTv6: the rest's NAT66; the LANs left out.
    if (!m.rest.empty()) j["rest"] = {{"kind", "nat66"}, {"to", to(m.rest_nat66())}, {"inside", m.rest_nat66().inside_str()}};
    if (!m.left_out.empty()) j["left_out"] = m.left_out;
    // A [[nat]] rule's translation (--config): where the rule is written, "FILE:LINE".
    if (!m.rule.empty()) j["rule"] = m.rule;
    // The flow mark the rules are kept for (a VTI asks with its okey); null: none (a partial mask).
    auto mark = npt6_key_mark(p);
    j["rule_mark"] = mark ? nlohmann::json(*mark) : nlohmann::json(nullptr);
    return j;
  }
  ImpliedNat n = implied_nat(p, cfg);
  return {{"kind", n.kind == SPD_NAT_NAPT ? "napt" : n.kind == SPD_NAT_PREFIX ? "prefix" : "none"},
          {"to", n.kind == SPD_NAT_NONE ? "" : n.nat_count > 1 ? n.nat_str() : n.nat.str()},
          {"inside", n.kind == SPD_NAT_NONE ? "" : n.inside_str()},
          {"why", n.why}};
}

std::string implied_text(const Policy& p, const NatConfig& cfg) {
  return p.sel.family == AF_INET6 ? npt6_of(p, cfg.inside, cfg.local, cfg.overrides).str() : implied_nat(p, cfg).str();
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
    j["nat"]["policy_mode_refusal"] = policy_mode_refusal(p, cfg);
  }
  return j;
}

}  // namespace

void register_policies(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("policies", "Show the kernel's XFRM policies and the NAT each out-policy implies");
  static std::vector<std::string> inside;
  cmd->add_option("--inside", inside,
                  "Inside prefix (repeatable) for the implied NAT: IPv4 for IPv4 policies, IPv6 for NPTv6");
  static std::string config_file;
  cmd->add_option("--config", config_file, kConfigHelp);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      NatConfig cfg = nat_config(inside, config_file);
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
        if (std::string why = policy_mode_refusal(*p, cfg); !why.empty())
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
  static std::string src, dst, proto = "udp", sport, dport;
  static std::vector<std::string> inside;
  static uint32_t mark = 0, if_id = 0;
  static bool binat = false;
  cmd->add_option("SRC", src, "Source address (IPv4 or IPv6)")->required();
  cmd->add_option("DST", dst, "Destination address, of the source's family")->required();
  cmd->add_option("PROTO", proto, "Protocol (name or number)");
  auto* sport_opt = cmd->add_option("SPORT", sport, "Source port (protocols with ports only)");
  auto* dport_opt = cmd->add_option("DPORT", dport, "Destination port (protocols with ports only)");
  cmd->add_option("--mark", mark, "Packet mark");
  cmd->add_option("--if-id", if_id, "xfrm interface if_id (route-based IPsec); 0: the uplink, policy mode");
  cmd->add_option("--inside", inside, "Inside prefix (repeatable) for the implied NAT: IPv4, or the one IPv6 one");
  cmd->add_flag("--binat", binat, "As on a device attached with --binat: IPv6 prefix policies translate (NPTv6)");
  static std::string config_file;
  cmd->add_option("--config", config_file, kConfigHelp);
  cmd->callback([&ctx, sport_opt, dport_opt] {
    ctx.action = [&ctx, sport_opt, dport_opt] {
      FlowArgs a{src, dst, parse_proto_arg(proto), std::nullopt, std::nullopt, mark, if_id};
      if (sport_opt->count()) a.sport = parse_port_arg(sport);
      if (dport_opt->count()) a.dport = parse_port_arg(dport);
      AnyFlow flow = parse_flow(a);
      NatConfig cfg = nat_config(inside, config_file);
      SpdModel m = xfrm::PolicySource::read_once();
      auto pols = m.ordered();
      Explanation e = explain(pols, cfg, cfg.inside, binat, flow);
      auto verdict = [](const Policy* p) {
        return !p ? "no out-policy: leaves in cleartext" : p->is_ipsec() ? "protected" : p->is_bypass() ? "bypass (cleartext)" : "blocked";
      };
      auto index = [](const Policy* p) { return p ? nlohmann::json(p->index) : nlohmann::json(); };
      nlohmann::json j = {{"flow", e.flow}, {"before", {{"policy", index(e.before)}, {"verdict", verdict(e.before)}}}};
      nlohmann::json skipped = nlohmann::json::array();
      for (const auto& s : e.not_chosen) skipped.push_back({{"policy", s.policy}, {"why", s.why}});
      j["not_chosen"] = skipped;
      if (!e.kind.empty()) {
        j["translation"] = {{"kind", e.kind}, {"to", e.to.str()}, {"ports", e.ports}, {"policy", e.nat_policy}, {"reqid", e.reqid}};
        j["after"] = {{"flow", e.after_flow}, {"policy", index(e.after)}, {"verdict", verdict(e.after)}};
      } else {
        j["no_translation"] = e.none_why;
      }
      CompiledSpd c = compile_spd(pols, cfg);
      if (c.refused) j["refused"] = *c.refused;
      if (!c.unknown.empty()) j["not_representable"] = c.unknown;
      if (ctx.global.json) {
        print_json(ctx.global, j);
        return 0;
      }
      std::printf("flow    %s\n", e.flow.c_str());
      std::printf("before  %s%s\n", verdict(e.before), e.before ? (": " + e.before->describe()).c_str() : "");
      for (const auto& s : e.not_chosen) std::printf("        not policy %u: %s\n", s.policy, s.why.c_str());
      if (!e.kind.empty()) {
        std::printf("nat     %s to %s%s (policy %u reqid %u)\n", e.kind.c_str(), e.to.str().c_str(),
                    e.ports ? " with a port of the NAPT range" : "", e.nat_policy, e.reqid);
        std::printf("after   %s%s\n", verdict(e.after), e.after ? (": " + e.after->describe()).c_str() : "");
      } else {
        std::printf("nat     none: %s\n", e.none_why.c_str());
      }
      if (c.refused) std::printf("warning: the SPD cannot be mirrored exactly: %s\n", c.refused->c_str());
      for (const auto& u : c.unknown) std::printf("warning: %s\n", u.c_str());
      return 0;
    };
  });
}

}  // namespace ipsnat::cli
