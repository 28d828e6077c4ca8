#include "attach/applier.h"

#include <bpf/libbpf.h>
#include <net/if.h>

#include <array>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sys/rtnl.h"
#include "sys/tc_hook.h"
#include "sys/xdp_hook.h"
#include "sys/xfrm_policy.h"
#include "util/error.h"

namespace ipsnat::attach {
namespace {

void check(int err, const Step& s) {
  if (err == -EEXIST)
    throw UserError("cannot add \"" + describe(s) + "\": it exists already and is not ipsnat's",
                    "remove it or choose another --table / --rule-priority");
  if (err) throw SysError(describe(s), err);
}

bool gone(int err) { return err == -ENOENT || err == -ESRCH || err == -ENODEV || err == -EADDRNOTAVAIL; }

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
            XdpHook(st_.ifindex, v.prog).attach(prog_fd(v.prog), st_.dev);
            return;
          }
          if (!st_.clsact_created && !rtnl::has_clsact(st_.ifindex)) {
            st_.clsact_created = true;  // recorded before the qdisc exists: see state.h
            save();
          }
          TcHook(st_.ifindex, v.hook == Hook::TcIngress ? TcDirection::kIngress : TcDirection::kEgress)
              .attach(prog_fd(v.prog));
        } else if constexpr (std::is_same_v<T, RuleStep>) {
          int err = rtnl::add_rule(v);
          if (ours && err == -EEXIST) err = 0;
          check(err, s);
        } else if constexpr (std::is_same_v<T, RouteStep>) {
          check(rtnl::add_route(v, v.lwt_prog.empty() ? -1 : prog_fd(v.lwt_prog), ours), s);
        } else {
          check(xfrm::add_policy(v.policy, ours), s);
        }
      },
      s);
}

void Applier::remove(const Step& s) {
  int err = std::visit(
      [&](const auto& v) -> int {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, TcStep>) {
          if (v.hook == Hook::Xdp) {
            XdpHook(st_.ifindex, v.prog).detach();
            return 0;
          }
          TcHook(st_.ifindex, v.hook == Hook::TcIngress ? TcDirection::kIngress : TcDirection::kEgress).detach();
          return 0;
        } else if constexpr (std::is_same_v<T, RuleStep>) {
          return rtnl::delete_rule(v);
        } else if constexpr (std::is_same_v<T, RouteStep>) {
          return rtnl::delete_route(v);
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
  // Stale steps first (newest first), so a changed route or policy can be re-added.
  for (size_t i = st_.steps.size(); i-- > 0;) {
    if (std::find(wanted.begin(), wanted.end(), step_key(st_.steps[i])) != wanted.end()) continue;
    remove(st_.steps[i]);
    st_.steps.erase(st_.steps.begin() + static_cast<long>(i));
    save();
  }
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
}

void Applier::remove_all() {
  while (!st_.steps.empty()) {
    remove(st_.steps.back());
    st_.steps.pop_back();
    save();
  }
  bool device_exists = if_indextoname(static_cast<unsigned>(st_.ifindex), std::array<char, IF_NAMESIZE>{}.data());
  if (st_.clsact_created && device_exists && rtnl::foreign_tc_filters(st_.ifindex, TcHook::kPriority) == 0) {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = st_.ifindex;
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int err = bpf_tc_hook_destroy(&hook);
    if (err && err != -ENOENT && err != -EINVAL) throw SysError("removing the clsact qdisc ipsnat created", err);
    st_.clsact_created = false;
    save();
  }
}

}  // namespace ipsnat::attach
