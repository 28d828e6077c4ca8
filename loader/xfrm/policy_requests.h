#pragma once
// XFRM policies over NETLINK_XFRM: a one-shot dump into spd::Policy, and add/delete of single
// policies (ipsnat's companion policies). The live mirror (events, resync) is loader/mirror's.
#include <optional>
#include <vector>

#include "spd/policy.h"

namespace ipsnat::xfrm {

// Every policy of the namespace except per-socket ones, in dump order.
std::vector<spd::Policy> dump_policies();
// Adds a policy; fails with -EEXIST when one with the same selector, direction, mark and if_id
// exists (never replaces another tool's policy). Returns 0 or -errno.
// update: the policy is ipsnat's already (recorded): XFRM_MSG_UPDPOLICY.
int add_policy(const spd::Policy& p, bool update = false);
// Deletes the policy with this selector, direction, mark and if_id (by_index: with p's kernel
// index, direction, mark and if_id). Returns 0 or -errno.
int delete_policy(const spd::Policy& p, bool by_index = false);
// The kernel's policy with p's index (when p has one, else p's selector), direction, mark and
// if_id; nullopt when there is none.
std::optional<spd::Policy> get_policy(const spd::Policy& p);
// Whether kernel policy k is still the one ipsnat added as p: same selector, priority and
// templates (an IKE daemon that replaces a policy keeps its index but not its templates).
bool is_same_policy(const spd::Policy& k, const spd::Policy& p);

}  // namespace ipsnat::xfrm
