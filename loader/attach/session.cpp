#include "attach/session.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
#include "attach/state.h"
#include "ipsnat_bpf.skel.h"
#include "limits/sample.h"
#include "maps/config.h"
#include "spd/mirror.h"
#include "sys/mirror_lock.h"
#include "sys/features.h"
#include "sys/pin_store.h"
#include "sys/rtnl.h"
#include "sys/xfrm_policy.h"
#include "util/error.h"

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

// Ours only if its command line says so: a recycled pid must never be signalled.
bool follower_alive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return cmd.find("--follow") != std::string::npos && cmd.find("attach") != std::string::npos;
}

void stop_follower(int pid) {
  if (!follower_alive(pid)) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 50 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(40));
  if (kill(pid, 0) == 0) kill(pid, SIGKILL);
}

// Double fork: the follower is re-parented to init, in its own session, and keeps running
// after `ipsnat attach` returns. Its output goes to STATE_DIR/<id>.log.
int spawn_follower(const AttachRequest& req, Mode mode) {
  std::vector<std::string> args = {"ipsnat", "--pin-root", req.pin_root, "attach", req.dev, "--follow",
                                   "--mode", to_string(mode), "--table", std::to_string(req.settings.table),
                                   "--rule-priority", std::to_string(req.settings.rule_priority)};
  if (req.settings.route_mtu) args.insert(args.end(), {"--route-mtu", std::to_string(req.settings.route_mtu)});
  if (req.limit_log_interval)
    args.insert(args.end(), {"--limit-log-interval", std::to_string(req.limit_log_interval) + "s"});
  for (const auto& p : req.settings.inside) args.insert(args.end(), {"--inside", p.str()});
  std::string log = StateStore(StateStore::resolve_dir()).path(StateStore::id_for(req.dev));
  log.replace(log.size() - 5, 5, ".log");
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw SysError("pipe", errno);
  pid_t child = fork();
  if (child < 0) throw SysError("fork", errno);
  if (child == 0) {
    setsid();
    pid_t grandchild = fork();
    if (grandchild != 0) {
      (void)!write(pipefd[1], &grandchild, sizeof(grandchild));
      _exit(grandchild < 0 ? 1 : 0);
    }
    int devnull = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(devnull, 0);
    if (out >= 0) dup2(out, 1), dup2(out, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  pid_t follower = -1;
  (void)!read(pipefd[0], &follower, sizeof(follower));
  close(pipefd[0]);
  waitpid(child, nullptr, 0);
  if (follower <= 0) throw SysError("starting the follower", ECHILD);
  return follower;
}

// ipsnat_dev[ifindex] = cfg, through fd or else the pinned map.
void write_device_config(int fd, const std::string& pin_root, int ifindex, const ipsnat_dev_cfg& cfg) {
  int own = -1;
  if (fd < 0) {
    own = bpf_obj_get((pin_root + "/ipsnat_dev").c_str());
    if (own < 0) throw SysError("opening " + pin_root + "/ipsnat_dev", errno);
    fd = own;
  }
  uint32_t key = static_cast<uint32_t>(ifindex);
  int err = bpf_map_update_elem(fd, &key, &cfg, BPF_ANY) != 0 ? errno : 0;
  if (own >= 0) close(own);
  if (err) throw SysError("writing ipsnat_dev", err);
}

void forget_device_config(const std::string& pin_root, int ifindex) {
  int fd = bpf_obj_get((pin_root + "/ipsnat_dev").c_str());
  if (fd < 0) return;
  uint32_t key = static_cast<uint32_t>(ifindex);
  bpf_map_delete_elem(fd, &key);
  close(fd);
}

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

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
  f.default_oifs = rtnl::default_route_oifs();
  f.policies = xfrm::dump_policies();
  for (const auto& dst : covered_destinations(f, settings))
    if (auto nh = rtnl::route_get(dst)) {
      char name[IF_NAMESIZE];
      if (nh->oif && if_indextoname(static_cast<unsigned>(nh->oif), name)) nh->oif_name = name;
      f.nexthops.push_back(*nh);
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
      std::erase_if(st.steps, [](const Step& s) { return std::holds_alternative<TcStep>(s); });
      st.clsact_created = false;
      forget_device_config(pins.root(), prev->ifindex);
      res.warnings.push_back("\"" + req.dev + "\" was re-created (ifindex " + std::to_string(prev->ifindex) +
                             " -> " + std::to_string(facts.dev.ifindex) + "): attached to the new device");
    }
    res.reattached = true;
    // A re-attach is also the upgrade path: the running follower is the old binary, and with it
    // alive there would be two SPD writers (its mirror and the sync below), each with its own
    // idea of the active generation and its own cell ids. Stop it; a new one is spawned below.
    if (req.spawn_follower && follower_alive(st.daemon_pid)) {
      stop_follower(st.daemon_pid);
      st.daemon_pid = 0;
    }
  }
  st.dev = req.dev;
  st.ifindex = facts.dev.ifindex;
  st.netns = StateStore::current_netns();
  st.mode = to_string(res.plan.mode);
  st.kind = facts.dev.kind;
  st.if_id = facts.dev.if_id;
  st.pin_root = pins.root();
  st.inside.clear();
  auto inside = inside_prefixes(facts, req.settings);
  for (const auto& p : inside) st.inside.push_back(p.str());
  store.save(id, st);

  // Every program the mode can need is pinned, so the follower re-plans from the pins without
  // loading (and verifying) the object again.
  std::vector<std::string> names = res.plan.mode == Mode::Route
                                       ? std::vector<std::string>{"tc_rev_ingress", "tc_snat_egress"}
                                       : std::vector<std::string>{"tc_guard_egress", "tc_rev_ingress", "lwt_snat_xmit"};
  std::map<std::string, int> pinned_fds;
  if (!req.sync_spd && prev) {
    for (const auto& path : st.prog_pins) {
      int fd = bpf_obj_get(path.c_str());
      if (fd >= 0) pinned_fds[path.substr(path.rfind('/') + 1)] = fd;
    }
  }
  bool from_pins = std::all_of(names.begin(), names.end(), [&](const std::string& n) { return pinned_fds.count(n); });
  struct FdCloser {
    std::map<std::string, int>& fds;
    ~FdCloser() {
      for (auto& [n, fd] : fds) close(fd);
    }
  } closer{pinned_fds};

  Skel skel;
  if (!from_pins) {
    skel = load_object(pins, req.ct_max, req.spd_max, res.warnings);

    // The SPD maps are filled before any program sees traffic, so no packet meets an empty SPD.
    // INTEGRATION POINT with the SPD mirror (loader/spd/mirror.h): one full sync here; the
    // follower (or `ipsnat run`) keeps it live (docs/attach.md).
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
                               " until the follower writes them");
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
                      device_config(facts.dev, res.plan.mode));

  Applier applier(store, id, st);
  applier.apply(res.plan, [&](const std::string& name) {
    if (from_pins) return pinned_fds.at(name);
    return bpf_program__fd(bpf_object__find_program_by_name(skel->obj, name.c_str()));
  });
  // One SPD mirror per pin root (sys/mirror_lock.h): an existing follower takes this device
  // over (it re-plans every device recorded under its pin root); a running `ipsnat run` keeps
  // the maps current but re-plans only the devices of its configuration.
  if (req.spawn_follower && !follower_alive(st.daemon_pid)) {
    auto holder = MirrorLock::holder(pins.root());
    if (!holder) {
      st.daemon_pid = spawn_follower(req, res.plan.mode);
    } else if (holder->is_follower()) {
      st.daemon_pid = holder->pid;
    } else {
      st.daemon_pid = 0;
      res.warnings.push_back("the SPD maps under " + pins.root() + " are kept current by " + holder->str() +
                             "; " + req.dev + "'s routes follow SPD changes only if it is in that daemon's configuration");
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
  // The follower serves every device under its pin root: stop it (first, or it would re-add what
  // is being removed) only when this is the last one; otherwise it notices the removal itself.
  bool last = true;
  for (const auto& [other, ost] : store.list_here(st->pin_root)) last &= other == id;
  if (last) stop_follower(st->daemon_pid);
  Applier applier(store, id, *st);
  applier.remove_all();
  forget_device_config(pins.root(), st->ifindex);
  if (!st->forwards.empty()) {
    std::string fwd_map = pins.root() + "/ipsnat_fwd";
    int ffd = bpf_obj_get(fwd_map.c_str());
    if (ffd >= 0) {
      std::vector<ForwardRule> mine;
      for (const auto& s : st->forwards) mine.push_back(parse_forward_spec(s));
      delete_forward_entries(ffd, forward_entries(mine));
      close(ffd);
    }
  }
  pins.unpin_programs(id);
  store.remove(id);
  return true;
}

int follow(const AttachRequest& req) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  StateStore store(StateStore::resolve_dir());
  std::string id = StateStore::id_for(req.dev);
  auto st = store.load(id);
  if (!st) throw UserError("ipsnat is not attached to \"" + req.dev + "\"", "run ipsnat attach first");
  const std::string root = st->pin_root;
  auto lock = MirrorLock::try_acquire(root);
  if (!lock) {
    auto h = MirrorLock::holder(root);
    spdlog::warn("follower for {}: the SPD maps under {} are mirrored by {}; not starting a second mirror", req.dev,
                 root, h ? h->str() : "another process");
    return 0;
  }
  // The NAT inside prefixes of every device attached under this pin root in this namespace.
  auto inside_of = [&](const auto& devices) {
    spd::NatConfig nat;
    for (const auto& [i, s] : devices)
      for (const auto& p : s.inside) {
        auto prefix = spd::parse_prefix(p);
        if (std::find(nat.inside.begin(), nat.inside.end(), prefix) == nat.inside.end()) nat.inside.push_back(prefix);
      }
    nat.local = rtnl::local_ipv4_addresses();
    return nat;
  };
  auto devices = store.list_here(root);
  spd::NatConfig nat = inside_of(devices);
  auto mirror = std::make_unique<spd::SpdMirror>(spd::SpdMapFds::from_pins(root), nat);
  mirror->sync_once();
  limits::LimitReporter limits(root, req.limit_log_interval ? std::chrono::seconds(req.limit_log_interval)
                                                            : limits::kDefaultLogInterval);
  limits.tick();  // the baseline: drops from here on are reported
  auto next_sample = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  spdlog::warn("follower for {}: SPD mirror live ({} policies)", req.dev, mirror->model().size());
  while (!g_stop) {
    bool changed = mirror->poll_once(500);
    if (auto now = std::chrono::steady_clock::now(); now >= next_sample) {
      limits.tick();
      next_sample = now + std::chrono::seconds(1);
    }
    devices = store.list_here(root);
    if (devices.empty()) break;  // everything detached
    spd::NatConfig now = inside_of(devices);
    // A device was attached with other inside prefixes, or the gateway's addresses changed.
    if (now.inside != nat.inside || now.local != nat.local) {
      mirror.reset();
      nat = now;
      mirror = std::make_unique<spd::SpdMirror>(spd::SpdMapFds::from_pins(root), nat);
      mirror->sync_once();
      changed = true;
    }
    if (!changed) continue;
    for (const auto& [i, s] : devices) {
      AttachRequest again = req;
      again.dev = s.dev;
      again.settings.mode = s.mode == "route" ? ModeRequest::Route : ModeRequest::Policy;
      again.settings.inside.clear();
      for (const auto& p : s.inside) again.settings.inside.push_back(spd::parse_prefix(p));
      again.sync_spd = false;
      again.spawn_follower = false;
      again.only_if_attached = true;
      again.settings.allow_empty = true;  // policies may all go away and come back (IKE rekey, restart)
      try {
        attach(again);
      } catch (const std::exception& e) {
        spdlog::error("follower: re-planning {} after an SPD change failed: {}", s.dev, e.what());
      }
    }
  }
  return 0;
}

}  // namespace ipsnat::attach
