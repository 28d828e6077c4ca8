#include "attach/session.h"

#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "attach/applier.h"
#include "attach/facts.h"
#include "attach/host.h"
#include "attach/map_writes.h"
#include "attach/programs.h"
#include "attach/state.h"
#include "pins/pin_store.h"
#include "sys/hook_census.h"
#include "util/error.h"
#include "xfrm/policy_requests.h"

namespace ipsnat::attach {
namespace {

// ipsnat's own companion policies from an earlier attach are not "another tool's": those with
// the recorded index that still are what ipsnat added. One an IKE daemon replaced (same index,
// other templates) or deleted and added again (new index) is another tool's now.
void forget_own_policies(std::vector<spd::Policy>& policies, const AttachState& prev) {
  std::erase_if(policies, [&](const spd::Policy& p) {
    for (const auto& s : prev.steps)
      if (auto* x = std::get_if<XfrmPolicyStep>(&s);
          x && (x->policy.index == 0 || x->policy.index == p.index) && xfrm::is_same_policy(p, x->policy))
        return true;
    return false;
  });
}

// The plan, its port-forwards resolved against the addresses it translates to, and every
// warning for the user (the plan's, and programs that run before ipsnat's on the device).
AttachResult plan_attach(const HostFacts& facts, const Settings& settings, const std::string& dev) {
  AttachResult res;
  res.plan = make_plan(facts, settings);
  std::vector<uint32_t> napt;
  for (const auto& t : res.plan.translations)
    if (t.napt_addr_be && std::find(napt.begin(), napt.end(), t.napt_addr_be) == napt.end())
      napt.push_back(t.napt_addr_be);
  res.plan.forwards = resolve_forwards(settings.forwards, napt);
  res.warnings = res.plan.warnings;
  for (auto& w : sys::warnings_for_programs_before_ipsnat(facts.dev.ifindex, dev)) res.warnings.push_back(std::move(w));
  return res;
}

// The record of an earlier attach of dev, for the device now at ifindex. Re-created (an xfrm
// interface with another if_id, a VTI with another okey, a device an IKE daemon or ifupdown
// rebuilt): the old device took its TC filters, clsact qdisc and routes with it, so only what
// outlives it (policies, rule, other routes) is reconciled. A device that still exists under the
// old index was renamed: that stays an error.
AttachState carry_over(const AttachState& prev, const std::string& dev, int ifindex, std::vector<std::string>& warnings) {
  AttachState st = prev;
  if (prev.ifindex == ifindex) return st;
  char name[IF_NAMESIZE];
  if (if_indextoname(static_cast<unsigned>(prev.ifindex), name))
    throw UserError("\"" + dev + "\" was attached as ifindex " + std::to_string(prev.ifindex) + " (now \"" + name +
                        "\") and is now " + std::to_string(ifindex),
                    "ipsnat detach " + dev + " first");
  std::erase_if(st.steps, [](const Step& s) {
    auto* tc = std::get_if<TcStep>(&s);
    return tc && tc->dev.empty();  // lo's hook outlives the device
  });
  st.clsact_created = false;
  warnings.push_back("\"" + dev + "\" was re-created (ifindex " + std::to_string(prev.ifindex) + " -> " +
                     std::to_string(ifindex) + "): attached to the new device");
  return st;
}

// The device as it is now and the attach's own knobs, so that the host process re-plans the
// device as it was attached.
void record_device(AttachState& st, const AttachRequest& req, const HostFacts& facts, const AttachPlan& plan,
                   const std::string& pin_root, const std::vector<Prefix>& inside) {
  st.dev = req.dev;
  st.ifindex = facts.dev.ifindex;
  st.netns = StateStore::current_netns();
  st.mode = to_string(plan.mode);
  st.kind = facts.dev.kind;
  st.if_id = facts.dev.if_id;
  st.pin_root = pin_root;
  st.table = req.settings.table;
  st.rule_priority = req.settings.rule_priority;
  st.own_table = req.settings.own_table;
  st.route_mtu = req.settings.route_mtu;
  st.masquerade = req.settings.masquerade;
  st.masquerade_addr = req.settings.masquerade_addr ? req.settings.masquerade_addr->str() : "";
  st.xdp_prefilter = req.settings.xdp_prefilter;
  st.binat = req.settings.binat;
  st.inside.clear();
  for (const auto& p : inside) st.inside.push_back(p.str());
  st.inside_configured.clear();
  for (const auto& p : req.settings.inside) st.inside_configured.push_back(p.str());
}

// STATE_DIR/<id>.log, where the host an attach starts writes.
std::string host_log(const StateStore& store, const std::string& id) {
  std::string log = store.path(id);
  return log.replace(log.size() - 5, 5, ".log");
}

}  // namespace

AttachResult attach(const AttachRequest& req) {
  require_privileges(!req.dry_run);
  StateStore store(StateStore::resolve_dir());
  std::string id = StateStore::id_for(req.dev);
  // The lock before the plan: the plan is made from the host, the SPD and the state as they are
  // under it, so another attach, detach or re-plan cannot change them between plan and apply.
  pins::PinStore pins(req.pin_root);
  std::optional<pins::PinStore::Lock> lock;
  if (!req.dry_run) {
    pins.prepare();
    lock.emplace(pins.root());
  }
  auto prev = store.load(id);
  auto facts = gather_facts(req.dev, req.settings);
  if (prev) forget_own_policies(facts.policies, *prev);
  AttachResult res = plan_attach(facts, req.settings, req.dev);
  if (req.dry_run) return res;
  if (req.only_if_attached && !prev) return res;  // detached meanwhile: a re-plan must not re-add it

  AttachState st;
  if (prev) {
    st = carry_over(*prev, req.dev, facts.dev.ifindex, res.warnings);
    if (prev->ifindex != facts.dev.ifindex) forget_device_config(pins.root(), prev->ifindex);
    res.reattached = true;
    // A re-attach is also the upgrade path: a host that attach started runs the old binary, and
    // with it alive there would be two SPD writers (its mirror and the sync below), each with its
    // own idea of the active generation and its own cell ids. Stop it; a new one is started below.
    if (req.start_host) stop_host_started_by_attach(pins.root(), store.dir());
  }
  auto inside = inside_prefixes(facts, req.settings);
  record_device(st, req, facts, res.plan, pins.root(), inside);
  store.save(id, st);

  // The host process re-plans from the program pins without loading (and verifying) the object
  // again; attach itself always loads it.
  auto names = program_names(res.plan.mode, req.settings.xdp_prefilter);
  std::optional<Programs> progs;
  if (!req.sync_spd && prev) progs = Programs::open_pinned(st.prog_pins, names);
  if (!progs) {
    progs = Programs::load(pins, req.ct_max, req.spd_max, names, res.warnings);
    // The SPD maps are filled before any program sees traffic, so no packet meets an empty SPD;
    // the host process (attach/host.h) keeps them live (docs/attach.md).
    if (req.sync_spd) {
      spd::NatConfig nat;
      nat.inside = inside;
      nat.local = facts.local_addrs;
      for (const auto& h : facts.addresses)
        if (h.prefix.addr.family == AF_INET6) nat.local.push_back(h.prefix.addr);
      for (auto& w : sync_spd_once(progs->skel()->obj, nat)) res.warnings.push_back(std::move(w));
      pins::ForwardMap fwd(bpf_map__fd(progs->skel()->maps.ipsnat_fwd), bpf_map__fd(progs->skel()->maps.ipsnat_fwd_cnt));
      st.forwards = replace_forwards(fwd, st.forwards, res.plan.forwards);
      store.save(id, st);
    }
    st.prog_pins = progs->pin(pins, id, names);
    store.save(id, st);
  }

  // Before the programs are (re)attached, and on every attach, re-plan and adoption: the device
  // may have changed since the last one (docs/datapath.md "Knobs").
  write_device_config(progs->skel() ? bpf_map__fd(progs->skel()->maps.ipsnat_dev) : -1,
                      progs->skel() ? bpf_map__fd(progs->skel()->maps.ipsnat_dev_gen) : -1, pins.root(),
                      facts.dev.ifindex, device_config(facts.dev, res.plan.mode, res.plan.masquerade, res.plan.binat));
  Applier(store, id, st).apply(res.plan, [&](const std::string& name) { return progs->fd(name); });
  // One host process per pin root (attach/host.h).
  if (req.start_host) {
    st.daemon_pid = ensure_host({pins.root(), store.dir(), host_log(store, id), req.limit_log_interval});
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
  pins::PinStore pins(st->pin_root);
  std::optional<pins::PinStore::Lock> lock;
  if (access(pins.root().c_str(), F_OK) == 0) lock.emplace(pins.root());
  // The host serves every device under its pin root: one that attach started is stopped (first,
  // or it would re-plan what is being removed) with the last device; a user's `ipsnat run` stays.
  bool last = true;
  for (const auto& [other, ost] : store.list_here(st->pin_root)) last &= other == id;
  if (last) stop_host_started_by_attach(pins.root(), store.dir());
  Applier(store, id, *st).remove_all();
  forget_device_config(pins.root(), st->ifindex);
  forget_forwards(pins.root(), st->forwards);
  pins.unpin_programs(id);
  store.remove(id);
  return true;
}

}  // namespace ipsnat::attach
