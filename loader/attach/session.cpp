#include "attach/session.h"

#include <arpa/inet.h>
#include <linux/xfrm.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <net/if.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <algorithm>
#include <map>
#include <memory>

#include "attach/applier.h"
#include "attach/host.h"
#include "attach/state.h"
#include "ipsnat_bpf.skel.h"
#include "maps/config.h"
#include "pins/names.h"
#include "mirror/mirror.h"
#include "state/pinned.h"
#include "pins/mirror_lock.h"
#include "sys/features.h"
#include "sys/hook_census.h"
#include "pins/pin_store.h"
#include "sys/rtnl.h"
#include "xfrm/policy_requests.h"
#include "util/error.h"
#include "util/fd.h"

#ifndef CAP_BPF
#define CAP_BPF 39
#endif

namespace ipsnat::attach {
namespace {

struct SkelDeleter {
  void operator()(ipsnat_bpf* s) const { ipsnat_bpf__destroy(s); }
};
using Skel = std::unique_ptr<ipsnat_bpf, SkelDeleter>;

// Opens the object with its maps pinned under the store (reused when compatible), loads it.
// The conntrack map gets ct_max entries, the SPD maps spd_max (0: the pinned map's size, else
// the default).
Skel load_object(const PinStore& pins, uint32_t ct_max, uint32_t spd_max, std::vector<std::string>& warnings) {
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.pin_root_path = pins.root().c_str();
  Skel skel(ipsnat_bpf__open_opts(&opts));
  if (!skel) throw SysError("opening the BPF object", errno);
  uint32_t entries = pins.ct_entries_for(ct_max);
  if (int err = bpf_map__set_max_entries(skel->maps.ipsnat_ct, entries))
    throw SysError("sizing ipsnat_ct to " + std::to_string(entries) + " entries", -err);
  uint32_t spd_entries = pins.spd_entries_for(spd_max);
  for (bpf_map* m : {skel->maps.spd_dst, skel->maps.spd_src, skel->maps.spd_lists})
    if (int err = bpf_map__set_max_entries(m, spd_entries))
      throw SysError("sizing " + std::string(bpf_map__name(m)) + " to " + std::to_string(spd_entries) + " entries", -err);
  for (auto& m : pins.drop_incompatible(skel->obj)) warnings.push_back(m);
  if (int err = ipsnat_bpf__load(skel.get()))
    throw UserError("loading the BPF programs failed: " + std::string(strerror(-err)), "run with -vv for the verifier log");
  pins.record(skel->obj);
  return skel;
}

const char* cap_name(int cap) {
  switch (cap) {
    case CAP_NET_ADMIN: return "CAP_NET_ADMIN";
    case CAP_BPF: return "CAP_BPF";
    default: return "CAP_SYS_ADMIN";
  }
}

// The host process serving ROOT, stopped when attach started it (also after a failed SIGTERM:
// the applier records each step before applying it, so a kill leaves nothing detach misses).
void stop_attach_host(const std::string& pin_root) {
  auto host = running_host(pin_root, StateStore::resolve_dir());
  if (!host || !host->started_by_attach) return;
  if (!stop_host(*host, pin_root)) {
    kill(host->pid, SIGKILL);
    for (int i = 0; i < 50 && MirrorLock::holder(pin_root); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
}

// ipsnat_dev[ifindex] = cfg, through fd or else the pinned map.
void write_device_config(int fd, const std::string& pin_root, int ifindex, const ipsnat_dev_cfg& cfg) {
  Fd own;
  if (fd < 0) {
    std::string path = state::pinned_map_path(pin_root, pins::kDevices);
    own.reset(bpf_obj_get(path.c_str()));
    if (!own) throw SysError("opening " + path, errno);
    fd = own.get();
  }
  uint32_t key = static_cast<uint32_t>(ifindex);
  if (bpf_map_update_elem(fd, &key, &cfg, BPF_ANY) != 0) throw SysError("writing ipsnat_dev", errno);
}

void forget_device_config(const std::string& pin_root, int ifindex) {
  Fd fd(bpf_obj_get(state::pinned_map_path(pin_root, pins::kDevices).c_str()));
  if (!fd) return;
  uint32_t key = static_cast<uint32_t>(ifindex);
  bpf_map_delete_elem(fd.get(), &key);
}

}  // namespace

void require_privileges(bool need_bpf) {
  if (!has_capability(CAP_NET_ADMIN))
    throw UserError(std::string("missing capability ") + cap_name(CAP_NET_ADMIN),
                    "ipsnat needs CAP_NET_ADMIN and CAP_BPF: run as root");
  if (need_bpf && !has_capability(CAP_BPF) && !has_capability(CAP_SYS_ADMIN))
    throw UserError(std::string("missing capability ") + cap_name(CAP_BPF),
                    "ipsnat needs CAP_NET_ADMIN and CAP_BPF: run as root");
}

HostFacts gather_facts(const std::string& dev, const Settings& settings) {
  HostFacts f;
  f.dev = rtnl::link_facts(dev);
  for (const auto& a : rtnl::ipv4_addresses()) {
    f.local_addrs.push_back(a.prefix.addr);
    char name[IF_NAMESIZE] = "";
    if_indextoname(static_cast<unsigned>(a.ifindex), name);
    bool loopback = (ntohl(a.prefix.addr.v4_be()) >> 24) == 127 || std::string(name) == "lo";
    f.addresses.push_back({a.prefix, a.ifindex, name, loopback});
  }
  // IPv6 LANs for NPTv6 (spd/npt6.h); not in local_addrs, which the IPv4 NAT reads.
  for (const auto& a : rtnl::ipv6_addresses()) {
    char name[IF_NAMESIZE] = "";
    if_indextoname(static_cast<unsigned>(a.ifindex), name);
    f.addresses.push_back({a.prefix, a.ifindex, name, std::string(name) == "lo"});
  }
  f.default_oifs = rtnl::default_route_oifs();
  f.policies = xfrm::dump_policies();
  // This namespace's (/proc/sys/net follows the reader's network namespace).
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> f.local_port_min >> f.local_port_max;
  for (const auto& dst : covered_destinations(f, settings))
    if (auto nh = rtnl::route_get(dst)) {
      char name[IF_NAMESIZE];
      if (nh->oif && if_indextoname(static_cast<unsigned>(nh->oif), name)) nh->oif_name = name;
      f.nexthops.push_back(*nh);
    }
  // The path to each SA's outer peer: its MTU bounds the translated packets' (the LWT route's).
  for (const auto& p : f.policies)
    for (const auto& t : p.tmpls) {
      if (t.mode != XFRM_MODE_TUNNEL || t.family != AF_INET) continue;
      spd::Prefix peer{t.tunnel_dst, 32};
      if (std::any_of(f.sa_peers.begin(), f.sa_peers.end(), [&](const Nexthop& n) { return n.dst == peer; })) continue;
      auto nh = rtnl::route_get(peer);
      if (!nh) continue;
      char name[IF_NAMESIZE];
      if (nh->oif && if_indextoname(static_cast<unsigned>(nh->oif), name)) {
        nh->oif_name = name;
        if (!nh->mtu) {
          try {
            nh->mtu = rtnl::link_facts(name).mtu;
          } catch (const std::exception&) {
            // gone meanwhile: the next re-plan sees the host as it is then
          }
        }
      }
      f.sa_peers.push_back(*nh);
    }
  return f;
}

AttachResult attach(const AttachRequest& req) {
  require_privileges(!req.dry_run);
  AttachResult res;
  StateStore store(StateStore::resolve_dir());
  std::string id = StateStore::id_for(req.dev);
  // The lock before the plan: the plan is made from the host, the SPD and the state as they are
  // under it, so another attach, detach or re-plan cannot change them between plan and apply.
  PinStore pins(req.pin_root);
  std::optional<PinStore::Lock> lock;
  if (!req.dry_run) {
    pins.prepare();
    lock.emplace(pins.root());
  }
  auto prev = store.load(id);
  auto facts = gather_facts(req.dev, req.settings);
  // ipsnat's own companion policies from an earlier attach are not "another tool's": those with
  // the recorded index that still are what ipsnat added. One an IKE daemon replaced (same index,
  // other templates) or deleted and added again (new index) is another tool's now.
  if (prev) {
    std::erase_if(facts.policies, [&](const spd::Policy& p) {
      for (const auto& s : prev->steps)
        if (auto* x = std::get_if<XfrmPolicyStep>(&s);
            x && (x->policy.index == 0 || x->policy.index == p.index) && xfrm::is_same_policy(p, x->policy))
          return true;
      return false;
    });
  }
  res.plan = make_plan(facts, req.settings);
  {
    std::vector<uint32_t> napt;
    for (const auto& t : res.plan.translations)
      if (t.napt_addr_be && std::find(napt.begin(), napt.end(), t.napt_addr_be) == napt.end())
        napt.push_back(t.napt_addr_be);
    res.plan.forwards = resolve_forwards(req.settings.forwards, napt);
  }
  res.warnings = res.plan.warnings;
  for (auto& w : warnings_for_programs_before_ipsnat(facts.dev.ifindex, req.dev)) res.warnings.push_back(std::move(w));
  if (req.dry_run) return res;
  if (req.only_if_attached && !prev) return res;  // detached meanwhile: a re-plan must not re-add it
  AttachState st;
  if (prev) {
    st = *prev;
    if (prev->ifindex != facts.dev.ifindex) {
      // Re-created (an xfrm interface with another if_id, a VTI with another okey, a device an
      // IKE daemon or ifupdown rebuilt): the old device took its TC filters, clsact qdisc and
      // routes with it, so only what outlives it (policies, rule, other routes) is reconciled.
      // A device that still exists under the old index was renamed: that stays an error.
      char name[IF_NAMESIZE];
      if (if_indextoname(static_cast<unsigned>(prev->ifindex), name))
        throw UserError("\"" + req.dev + "\" was attached as ifindex " + std::to_string(prev->ifindex) +
                            " (now \"" + name + "\") and is now " + std::to_string(facts.dev.ifindex),
                        "ipsnat detach " + req.dev + " first");
      std::erase_if(st.steps, [](const Step& s) {
        auto* tc = std::get_if<TcStep>(&s);
        return tc && tc->dev.empty();  // lo's hook outlives the device
      });
      st.clsact_created = false;
      forget_device_config(pins.root(), prev->ifindex);
      res.warnings.push_back("\"" + req.dev + "\" was re-created (ifindex " + std::to_string(prev->ifindex) +
                             " -> " + std::to_string(facts.dev.ifindex) + "): attached to the new device");
    }
    res.reattached = true;
    // A re-attach is also the upgrade path: a host that attach started runs the old binary, and
    // with it alive there would be two SPD writers (its mirror and the sync below), each with its
    // own idea of the active generation and its own cell ids. Stop it; a new one is started below.
    if (req.start_host) stop_attach_host(pins.root());
  }
  st.dev = req.dev;
  st.ifindex = facts.dev.ifindex;
  st.netns = StateStore::current_netns();
  st.mode = to_string(res.plan.mode);
  st.kind = facts.dev.kind;
  st.if_id = facts.dev.if_id;
  st.pin_root = pins.root();
  st.table = req.settings.table;
  st.rule_priority = req.settings.rule_priority;
  st.route_mtu = req.settings.route_mtu;
  st.masquerade = req.settings.masquerade;
  st.masquerade_addr = req.settings.masquerade_addr ? req.settings.masquerade_addr->str() : "";
  st.xdp_prefilter = req.settings.xdp_prefilter;
  st.binat = req.settings.binat;
  st.inside.clear();
  auto inside = inside_prefixes(facts, req.settings);
  for (const auto& p : inside) st.inside.push_back(p.str());
  store.save(id, st);

  // Every program the mode can need is pinned, so the host process re-plans from the pins without
  // loading (and verifying) the object again.
  std::vector<std::string> names = res.plan.mode == Mode::Route
                                       ? std::vector<std::string>{"tc_rev_ingress", "tc_snat_egress", "tc_lo_egress"}
                                       : std::vector<std::string>{"tc_guard_egress", "tc_rev_ingress", "lwt_snat_xmit"};
  if (req.settings.xdp_prefilter) names.push_back("xdp_spoof_drop");
  std::map<std::string, Fd> pinned_fds;
  if (!req.sync_spd && prev) {
    for (const auto& path : st.prog_pins) {
      if (Fd fd(bpf_obj_get(path.c_str())); fd) pinned_fds[path.substr(path.rfind('/') + 1)] = std::move(fd);
    }
  }
  bool from_pins = std::all_of(names.begin(), names.end(), [&](const std::string& n) { return pinned_fds.count(n); });

  Skel skel;
  if (!from_pins) {
    skel = load_object(pins, req.ct_max, req.spd_max, res.warnings);

    // The SPD maps are filled before any program sees traffic, so no packet meets an empty SPD.
    // INTEGRATION POINT with the SPD mirror (loader/spd/mirror.h): one full sync here; the
    // host process (attach/host.h) keeps it live (docs/attach.md).
    if (req.sync_spd) {
      spd::NatConfig nat;
      nat.inside = inside;
      nat.local = facts.local_addrs;
      spd::SpdMirror mirror(spd::SpdMapFds::from_object(skel->obj), nat);
      mirror.sync_once();
      const std::string closed = ": the datapath fails closed, cleartext to every destination is dropped at the uplink";
      if (!mirror.stats().last_refusal.empty())
        res.warnings.push_back("SPD not representable: " + mirror.stats().last_refusal + closed +
                               " until the policy is gone");
      else if (!mirror.stats().last_write_error.empty())
        res.warnings.push_back("SPD maps not written (" + mirror.stats().last_write_error + ")" + closed +
                               " until the host process writes them");
      else if (mirror.stats().fail_closed)
        res.warnings.push_back("SPD larger than the maps (" + mirror.stats().last_capacity_error + ")" + closed +
                               " (raise --spd-max)");
      // Port-forwards: this attach's previous ones out, the configured ones in.
      std::vector<ForwardRule> old;
      for (const auto& s : st.forwards) old.push_back(parse_forward_spec(s));
      int fwd_fd = bpf_map__fd(skel->maps.ipsnat_fwd);
      delete_forward_entries(fwd_fd, forward_entries(old));
      write_forward_map(fwd_fd, forward_entries(res.plan.forwards));
      st.forwards.clear();
      for (const auto& f : res.plan.forwards) st.forwards.push_back(f.spec());
      store.save(id, st);
    }

    std::vector<bpf_program*> progs;
    for (const auto& name : names) {
      auto* p = bpf_object__find_program_by_name(skel->obj, name.c_str());
      if (!p) throw UserError("program " + name + " is missing from the BPF object", "a build error");
      progs.push_back(p);
    }
    st.prog_pins = pins.pin_programs(id, progs);
    store.save(id, st);
  }

  // Before the programs are (re)attached, and on every attach, re-plan and adoption: the device
  // may have changed since the last one (docs/datapath.md "Knobs").
  write_device_config(skel ? bpf_map__fd(skel->maps.ipsnat_dev) : -1, pins.root(), facts.dev.ifindex,
                      device_config(facts.dev, res.plan.mode, res.plan.masquerade, res.plan.binat));

  Applier applier(store, id, st);
  applier.apply(res.plan, [&](const std::string& name) {
    if (from_pins) return pinned_fds.at(name).get();
    return bpf_program__fd(bpf_object__find_program_by_name(skel->obj, name.c_str()));
  });
  // One host process per pin root (attach/host.h): a running one takes this device over (its
  // attach service re-plans every device recorded under its pin root); else one is started.
  if (req.start_host) {
    auto host = running_host(pins.root(), store.dir());
    if (host) {
      st.daemon_pid = host->pid;
    } else {
      std::string log = store.path(id);
      log.replace(log.size() - 5, 5, ".log");
      st.daemon_pid = start_host({pins.root(), store.dir(), log, req.limit_log_interval});
    }
    store.save(id, st);
  }
  return res;
}

bool detach(const std::string& dev) {
  require_privileges(true);
  StateStore store(StateStore::resolve_dir());
  std::string id = StateStore::id_for(dev);
  auto st = store.load(id);
  if (!st) return false;
  PinStore pins(st->pin_root);
  std::optional<PinStore::Lock> lock;
  if (access(pins.root().c_str(), F_OK) == 0) lock.emplace(pins.root());
  // The host serves every device under its pin root: one that attach started is stopped (first,
  // or it would re-plan what is being removed) with the last device; a user's `ipsnat run` stays.
  bool last = true;
  for (const auto& [other, ost] : store.list_here(st->pin_root)) last &= other == id;
  if (last) stop_attach_host(pins.root());
  Applier applier(store, id, *st);
  applier.remove_all();
  forget_device_config(pins.root(), st->ifindex);
  if (!st->forwards.empty()) {
    std::string fwd_map = state::pinned_map_path(pins.root(), pins::kForwards);
    if (Fd ffd(bpf_obj_get(fwd_map.c_str())); ffd) {
      std::vector<ForwardRule> mine;
      for (const auto& s : st->forwards) mine.push_back(parse_forward_spec(s));
      delete_forward_entries(ffd.get(), forward_entries(mine));
    }
  }
  pins.unpin_programs(id);
  store.remove(id);
  return true;
}

}  // namespace ipsnat::attach
