#include "attach/applier.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <array>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/rtnl.h"
#include "sys/tc_hook.h"
#include "sys/xdp_hook.h"
#include "xfrm/policy_requests.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::attach {
namespace {

void check(int err, const Step& s) {
  if (err == -EEXIST)
    throw UserError("cannot add \"" + describe(s) + "\": it exists already and is not ipsnat's",
                    "remove it or choose another --table / --rule-priority");
  if (err) throw SysError(describe(s), err);
}

bool gone(int err) { return err == -ENOENT || err == -ESRCH || err == -ENODEV || err == -EADDRNOTAVAIL; }

sys::TcDirection direction(Hook h) { return h == Hook::TcIngress ? sys::TcDirection::kIngress : sys::TcDirection::kEgress; }

void destroy_clsact(int ifindex, const char* why) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
  int err = bpf_tc_hook_destroy(&hook);
  if (err && err != -ENOENT && err != -EINVAL) throw SysError(why, err);
}

bool has_step(const AttachState& st, const Step& s) {
  return std::any_of(st.steps.begin(), st.steps.end(), [&](const Step& r) { return step_key(r) == step_key(s); });
}

// The program an attach pinned under the name prog: an fd, or -1.
int pinned_program(const AttachState& st, const std::string& prog) {
  for (const auto& path : st.prog_pins)
    if (path.size() > prog.size() && path.ends_with("/" + prog)) return bpf_obj_get(path.c_str());
  return -1;
}

// Removes ipsnat's companion policy p: the kernel's policy of p's index (recorded at creation;
// else p's selector), and only while it still is the one ipsnat added. Another one in its place
// (an IKE daemon's, re-added or replaced) is never touched.
int remove_own_policy(const spd::Policy& p) {
  auto k = xfrm::get_policy(p);
  if (!k || !xfrm::is_same_policy(*k, p)) return -ENOENT;
  return xfrm::delete_policy(*k, true);
}

// A recorded companion step is unchanged when only the kernel index (known once added) differs.
bool same_policy_step(const Step& recorded, const Step& planned) {
  auto* r = std::get_if<XfrmPolicyStep>(&recorded);
  auto* p = std::get_if<XfrmPolicyStep>(&planned);
  if (!r || !p) return false;
  XfrmPolicyStep q = *p;
  q.policy.index = r->policy.index;
  return describe(recorded) == describe(Step{q});
}

}  // namespace

void Applier::add(const Step& s, const ProgFd& prog_fd, bool ours) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TcStep>) {
          if (v.hook == Hook::Xdp) {
            sys::XdpHook(st_.ifindex, v.prog).attach(prog_fd(v.prog), st_.dev);
            return;
          }
          if (!v.dev.empty()) return add_shared(v, prog_fd(v.prog));
          bool seen = clsact_not_ours(st_.clsact_created, st_.ifindex);
          sys::TcHook(st_.ifindex, direction(v.hook)).attach(prog_fd(v.prog), seen);
        } else if constexpr (std::is_same_v<T, RuleStep>) {
          int err = sys::add_rule(v);
          if (ours && err == -EEXIST) err = 0;
          check(err, s);
        } else if constexpr (std::is_same_v<T, RouteStep>) {
          check(sys::add_route(v, v.lwt_prog.empty() ? -1 : prog_fd(v.lwt_prog), ours), s);
        } else {
          check(xfrm::add_policy(v.policy, ours), s);
        }
      },
      s);
}

void Applier::add_shared(const TcStep& v, int prog_fd) {
  int ifindex = static_cast<int>(if_nametoindex(v.dev.c_str()));
  if (!ifindex) throw SysError("tc hook on " + v.dev, ENODEV);
  bool seen = clsact_not_ours(st_.lo_clsact_created, ifindex);
  sys::TcHook(ifindex, direction(v.hook)).attach(prog_fd, seen);
}

bool Applier::clsact_not_ours(bool& created, int ifindex) {
  if (created) return false;
  if (sys::has_clsact(ifindex)) return true;
  created = true;  // recorded before the qdisc exists: see state.h
  save();
  return false;
}

int Applier::remove_shared(const TcStep& v) {
  int ifindex = static_cast<int>(if_nametoindex(v.dev.c_str()));
  if (!ifindex) return -ENODEV;
  // Another attach in this namespace still uses the hook: it takes over with its own program
  // (this one reads this attach's maps) and, when this attach created it, the qdisc.
  for (auto& [other_id, other] : store_.list_netns()) {
    if (other_id == id_ || !has_step(other, v)) continue;
    if (Fd fd(pinned_program(other, v.prog)); fd) sys::TcHook(ifindex, direction(v.hook)).attach(fd.get());
    if (st_.lo_clsact_created) {
      other.lo_clsact_created = true;
      store_.save(other_id, other);
      st_.lo_clsact_created = false;
      save();
    }
    return 0;
  }
  sys::TcHook(ifindex, direction(v.hook)).detach();
  if (st_.lo_clsact_created && sys::foreign_tc_filters(ifindex, sys::TcHook::kPriority) == 0)
    destroy_clsact(ifindex, ("removing the clsact qdisc ipsnat created on " + v.dev).c_str());
  st_.lo_clsact_created = false;
  save();
  return 0;
}

void Applier::remove(const Step& s) {
  int err = std::visit(
      [&](const auto& v) -> int {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TcStep>) {
          if (v.hook == Hook::Xdp) {
            sys::XdpHook(st_.ifindex, v.prog).detach();
            return 0;
          }
          if (!v.dev.empty()) return remove_shared(v);
          sys::TcHook(st_.ifindex, direction(v.hook)).detach();
          return 0;
        } else if constexpr (std::is_same_v<T, RuleStep>) {
          return sys::delete_rule(v);
        } else if constexpr (std::is_same_v<T, RouteStep>) {
          return sys::delete_route(v);
        } else {
          return remove_own_policy(v.policy);
        }
      },
      s);
  if (err && !gone(err)) throw SysError("removing " + describe(s), err);
}

void Applier::apply(const AttachPlan& plan, const ProgFd& prog_fd) {
  std::vector<std::string> wanted;
  for (const auto& s : plan.steps) wanted.push_back(step_key(s));
  // Stale steps (newest first): policies and hooks before the plan is applied, so a changed one
  // can be re-added; routes and rules after it, so routes that move between the main table and
  // ipsnat's (docs/attach.md "Where the routes go") are in their new place before they leave the
  // old one: no packet meets neither. A route's or rule's key names its table and prefix or
  // priority, so a stale one never stands in the way of a planned one.
  auto remove_stale = [&](bool routing) {
    for (size_t i = st_.steps.size(); i-- > 0;) {
      const Step& s = st_.steps[i];
      bool is_routing = std::holds_alternative<RouteStep>(s) || std::holds_alternative<RuleStep>(s);
      if (is_routing != routing) continue;
      if (std::find(wanted.begin(), wanted.end(), step_key(s)) != wanted.end()) continue;
      remove(s);
      st_.steps.erase(st_.steps.begin() + static_cast<long>(i));
      save();
    }
  };
  remove_stale(false);
  for (const auto& s : plan.steps) {
    auto key = step_key(s);
    auto it = std::find_if(st_.steps.begin(), st_.steps.end(), [&](const Step& r) { return step_key(r) == key; });
    bool ours = it != st_.steps.end();
    // An unchanged companion policy is left alone: rewriting it would be an SPD event, and the
    // host process re-plans on SPD events.
    if (ours && same_policy_step(*it, s)) continue;
    uint32_t known_index = ours && std::holds_alternative<XfrmPolicyStep>(*it)
                               ? std::get<XfrmPolicyStep>(*it).policy.index
                               : 0;
    if (ours) {
      *it = s;
    } else {
      st_.steps.push_back(s);
    }
    save();
    try {
      add(s, prog_fd, ours);
    } catch (...) {
      if (!ours) {
        st_.steps.pop_back();
        save();
      }
      throw;
    }
    // The kernel's index of the companion, so detach removes this very policy and nothing an
    // IKE daemon put there later (an update in place keeps the index).
    if (auto* x = std::get_if<XfrmPolicyStep>(&s)) {
      spd::Policy sel = x->policy;
      sel.index = 0;
      auto k = xfrm::get_policy(sel);
      auto& rec = std::get<XfrmPolicyStep>(ours ? *it : st_.steps.back());
      rec.policy.index = k ? k->index : known_index;
      save();
    }
  }
  remove_stale(true);
}

void Applier::remove_all() {
  while (!st_.steps.empty()) {
    remove(st_.steps.back());
    st_.steps.pop_back();
    save();
  }
  bool device_exists = if_indextoname(static_cast<unsigned>(st_.ifindex), std::array<char, IF_NAMESIZE>{}.data());
  if (st_.clsact_created && device_exists && sys::foreign_tc_filters(st_.ifindex, sys::TcHook::kPriority) == 0) {
    destroy_clsact(st_.ifindex, "removing the clsact qdisc ipsnat created");
    st_.clsact_created = false;
    save();
  }
}

}  // namespace ipsnat::attach
