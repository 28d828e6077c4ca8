#pragma once
// XFRM netlink policy messages <-> the SPD model. Pure: bytes in, events out (no socket), so the
// unit tier can feed it messages built with libmnl.
#include <linux/netlink.h>

#include <optional>

#include "spd/model.h"

namespace ipsnat::xfrm {

// NEWPOLICY / UPDPOLICY / DELPOLICY / FLUSHPOLICY -> event. std::nullopt for other message types
// and for per-socket policies (dir >= XFRM_POLICY_MAX). Throws std::runtime_error when the
// message is truncated or malformed.
std::optional<spd::PolicyEvent> parse_policy_msg(const nlmsghdr* nlh);

// Builds a NEWPOLICY (or UPDPOLICY) message for `p` into buf (for tests and for tools); returns
// the message.
nlmsghdr* build_policy_msg(char* buf, size_t size, uint16_t type, const spd::Policy& p);
nlmsghdr* build_delpolicy_msg(char* buf, size_t size, const spd::Policy& p, bool by_index);
nlmsghdr* build_flush_msg(char* buf, size_t size, spd::PolicyType type);

}  // namespace ipsnat::xfrm
