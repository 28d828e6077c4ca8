#include "attach/plan.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "spd/compiler.h"
#include "spd/nat.h"
#include "spd/npt6.h"
#include "util/error.h"

namespace ipsnat::attach {

using spd::Policy;

const char* to_string(Mode m) { return m == Mode::Route ? "route" : "policy"; }

ModeRequest parse_mode_request(const std::string& text) {
  if (text == "auto") return ModeRequest::Auto;
  if (text == "route") return ModeRequest::Route;
  if (text == "policy") return ModeRequest::Policy;
  throw UserError("invalid mode '" + text + "'", "expected auto, route or policy");
}

namespace {

// ip_vti ("vti") and ip6_vti ("vti6"): both look their policies up with the okey as the mark.
bool is_vti(const LinkFacts& dev) { return dev.kind == "vti" || dev.kind == "vti6"; }

bool is_tunnel(const LinkFacts& dev) { return dev.kind == "xfrm" || is_vti(dev); }

}  // namespace

Mode choose_mode(const LinkFacts& dev, ModeRequest req) {
  bool tunnel = is_tunnel(dev);
  switch (req) {
    case ModeRequest::Route: return Mode::Route;
    case ModeRequest::Policy:
      if (tunnel)
        throw UserError("\"" + dev.name + "\" is a " + dev.kind + " tunnel device: policy mode needs the uplink",
                        "use --mode route, or attach the uplink device");
      return Mode::Policy;
    case ModeRequest::Auto: break;
  }
  return tunnel ? Mode::Route : Mode::Policy;
}

ipsnat_dev_cfg device_config(const LinkFacts& dev, Mode mode, const std::optional<Masquerade>& masq, bool binat) {
  ipsnat_dev_cfg c{};
  c.mode = mode == Mode::Route ? IPSNAT_DEV_ROUTE : IPSNAT_DEV_POLICY;
  c.if_id = dev.if_id;
  // A VTI looks its policies up with its okey as the flow mark (ip_vti.c, ip6_vti.c), not the skb's.
  c.mark = mode == Mode::Route && is_vti(dev) ? dev.okey : 0u;
  if (masq && masq->addr.family == AF_INET) {
    c.masq_addr = masq->addr.v4_be();
    c.masq_port_min = masq->port_min;
    c.masq_port_max = masq->port_max;
  }
  if (binat) c.flags |= IPSNAT_DEV_BINAT;
  return c;
}

std::string BinatMap::str() const {
  return "binat " + nat.str() + " = " + inside.str() + " from " + remote.str() + " (policy " +
         std::to_string(policy_index) + ")";
}

std::optional<std::pair<uint16_t, uint16_t>> masquerade_ports(uint32_t local_min, uint32_t local_max) {
  if (local_max < 65535 && 65535 - local_max >= kMasqueradeMinPorts)
    return std::pair<uint16_t, uint16_t>(static_cast<uint16_t>(local_max + 1), 65535);
  if (local_min > 1024 && local_min - 1024 >= kMasqueradeMinPorts)
    return std::pair<uint16_t, uint16_t>(1024, static_cast<uint16_t>(local_min - 1));
  return std::nullopt;
}

namespace {

Prefix network_of(const Prefix& p) {
  if (p.addr.family == AF_INET) return {Address::v4(htonl(ntohl(p.addr.v4_be()) & v4_mask(p.len))), p.len};
  Prefix n = p;
  for (unsigned i = 0; i < 16; ++i)
    if (8 * i >= p.len)
      n.addr.bytes[i] = 0;
    else if (8 * (i + 1) > p.len)
      n.addr.bytes[i] &= static_cast<uint8_t>(0xff << (8 * (i + 1) - p.len));
  return n;
}

// An address whose connected prefix can be a LAN: IPv4 shorter than /32, IPv6 global unicast
// shorter than /128 (the address dump has no link-local ones).
bool names_a_lan(const Prefix& p) {
  if (p.addr.family == AF_INET) return p.len < 32;
  return p.addr.family == AF_INET6 && p.len < 128;
}

// Why the device of address a can never be a LAN, "" when it can.
std::string not_a_lan(const HostFacts& f, const HostAddress& a, Mode mode) {
  if (a.loopback) return "loopback";
  if (a.ifindex == f.dev.ifindex) return mode == Mode::Route ? "the tunnel device" : "the attached device (the uplink)";
  bool tunnel = is_tunnel(f.dev);
  if (tunnel && f.dev.link && a.ifindex == f.dev.link) return "the uplink: the underlay of " + f.dev.name;
  // The SAs' outer addresses: a template's tunnel endpoint that is an address of this device.
  for (const auto& p : f.policies)
    for (const auto& t : p.tmpls)
      for (const auto& end : {t.tunnel_src, t.tunnel_dst})
        for (const auto& own : f.addresses)
          if (own.ifindex == a.ifindex && own.prefix.addr == end)
            return "the uplink: carries the SAs' outer address " + end.str();
  if (std::find(f.default_oifs.begin(), f.default_oifs.end(), a.ifindex) != f.default_oifs.end())
    return "carries the default route";
  return "";
}

}  // namespace

std::vector<InsideChoice> choose_inside(const HostFacts& facts, const Settings& settings) {
  std::vector<InsideChoice> out;
  if (!settings.inside.empty()) {
    for (const auto& p : settings.inside) out.push_back({p, "", true, "configured"});
    return out;
  }
  Mode mode = choose_mode(facts.dev, settings.mode);
  for (const auto& a : facts.addresses) {
    if (!names_a_lan(a.prefix)) continue;  // a host address names no LAN
    InsideChoice c{network_of(a.prefix), a.dev, true, not_a_lan(facts, a, mode)};
    if (!c.why.empty()) c.inside = false;
    if (c.prefix.len == 0) continue;
    auto same = std::find_if(out.begin(), out.end(), [&](const InsideChoice& o) { return o.prefix == c.prefix; });
    if (same == out.end()) {
      out.push_back(c);
    } else if (same->inside && !c.inside) {
      *same = c;  // a prefix that is also on a device that is no LAN is not inside
    }
  }
  return out;
}

std::vector<Prefix> inside_prefixes(const HostFacts& facts, const Settings& settings) {
  std::vector<Prefix> out;
  for (const auto& c : choose_inside(facts, settings))
    if (c.inside) out.push_back(c.prefix);
  return out;
}

namespace {

const char* hook_name(Hook h) { return h == Hook::TcIngress ? "ingress" : h == Hook::TcEgress ? "egress" : "xdp"; }

bool is_local(const HostFacts& f, const Address& a) {
  return std::find(f.local_addrs.begin(), f.local_addrs.end(), a) != f.local_addrs.end();
}

// The out-policies whose traffic leaves through the device: route mode by the device's if_id
// (xfrm) or mark (VTI); policy mode those bound to no interface that an unmarked flow meets (a
// VTI's marked policies are the VTI's alone: an LWT route on the uplink for one would take the
// VTI's destination out the uplink, and its IPv6 rules are kept for the VTI's okey, maps/npt6.h).
bool concerns_device(const Policy& p, const LinkFacts& dev, Mode mode) {
  if (p.dir != spd::Dir::Out || !p.is_ipsec() || (p.sel.family != AF_INET && p.sel.family != AF_INET6) ||
      p.type != spd::PolicyType::Main)
    return false;
  if (mode == Mode::Policy) return p.if_id == 0 && p.meets_unmarked();
  if (dev.kind == "xfrm") return p.if_id == dev.if_id;
  if (is_vti(dev)) return p.mark_m != 0 && (dev.okey & p.mark_m) == p.mark_v;
  return p.if_id == 0;
}

// The IPv4 NAT's: IPv4 inside prefixes only (IPv6 ones are NPTv6's, spd/npt6.h), and the
// gateway's IPv4 addresses, which a NAPT pool leaves out (spd/nat.h implied_nats), as the mirror
// does (attach/session.cpp, the daemon).
spd::NatConfig nat_config(const HostFacts& f, const Settings& s) {
  spd::NatConfig cfg;
  for (const auto& p : inside_prefixes(f, s))
    if (p.addr.family == AF_INET) cfg.inside.push_back(p);
  cfg.local = f.local_addrs;
  return cfg;
}

// The one line attach prints for a policy policy mode leaves alone: the kernel's lookup after the
// LWT reroute carries no ports (docs/attach.md, "Port-restricted policies").
std::string port_refusal(const Policy& p, const std::string& misses) {
  return "policy " + std::to_string(p.index) + " (" + p.sel.src.str() + " -> " + p.sel.dst.str() + " " +
         spd::proto_name(p.sel.proto) + spd::ports_text(p.sel) + ") is not translated in policy mode: it " + misses +
         "; its destination is left alone (route mode, an xfrm interface, translates it)";
}

// The kernel's policies, for the rules that depend on the others (spd/npt6.h npt6_mapped).
std::vector<const Policy*> spd_of(const HostFacts& f) {
  std::vector<const Policy*> out;
  for (const auto& p : f.policies) out.push_back(&p);
  return out;
}

// The gateway's IPv6 addresses, which a NAT66 pool leaves out (spd/npt6.h npt6_of), as the
// mirror does (attach/session.cpp, the daemon).
std::vector<Address> local6_of(const HostFacts& f) {
  std::vector<Address> out;
  for (const auto& h : f.addresses)
    if (h.prefix.addr.family == AF_INET6) out.push_back(h.prefix.addr);
  return out;
}

// What an IPv6 out-policy implies on the device (spd/npt6.h).
spd::Npt6Mapping ipv6_mapping(const Policy& p, const std::vector<Prefix>& inside, const Settings& s,
                              const std::vector<const Policy*>& spd, const std::vector<Address>& local) {
  return spd::npt6_applied(p, inside, s.binat, spd, local, s.nat_rules);
}

// The LANs an IPv6 mapping translates: NPTv6's or NAT66's, and beside NPTv6 the rest's NAT66.
std::vector<Prefix> lans_of(const spd::Npt6Mapping& m) {
  std::vector<Prefix> lans = m.inside;
  lans.insert(lans.end(), m.rest.begin(), m.rest.end());
  return lans;
}

// An IPv6 address of the host (strongSwan's virtual IPv6): local_addrs holds IPv4 only.
bool is_local6(const HostFacts& f, const Address& a) {
  return std::any_of(f.addresses.begin(), f.addresses.end(), [&](const HostAddress& h) { return h.prefix.addr == a; });
}

std::vector<const Policy*> relevant(const HostFacts& f, Mode mode) {
  std::vector<const Policy*> out;
  for (const auto& p : f.policies)
    if (concerns_device(p, f.dev, mode)) out.push_back(&p);
  std::stable_sort(out.begin(), out.end(),
                   [](const Policy* a, const Policy* b) { return a->priority < b->priority; });
  return out;
}

// The templates of the SA that brings the out-policy's replies in: the kernel's own in-policy
// for the reversed selector when there is one (it names the SA exactly as the IKE daemon
// installed it), else the out-policy's templates with the tunnel endpoints swapped.
std::vector<spd::Template> inbound_templates(const HostFacts& f, const Policy& out) {
  for (const auto& p : f.policies)
    if (p.dir == spd::Dir::In && p.is_ipsec() && p.sel.src == out.sel.dst && p.sel.dst == out.sel.src &&
        p.if_id == out.if_id)
      return p.tmpls;
  auto tmpls = out.tmpls;
  for (auto& t : tmpls) std::swap(t.tunnel_src, t.tunnel_dst);
  return tmpls;
}

bool same_selector_exists(const HostFacts& f, const Policy& c) {
  for (const auto& p : f.policies)
    if (p.same_key(c)) return true;
  return false;
}

// The masquerade of a policy-mode uplink: the configured address or the device's first (primary)
// IPv4 address, and ports outside the host's ephemeral range.
Masquerade plan_masquerade(const HostFacts& f, const Settings& s, Mode mode, std::vector<std::string>& warnings) {
  if (mode != Mode::Policy)
    throw UserError("--masquerade needs policy mode: \"" + f.dev.name + "\" is a " + f.dev.kind + " tunnel device",
                    "attach the uplink with --masquerade");
  auto ports = masquerade_ports(f.local_port_min, f.local_port_max);
  if (!ports)
    throw UserError("--masquerade: fewer than " + std::to_string(kMasqueradeMinPorts) +
                        " ports lie outside net.ipv4.ip_local_port_range (" + std::to_string(f.local_port_min) + " " +
                        std::to_string(f.local_port_max) + "), the gateway's own ephemeral ports",
                    "narrow net.ipv4.ip_local_port_range");
  Masquerade m;
  m.port_min = ports->first;
  m.port_max = ports->second;
  if (s.masquerade_addr) {
    m.addr = *s.masquerade_addr;
    m.source = "configured";
    return m;
  }
  m.source = "the address of " + f.dev.name;
  for (const auto& a : f.addresses)
    if (a.ifindex == f.dev.ifindex && !a.loopback && a.prefix.addr.family == AF_INET) {
      m.addr = a.prefix.addr;
      return m;
    }
  if (!s.allow_empty)
    throw UserError("--masquerade: \"" + f.dev.name + "\" has no IPv4 address", "name one: --masquerade ADDRESS");
  warnings.push_back("\"" + f.dev.name + "\" has no IPv4 address: no masquerade until it has one");
  return m;
}

}  // namespace

std::vector<Prefix> covered_destinations(const HostFacts& facts, const Settings& settings) {
  std::vector<Prefix> out;
  if (choose_mode(facts.dev, settings.mode) != Mode::Policy) return out;
  auto cfg = nat_config(facts, settings);
  auto inside = inside_prefixes(facts, settings);
  for (const Policy* p : relevant(facts, Mode::Policy)) {
    bool routed = p->sel.family == AF_INET6
                      ? ipv6_mapping(*p, inside, settings, spd_of(facts), local6_of(facts)).ok
                      : spd::implied_nat(*p, cfg).kind != SPD_NAT_NONE && !spd::reroute_misses(*p);
    if (routed && std::find(out.begin(), out.end(), p->sel.dst) == out.end()) out.push_back(p->sel.dst);
  }
  return out;
}

AttachPlan make_plan(const HostFacts& facts, const Settings& settings) {
  AttachPlan plan;
  plan.inside = choose_inside(facts, settings);
  plan.dev = facts.dev.name;
  plan.ifindex = facts.dev.ifindex;
  plan.kind = facts.dev.kind;
  plan.mode = choose_mode(facts.dev, settings.mode);
  auto cfg = nat_config(facts, settings);
  auto policies = relevant(facts, plan.mode);

  std::vector<std::pair<const Policy*, spd::ImpliedNat>> nat;
  std::string refused;  // the first policy policy mode cannot translate, for an empty plan's error
  std::vector<std::pair<const Policy*, spd::Npt6Mapping>> npt6;
  auto inside_all = inside_prefixes(facts, settings);
  auto spd = spd_of(facts);
  for (const Policy* p : policies) {
    if (p->sel.family == AF_INET6) {
      auto m = ipv6_mapping(*p, inside_all, settings, spd, local6_of(facts));
      bool mappable = spd::npt6_of(*p, inside_all, {}, settings.nat_rules).ok;
      auto misses = plan.mode == Mode::Policy && mappable ? spd::reroute_misses(*p) : std::nullopt;
      if (misses) {
        plan.warnings.push_back(port_refusal(*p, *misses));
        if (refused.empty()) refused = plan.warnings.back();
      } else if (!m.ok && mappable && spd::npt6_refusal(*p, inside_all, spd, settings.nat_rules)) {
        std::string where = plan.mode == Mode::Policy ? "in policy mode"
                            : is_vti(facts.dev)
                                ? "through \"" + plan.dev + "\" (okey " + std::to_string(facts.dev.okey) + ")"
                                : "through \"" + plan.dev + "\" (if_id " + std::to_string(p->if_id) + ")";
        plan.warnings.push_back("policy " + std::to_string(p->index) + " (" + p->sel.src.str() + " -> " +
                                p->sel.dst.str() + ") is not translated " + where + ": " +
                                (m.why.rfind("restricts", 0) == 0 ? "it " : "") + m.why);
        if (refused.empty()) refused = plan.warnings.back();
      }
      // A LAN the policy leaves out is dropped by the leak guard (policy mode) or matches no
      // policy: said once here, not only inside the translate line.
      if (m.ok && !m.left_out.empty())
        plan.warnings.push_back("policy " + std::to_string(p->index) + " (" + p->sel.src.str() + " -> " +
                                p->sel.dst.str() + "): " + m.left_out);
      plan.translations.push_back({p->index, p->sel.src.str() + " -> " + p->sel.dst.str(), m.str(), 0u});
      if (m.ok) npt6.emplace_back(p, m);
      continue;
    }
    auto n = spd::implied_nat(*p, cfg);
    // The datapath never translates by a policy it cannot evaluate (SPD_V_UNKNOWN, docs/spd.md):
    // the line says so instead of promising the NAT.
    std::string nat_text = n.str();
    if (auto why = spd::unknown_condition(*p))
      nat_text += " (not applied: " + *why + "; cleartext it could apply to fails closed)";
    // Translated in LWT xmit, its packets would miss it after the reroute (or meet another
    // policy, another SA): nothing is planned for it, and the datapath's reroute check
    // (spd_nat_target) keeps a destination it shares with another policy untranslated for it.
    auto misses = n.kind != SPD_NAT_NONE && plan.mode == Mode::Policy ? spd::reroute_misses(*p) : std::nullopt;
    std::string sel = p->sel.src.str() + " -> " + p->sel.dst.str();
    if (misses) {
      nat_text = "none (not translated in policy mode: " + *misses + ")";
      plan.warnings.push_back(port_refusal(*p, *misses));
      if (refused.empty()) refused = plan.warnings.back();
    }
    plan.translations.push_back({p->index, sel, nat_text, n.kind == SPD_NAT_NAPT && n.nat_count == 1 && !misses ? n.nat.addr.v4_be() : 0u});
    if (n.kind != SPD_NAT_NONE && !misses) nat.emplace_back(p, n);
  }
  if (settings.masquerade) plan.masquerade = plan_masquerade(facts, settings, plan.mode, plan.warnings);
  plan.binat = settings.binat;
  if (settings.binat) {
    for (const auto& [p, n] : nat)
      if (n.kind == SPD_NAT_PREFIX) plan.binat_maps.push_back({p->index, n.nat, n.inside, p->sel.dst});
    for (const auto& [p, m] : npt6)
      if (!m.nat66) plan.binat_maps.push_back({p->index, m.outside, m.inside.front(), p->sel.dst});
    if (plan.binat_maps.empty())
      plan.warnings.push_back("--binat: no out-policy of \"" + plan.dev +
                              "\" implies a 1:1 map: nothing is reachable until one does");
  }
  if (nat.empty() && npt6.empty() && !settings.allow_empty && !settings.masquerade) {
    std::string what = policies.empty()    ? "no IPsec out-policy concerns \"" + plan.dev + "\""
                       : !refused.empty() ? refused
                                          : "no IPsec out-policy of \"" + plan.dev + "\" implies a translation";
    if (plan.mode == Mode::Route && facts.dev.kind == "xfrm")
      what += " (if_id " + std::to_string(facts.dev.if_id) + ")";
    // Why not, for the first of them (the others are alike or in `ipsnat policies`).
    if (refused.empty() && !plan.translations.empty())
      what += ": policy " + std::to_string(plan.translations.front().policy_index) + " " +
              plan.translations.front().policy + ": " + plan.translations.front().nat;
    throw UserError(what, "see: ip xfrm policy; --allow-empty attaches anyway");
  }
  if (cfg.inside.empty() && plan.mode == Mode::Policy && (!nat.empty() || settings.masquerade))
    throw UserError("no inside prefix: no device with an address is a LAN (the uplink, the default route's "
                    "devices and loopback never are)",
                    "name the LAN with --inside PREFIX");

  std::set<std::string> seen;
  auto add = [&](Step s) {
    if (seen.insert(step_key(s)).second) plan.steps.push_back(std::move(s));
  };
  // The kernel checks decrypted packets against in/fwd policies after the reverse translation,
  // so the translated flow (remote -> inside host) needs policies of its own, with the same
  // templates, mark and if_id as the SA's.
  auto add_companion = [&](const Policy& p, const Prefix& dst, spd::Dir dir, const std::string& why) {
    Policy c;
    c.sel = p.sel;
    c.sel.src = p.sel.dst;
    c.sel.dst = dst;
    std::swap(c.sel.sport, c.sel.dport);
    std::swap(c.sel.sport_mask, c.sel.dport_mask);
    c.sel.ifindex = 0;
    c.dir = dir;
    c.priority = p.priority;
    c.mark_v = p.mark_v;
    c.mark_m = p.mark_m;
    c.if_id = p.if_id;
    c.tmpls = inbound_templates(facts, p);
    if (same_selector_exists(facts, c)) {
      plan.warnings.push_back(std::string("a ") + spd::to_string(dir) + " policy " + c.sel.src.str() + " -> " +
                              c.sel.dst.str() + " exists already: not adding a companion");
      return;
    }
    add(XfrmPolicyStep{c, why});
  };
  auto add_companions = [&](const Policy& p, const spd::ImpliedNat& n) {
    // The datapath translates only sources in the target's inside prefix; any-source NAPT
    // (no inside prefix known) covers every configured one.
    std::vector<Prefix> insides = n.inside.len > 0 ? std::vector<Prefix>{n.inside} : cfg.inside;
    for (const auto& inside : insides)
      for (auto dir : {spd::Dir::Fwd, spd::Dir::In})
        add_companion(p, inside, dir,
                      std::string("decrypted replies to ") + inside.str() + " pass the " + spd::to_string(dir) + " check");
  };
  // A LAN flow that netfilter's SNAT/MASQUERADE rewrote to the uplink's address before the LWT
  // hook gets its reply translated back to that address; netfilter then restores the LAN host,
  // but the kernel's fwd check judges the flow as it arrived (nf_nat_decode_session: REMOTE ->
  // the uplink's address), so that needs a fwd companion too. No `in` one: nothing new is
  // delivered to the gateway itself.
  // IPv6 alike for NAT66 (bpf/lib/nat66.h takes such a source as IPv4's NAPT does), for the
  // uplink's addresses outside the NAT66 address or pool (`nat`), never a link-local one.
  auto add_masquerade_companions = [&](const Policy& p, uint16_t family, const std::vector<Prefix>& nat) {
    for (const auto& a : facts.addresses) {
      if (a.ifindex != facts.dev.ifindex || a.loopback || a.prefix.addr.family != family ||
          is_link_scoped6(a.prefix.addr) ||
          std::any_of(nat.begin(), nat.end(), [&](const Prefix& b) { return b.contains(a.prefix.addr); }))
        continue;
      if (std::any_of(cfg.inside.begin(), cfg.inside.end(), [&](const Prefix& in) { return in.contains(a.prefix.addr); }))
        continue;  // the LAN's own companions cover it
      add_companion(p, host_prefix(a.prefix.addr), spd::Dir::Fwd,
                    "decrypted replies to LAN flows masqueraded to " + a.prefix.addr.str() + " pass the fwd check");
    }
  };

  if (settings.xdp_prefilter && plan.mode == Mode::Route)
    throw UserError("--xdp-prefilter needs policy mode: it filters the uplink, and cleartext there meets only "
                    "policies without an if_id",
                    "attach the uplink (policy mode) with --xdp-prefilter");
  if (plan.mode == Mode::Route) {
    // xfrm interface: the fwd/in check runs after TC ingress of the device, on the translated
    // flow, with the device's if_id (docs/datapath.md, "Kernel path"; without a companion: XfrmInNoPols). A VTI
    // checks its in-policy before TC ingress and clears the secpath, so it needs none.
    if (facts.dev.kind == "xfrm") {
      for (const auto& [p, n] : nat) add_companions(*p, n);
      for (const auto& [p, m] : npt6)
        for (const auto& in : lans_of(m))
          for (auto dir : {spd::Dir::Fwd, spd::Dir::In})
            add_companion(*p, in, dir, "decrypted packets to " + in.str() + " pass the " + spd::to_string(dir) + " check");
    }
    add(TcStep{Hook::TcIngress, "tc_rev_ingress", ""});
    add(TcStep{Hook::TcEgress, "tc_snat_egress", ""});
    // The device's "fragmentation needed" for a translated packet goes to the NAT address; when
    // that is a local address (strongSwan's virtual IP) it is delivered over lo, where this
    // program sends it back to the inside host (docs/datapath.md, "ICMP"). Planned also while the
    // address is not local: an IKE daemon may install it at any time.
    add(TcStep{Hook::TcEgress, "tc_lo_egress", kLoopback});
    return plan;
  }

  // Policy mode. The guard first, so no window lets cleartext out; the rule last, so it only
  // ever points at a complete table.
  add(TcStep{Hook::TcEgress, "tc_guard_egress", ""});
  add(TcStep{Hook::TcIngress, "tc_rev_ingress", ""});
  if (settings.xdp_prefilter) add(TcStep{Hook::Xdp, "xdp_spoof_drop", ""});
  // Packets up to the route's MTU must fit the SA's path once encrypted: the device's MTU, or
  // the path to the SA's outer peer where that is smaller (a route with an mtu, a smaller
  // device). The kernel's own "fragmentation needed" for a translated packet would go to the NAT
  // address and be lost; the route's is raised before the translation, to the LAN host.
  auto route_mtu_for = [&](const spd::Policy& p) {
    if (settings.route_mtu) return settings.route_mtu;
    uint32_t path = facts.dev.mtu;
    for (const auto& t : p.tmpls)
      for (const auto& peer : facts.sa_peers)
        if (t.mode == XFRM_MODE_TUNNEL && peer.dst == host_prefix(t.tunnel_dst) && peer.mtu && peer.mtu < path)
          path = peer.mtu;
    return path > kEspOverhead + 576 ? path - kEspOverhead : 576u;
  };
  // A family's routes are placed together (routes_table): in the main table without a rule, or
  // in ipsnat's table with the rule last, so it only ever points at a complete table. No routes,
  // no rule: a rule alone would only make every route lookup walk the rules (docs/attach.md).
  auto place = [&](std::vector<RouteStep> routes, uint16_t family) {
    uint32_t table = routes_table(facts, settings, routes, family);
    for (auto& r : routes) {
      r.table = table;
      if (table == RT_TABLE_MAIN) r.metric = kMainTableMetric;
      add(r);
    }
    if (!routes.empty() && table != RT_TABLE_MAIN) add(RuleStep{settings.rule_priority, settings.table, family});
  };
  std::vector<RouteStep> routes4;
  for (const auto& [p, n] : nat) {
    add_companions(*p, n);
    if (n.kind == SPD_NAT_NAPT) add_masquerade_companions(*p, AF_INET, {host_prefix(n.nat.addr)});
    bool nat_local = n.kind == SPD_NAT_NAPT && n.nat_count == 1 && is_local(facts, n.nat.addr);
    if (nat_local) continue;
    for (const Prefix& block : n.nat_blocks()) {
      RouteStep bh{};  // its table is place()'s
      bh.dst = block;
      bh.blackhole = true;
      routes4.push_back(bh);
    }
  }
  // The LWT route for a policy's destination, through the main table's nexthop for it.
  auto lwt_route = [&](const Policy& p) {
    RouteStep r{};  // its table is place()'s
    r.dst = p.sel.dst;
    r.mtu = route_mtu_for(p);
    r.lwt_prog = "lwt_snat_xmit";
    r.oif = facts.dev.ifindex;
    r.oif_name = facts.dev.name;
    for (const auto& nh : facts.nexthops)
      if (nh.dst == r.dst) {
        if (nh.oif && nh.oif != r.oif) {
          r.oif = nh.oif;
          r.oif_name = nh.oif_name;
        }
        r.gateway = nh.gateway;
      }
    if (r.oif != facts.dev.ifindex)
      plan.warnings.push_back("the main table routes " + r.dst.str() + " through another device than \"" +
                              plan.dev + "\"");
    return r;
  };
  for (const auto& [p, n] : nat) {
    RouteStep r = lwt_route(*p);
    // The gateway's own connections pick the address the policy wants (its one address, or one
    // its pool leaves out), as strongSwan's table 220 would have made them do.
    if (n.kind == SPD_NAT_NAPT && is_local(facts, n.nat.addr)) r.prefsrc = n.nat.addr;
    if (n.kind == SPD_NAT_NAPT && n.nat_count > 1 && !r.prefsrc)
      for (const Address& a : facts.local_addrs)
        if (p->sel.src.contains(a) && !r.prefsrc) r.prefsrc = a;
    routes4.push_back(r);
  }
  place(routes4, AF_INET);
  // IPv6 alike (docs/attach.md, "IPv6 in policy mode"): companions for each IPv6 inside prefix, the NAT
  // address (NAT66) or prefix (NPTv6) blackholed unless local, an LWT route per destination, and
  // the IPv6 rule last. An IPv6 packet is at least 1280 bytes on any link (RFC 8200).
  std::vector<RouteStep> routes6;
  for (const auto& [p, m] : npt6) {
    for (const auto& in : lans_of(m))
      for (auto dir : {spd::Dir::Fwd, spd::Dir::In})
        add_companion(*p, in, dir, "decrypted replies to " + in.str() + " pass the " + spd::to_string(dir) + " check");
    // NAT66 over a pool: one route per aligned block of it, as IPv4's pools.
    std::vector<Prefix> blackholed = m.to_blocks();
    if (!m.rest.empty())
      for (const Prefix& b : m.rest_nat66().to_blocks()) blackholed.push_back(b);
    if (m.nat66 || !m.rest.empty()) add_masquerade_companions(*p, AF_INET6, blackholed);
    for (const Prefix& to : blackholed) {
      if (to.len == 128 && is_local6(facts, to.addr)) continue;
      RouteStep bh{};  // its table is place()'s
      bh.dst = to;
      bh.blackhole = true;
      routes6.push_back(bh);
    }
  }
  for (const auto& [p, m] : npt6) {
    RouteStep r = lwt_route(*p);
    if (!settings.route_mtu) {
      bool outer6 = std::any_of(p->tmpls.begin(), p->tmpls.end(),
                                [](const spd::Template& t) { return t.tunnel_dst.family == AF_INET6; });
      r.mtu = std::max(outer6 ? r.mtu - kEspOuterIpv6Extra : r.mtu, kIpv6MinMtu);
    }
    // The gateway's own connections leave with its address in the policy's source selector (a
    // virtual IP: the /128's address, or one a pool leaves out), as strongSwan's table 220 would
    // have made them do.
    if (m.nat66)
      for (const auto& h : facts.addresses)
        if (h.prefix.addr.family == AF_INET6 && p->sel.src.contains(h.prefix.addr) && !r.prefsrc)
          r.prefsrc = h.prefix.addr;
    routes6.push_back(r);
  }
  place(routes6, AF_INET6);
  return plan;
}

uint32_t routes_table(const HostFacts& facts, const Settings& settings, const std::vector<sys::Route>& routes,
                      uint16_t family) {
  if (settings.own_table || !settings.replanned) return settings.table;
  if (family == AF_INET6 ? facts.foreign_rules6 : facts.foreign_rules4) return settings.table;
  // Behind rule 210 ipsnat's routes are looked up before the main table, after the local one.
  // Without rules the kernel looks up the longest prefix of local and main together (IPv4), or
  // local then main (IPv6): the same answer unless a main route is as long or longer inside one
  // of ipsnat's, or a local one as short or shorter around it.
  for (const auto& r : routes) {
    for (const auto& m : facts.main_routes)
      if (m.addr.family == family && m.len >= r.dst.len && r.dst.contains(m.addr)) return settings.table;
    for (const auto& l : facts.local_routes)
      if (l.addr.family == family && l.len <= r.dst.len && l.contains(r.dst.addr)) return settings.table;
  }
  return RT_TABLE_MAIN;
}

// ---- steps: identity, text, JSON ----

std::string step_key(const Step& s) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TcStep>)
          return std::string("tc/") + hook_name(v.hook) + (v.dev.empty() ? "" : "/" + v.dev);
        if constexpr (std::is_same_v<T, RuleStep>)
          return std::string(v.family == AF_INET6 ? "rule6/" : "rule/") + std::to_string(v.priority) + "/" +
                 std::to_string(v.table);
        if constexpr (std::is_same_v<T, RouteStep>)  // the kernel tells routes apart by their metric too
          return "route/" + std::to_string(v.table) + "/" + v.dst.str() +
                 (v.metric ? "/metric" + std::to_string(v.metric) : "");
        if constexpr (std::is_same_v<T, XfrmPolicyStep>)
          return std::string("xfrm/") + spd::to_string(v.policy.dir) + "/" + v.policy.sel.src.str() + "/" +
                 v.policy.sel.dst.str() + "/" + std::to_string(v.policy.sel.proto) + "/" +
                 std::to_string(v.policy.if_id) + "/" + std::to_string(v.policy.mark_v);
      },
      s);
}

std::string describe(const Step& s) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        std::ostringstream o;
        if constexpr (std::is_same_v<T, TcStep>) {
          if (v.hook == Hook::Xdp)
            o << "xdp (native) program " << v.prog;
          else
            o << "tc " << hook_name(v.hook) << " program " << v.prog;
          if (!v.dev.empty()) o << " dev " << v.dev;
        } else if constexpr (std::is_same_v<T, RuleStep>) {
          o << (v.family == AF_INET6 ? "rule -6 priority " : "rule priority ") << v.priority << " lookup " << v.table;
        } else if constexpr (std::is_same_v<T, RouteStep>) {
          o << "route " << (v.blackhole ? "blackhole " : "") << v.dst.str() << " table "
            << (v.table == RT_TABLE_MAIN ? std::string("main") : std::to_string(v.table));
          if (v.gateway) o << " via " << v.gateway->str();
          if (!v.blackhole) o << " dev " << (v.oif_name.empty() ? "#" + std::to_string(v.oif) : v.oif_name);
          if (v.prefsrc) o << " src " << v.prefsrc->str();
          if (v.metric) o << " metric " << v.metric;
          if (v.mtu) o << (v.dst.addr.family == AF_INET6 ? " mtu lock " : " mtu ") << v.mtu;
          if (!v.lwt_prog.empty()) o << " encap bpf xmit " << v.lwt_prog;
        } else {
          // A planned policy has no kernel index yet: leave out the meaningless "index 0".
          std::string d = v.policy.describe();
          if (auto at = d.find(" index 0"); v.policy.index == 0 && at != std::string::npos) d.erase(at, 8);
          o << "xfrm policy " << d;
        }
        return o.str();
      },
      s);
}

namespace {

nlohmann::json prefix_json(const Prefix& p) { return p.str(); }
Prefix prefix_from(const nlohmann::json& j) { return parse_prefix(j.get<std::string>()); }

nlohmann::json policy_json(const Policy& p) {
  nlohmann::json t = nlohmann::json::array();
  for (const auto& x : p.tmpls)
    t.push_back({{"mode", x.mode}, {"proto", x.proto}, {"reqid", x.reqid}, {"spi", x.spi},
                 {"optional", x.optional}, {"family", x.family}, {"src", x.tunnel_src.str()},
                 {"dst", x.tunnel_dst.str()}});
  return {{"src", prefix_json(p.sel.src)}, {"dst", prefix_json(p.sel.dst)}, {"proto", p.sel.proto},
          {"sport", p.sel.sport}, {"sport_mask", p.sel.sport_mask}, {"dport", p.sel.dport},
          {"dport_mask", p.sel.dport_mask}, {"dir", spd::to_string(p.dir)}, {"priority", p.priority},
          {"mark", p.mark_v}, {"mark_mask", p.mark_m}, {"if_id", p.if_id}, {"tmpls", t},
          {"index", p.index}};
}

Policy policy_from(const nlohmann::json& j) {
  Policy p;
  p.sel.src = prefix_from(j.at("src"));
  p.sel.dst = prefix_from(j.at("dst"));
  p.sel.family = p.sel.src.addr.family;
  p.sel.proto = j.at("proto");
  p.sel.sport = j.at("sport");
  p.sel.sport_mask = j.at("sport_mask");
  p.sel.dport = j.at("dport");
  p.sel.dport_mask = j.at("dport_mask");
  std::string dir = j.at("dir");
  p.dir = dir == "in" ? spd::Dir::In : dir == "fwd" ? spd::Dir::Fwd : spd::Dir::Out;
  p.priority = j.at("priority");
  p.mark_v = j.at("mark");
  p.mark_m = j.at("mark_mask");
  p.if_id = j.at("if_id");
  p.index = j.value("index", 0u);  // the kernel's, once added (0 in states of older versions)
  for (const auto& x : j.at("tmpls")) {
    spd::Template t;
    t.mode = x.at("mode");
    t.proto = x.at("proto");
    t.reqid = x.at("reqid");
    t.spi = x.at("spi");
    t.optional = x.at("optional");
    t.family = x.at("family");
    t.tunnel_src = parse_address(x.at("src"));
    t.tunnel_dst = parse_address(x.at("dst"));
    p.tmpls.push_back(t);
  }
  return p;
}

}  // namespace

nlohmann::json step_to_json(const Step& s) {
  return std::visit(
      [](const auto& v) -> nlohmann::json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TcStep>) {
          nlohmann::json j = {{"type", "tc"}, {"hook", hook_name(v.hook)}, {"prog", v.prog}};
          if (!v.dev.empty()) j["dev"] = v.dev;
          return j;
        }
        if constexpr (std::is_same_v<T, RuleStep>)
          return v.family == AF_INET6
                     ? nlohmann::json{{"type", "rule"}, {"priority", v.priority}, {"table", v.table}, {"family", 6}}
                     : nlohmann::json{{"type", "rule"}, {"priority", v.priority}, {"table", v.table}};
        if constexpr (std::is_same_v<T, RouteStep>) {
          nlohmann::json j = {{"type", "route"}, {"dst", prefix_json(v.dst)}, {"table", v.table},
                              {"blackhole", v.blackhole}, {"oif", v.oif}, {"mtu", v.mtu},
                              {"lwt_prog", v.lwt_prog}};
          if (v.gateway) j["gateway"] = v.gateway->str();
          if (v.prefsrc) j["prefsrc"] = v.prefsrc->str();
          if (!v.oif_name.empty()) j["dev"] = v.oif_name;
          if (v.metric) j["metric"] = v.metric;
          return j;
        }
        if constexpr (std::is_same_v<T, XfrmPolicyStep>)
          return {{"type", "xfrm_policy"}, {"policy", policy_json(v.policy)}, {"why", v.why}};
      },
      s);
}

Step step_from_json(const nlohmann::json& j) {
  std::string type = j.at("type");
  if (type == "tc")
    return TcStep{j.at("hook") == "ingress" ? Hook::TcIngress : j.at("hook") == "xdp" ? Hook::Xdp : Hook::TcEgress,
                  j.at("prog"), j.value("dev", "")};
  if (type == "rule")
    return RuleStep{j.at("priority"), j.at("table"), uint16_t(j.value("family", 4) == 6 ? AF_INET6 : AF_INET)};
  if (type == "route") {
    RouteStep r;
    r.dst = prefix_from(j.at("dst"));
    r.table = j.at("table");
    r.blackhole = j.at("blackhole");
    r.oif = j.at("oif");
    r.mtu = j.at("mtu");
    r.lwt_prog = j.at("lwt_prog");
    if (j.contains("gateway")) r.gateway = parse_address(j.at("gateway"));
    if (j.contains("prefsrc")) r.prefsrc = parse_address(j.at("prefsrc"));
    r.oif_name = j.value("dev", "");
    r.metric = j.value("metric", 0u);
    return r;
  }
  if (type == "xfrm_policy") return XfrmPolicyStep{policy_from(j.at("policy")), j.value("why", "")};
  throw UserError("unknown step type '" + type + "' in the attach state", "the state file is from another version");
}

nlohmann::json plan_to_json(const AttachPlan& p) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : p.steps) {
    auto j = step_to_json(s);
    j["text"] = describe(s);
    steps.push_back(j);
  }
  nlohmann::json tr = nlohmann::json::array();
  for (const auto& t : p.translations)
    tr.push_back({{"policy_index", t.policy_index}, {"policy", t.policy}, {"nat", t.nat}});
  nlohmann::json fw = nlohmann::json::array();
  for (const auto& f : p.forwards) fw.push_back(f.spec());
  nlohmann::json in = nlohmann::json::array();
  for (const auto& c : p.inside)
    in.push_back({{"prefix", c.prefix.str()}, {"dev", c.dev}, {"inside", c.inside}, {"why", c.why}});
  nlohmann::json j = {{"dev", p.dev},     {"ifindex", p.ifindex}, {"kind", p.kind}, {"inside", in},
                      {"mode", to_string(p.mode)}, {"steps", steps},     {"translations", tr},
                      {"forwards", fw},           {"warnings", p.warnings}};
  if (p.binat) {
    nlohmann::json maps = nlohmann::json::array();
    for (const auto& b : p.binat_maps)
      maps.push_back({{"policy_index", b.policy_index}, {"nat", b.nat.str()}, {"inside", b.inside.str()},
                      {"remote", b.remote.str()}});
    j["binat"] = maps;
  }
  if (p.masquerade)
    j["masquerade"] = {{"addr", p.masquerade->addr.family == AF_INET ? p.masquerade->addr.str() : ""},
                       {"source", p.masquerade->source},
                       {"port_min", p.masquerade->port_min},
                       {"port_max", p.masquerade->port_max}};
  return j;
}

namespace {
// "masquerade 192.168.1.0/24 -> 200.2.2.2 (the address of eth0) ports 61000-65535"
std::string masquerade_text(const AttachPlan& p) {
  std::string from;
  for (const auto& c : p.inside)
    if (c.inside && c.prefix.addr.family == AF_INET) from += (from.empty() ? "" : ", ") + c.prefix.str();
  const auto& m = *p.masquerade;
  std::string to = m.addr.family == AF_INET ? m.addr.str() : "none";
  return "masquerade " + from + " -> " + to + " (" + m.source + ") ports " + std::to_string(m.port_min) + "-" +
         std::to_string(m.port_max);
}
}  // namespace

std::string plan_to_text(const AttachPlan& p, bool with_warnings) {
  std::ostringstream o;
  o << "attach " << p.dev << " mode " << to_string(p.mode);
  if (!p.kind.empty()) o << " (" << p.kind << ")";
  o << "\n";
  for (const auto& c : p.inside) {
    o << "  " << (c.inside ? "inside " : "not inside ") << c.prefix.str();
    if (!c.dev.empty()) o << " (" << c.dev << ")";
    if (!c.inside || c.dev.empty()) o << ": " << c.why;
    o << "\n";
  }
  for (const auto& s : p.steps) o << "  " << describe(s) << "\n";
  for (const auto& t : p.translations) o << "  translate policy " << t.policy_index << " " << t.policy << ": " << t.nat << "\n";
  for (const auto& f : p.forwards) o << "  forward " << f.str() << "\n";
  if (p.masquerade) o << "  " << masquerade_text(p) << "\n";
  for (const auto& b : p.binat_maps) o << "  " << b.str() << "\n";
  if (with_warnings)
    for (const auto& w : p.warnings) o << "  warning: " << w << "\n";
  return o.str();
}

}  // namespace ipsnat::attach
