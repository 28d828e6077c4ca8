#include "xfrm/policy_requests.h"

#include <linux/xfrm.h>

#include <cerrno>
#include <variant>

#include "sys/netlink.h"
#include "util/error.h"
#include "xfrm/policy_msg.h"

namespace ipsnat::xfrm {

// Messages are parsed and built by xfrm/policy_msg (pure, unit-tested and fuzzed); this file
// only exchanges them with the kernel.
std::vector<spd::Policy> dump_policies() {
  sys::NlSocket nl(NETLINK_XFRM);
  sys::NlRequest req(XFRM_MSG_GETPOLICY, NLM_F_DUMP);
  std::vector<spd::Policy> out;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != XFRM_MSG_NEWPOLICY) return;
    auto event = parse_policy_msg(nlh);
    if (!event) return;  // per-socket
    out.push_back(std::move(std::get<spd::PolicyUpsert>(*event).policy));
  });
  if (err) throw SysError("dumping XFRM policies", err);
  return out;
}

int add_policy(const spd::Policy& p, bool update) {
  sys::NlSocket nl(NETLINK_XFRM);
  spd::Policy fresh = p;
  fresh.index = 0;  // the kernel assigns it (a copied index of another direction is refused)
  auto req = sys::NlRequest::built(NLM_F_CREATE | (update ? 0 : NLM_F_EXCL), [&](char* buf, size_t size) {
    return build_policy_msg(buf, size, update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, fresh);
  });
  return nl.request(req);
}

int delete_policy(const spd::Policy& p, bool by_index) {
  sys::NlSocket nl(NETLINK_XFRM);
  auto req = sys::NlRequest::built(0, [&](char* buf, size_t size) { return build_delpolicy_msg(buf, size, p, by_index); });
  return nl.request(req);
}

std::optional<spd::Policy> get_policy(const spd::Policy& p) {
  sys::NlSocket nl(NETLINK_XFRM);
  // XFRM_MSG_GETPOLICY takes the same xfrm_userpolicy_id as a delete.
  auto req = sys::NlRequest::built(0, [&](char* buf, size_t size) {
    nlmsghdr* nlh = build_delpolicy_msg(buf, size, p, p.index != 0);
    nlh->nlmsg_type = XFRM_MSG_GETPOLICY;
    return nlh;
  });
  std::optional<spd::Policy> out;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != XFRM_MSG_NEWPOLICY) return;
    auto event = parse_policy_msg(nlh);
    if (event)
      if (auto* u = std::get_if<spd::PolicyUpsert>(&*event)) out = u->policy;
  });
  if (err == -ENOENT) return std::nullopt;
  if (err) throw SysError("reading an XFRM policy", err);
  return out;
}

bool is_same_policy(const spd::Policy& k, const spd::Policy& p) {
  spd::Policy a = k;
  a.index = p.index;
  return a.same_key(p) && a.describe() == p.describe();
}

}  // namespace ipsnat::xfrm
