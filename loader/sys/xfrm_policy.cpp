#include "sys/xfrm_policy.h"

#include <linux/xfrm.h>

#include <variant>

#include "sys/netlink.h"
#include "util/error.h"
#include "xfrm/policy_msg.h"

namespace ipsnat::xfrm {

// Messages are parsed and built by xfrm/policy_msg (pure, unit-tested and fuzzed); this file
// only exchanges them with the kernel.
std::vector<spd::Policy> dump_policies() {
  NlSocket nl(NETLINK_XFRM);
  NlRequest req(XFRM_MSG_GETPOLICY, NLM_F_DUMP);
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
  NlSocket nl(NETLINK_XFRM);
  spd::Policy fresh = p;
  fresh.index = 0;  // the kernel assigns it (a copied index of another direction is refused)
  auto req = NlRequest::built(NLM_F_CREATE | (update ? 0 : NLM_F_EXCL), [&](char* buf, size_t size) {
    return build_policy_msg(buf, size, update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, fresh);
  });
  return nl.request(req);
}

int delete_policy(const spd::Policy& p) {
  NlSocket nl(NETLINK_XFRM);
  auto req = NlRequest::built(0, [&](char* buf, size_t size) { return build_delpolicy_msg(buf, size, p, false); });
  return nl.request(req);
}

}  // namespace ipsnat::xfrm
