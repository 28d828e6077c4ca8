#pragma once
// The kernel's own SPD decisions, for netns tests: a real packet sent from the namespace and the
// XFRM_MSG_ACQUIRE it raises (the policy the kernel chose), and a mirror polled until its model
// equals a fresh dump.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mirror/mirror.h"
#include "spd/policy.h"
#include "support/netns_guard.h"

struct mnl_socket;

namespace ipsnat::test {

// Listens for XFRM_MSG_ACQUIRE in the current namespace.
class AcquireListener {
 public:
  AcquireListener();
  ~AcquireListener();
  AcquireListener(const AcquireListener&) = delete;
  AcquireListener& operator=(const AcquireListener&) = delete;
  // The index of the policy the kernel matched for a flow from f.saddr to f.daddr.
  std::optional<uint32_t> wait(const spd::Flow4& f, int timeout_ms);

 private:
  mnl_socket* nl_ = nullptr;
};

// Sends one packet of the flow (UDP datagram, TCP SYN by connect, ICMP echo by a ping socket)
// with the flow's mark (SO_MARK) from a local source in the current namespace. Returns 0 or
// the errno of the send (EPERM: a
// block policy).
int send_flow(const spd::Flow4& f);
// Removes every SA, larval ones included (XFRM_MSG_FLUSHSA): the next packet raises an acquire.
void flush_states();
// Writes `ip -batch` lines and runs them in the namespace; `force` goes on past failing lines.
void ip_batch(const NetnsGuard& ns, const std::vector<std::string>& lines, bool force = false);
// Polls the mirror until its model holds what a fresh dump of the kernel's SPD holds.
bool converge(mirror::SpdMirror& mirror, int timeout_ms = 10000);

}  // namespace ipsnat::test
