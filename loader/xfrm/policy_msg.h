#pragma once
// XFRM netlink policy messages <-> the SPD model. Pure: bytes in, events out (no socket), so the
// unit tier can feed it messages built with libmnl.
#include <linux/netlink.h>

#include <optional>

#include "spd/model.h"

namespace ipsnat::xfrm {

// mnl_nlmsg_ok without its signed comparison: libmnl compares (int)nlmsg_len <= remaining, so a
// length of 2^31 or more passes and mnl_nlmsg_next then jumps gigabytes ahead (found by
// tests/fuzz/fuzz_xfrm_policy). Walk a receive buffer with this, then mnl_nlmsg_next.
bool nlmsg_ok(const nlmsghdr* nlh, int remaining);

// NEWPOLICY / UPDPOLICY / DELPOLICY / FLUSHPOLICY / POLEXPIRE (hard: a delete) -> event. std::nullopt for other message types
// and for per-socket policies (dir >= XFRM_POLICY_MAX). Throws std::runtime_error when the
// message is truncated or malformed.
std::optional<spd::PolicyEvent> parse_policy_msg(const nlmsghdr* nlh);

// Builds a NEWPOLICY (or UPDPOLICY) message for `p` into buf (for tests and for tools); returns
// the message.
nlmsghdr* build_policy_msg(char* buf, size_t size, uint16_t type, const spd::Policy& p);
nlmsghdr* build_delpolicy_msg(char* buf, size_t size, const spd::Policy& p, bool by_index);
nlmsghdr* build_flush_msg(char* buf, size_t size, spd::PolicyType type);
// XFRM_MSG_POLEXPIRE for `p`: hard (the kernel deleted it) or soft.
nlmsghdr* build_polexpire_msg(char* buf, size_t size, const spd::Policy& p, bool hard);

}  // namespace ipsnat::xfrm
