#include "support/spd_kernel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/ipsec.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <tuple>

#include "xfrm/policy_source.h"

namespace ipsnat::test {

using spd::Flow4;

AcquireListener::AcquireListener() {
  nl_ = mnl_socket_open(NETLINK_XFRM);
  if (!nl_ || mnl_socket_bind(nl_, 1u << (XFRMNLGRP_ACQUIRE - 1), MNL_SOCKET_AUTOPID) != 0)
    throw std::runtime_error("cannot listen for XFRM acquires");
}

AcquireListener::~AcquireListener() { mnl_socket_close(nl_); }

std::optional<uint32_t> AcquireListener::wait(const Flow4& f, int timeout_ms) {
  char buf[8192];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return std::nullopt;
    pollfd p{mnl_socket_get_fd(nl_), POLLIN, 0};
    if (poll(&p, 1, left) <= 0) return std::nullopt;
    ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
    if (n <= 0) continue;
    const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(buf);
    int rem = static_cast<int>(n);
    while (mnl_nlmsg_ok(nlh, rem)) {
      if (nlh->nlmsg_type == XFRM_MSG_ACQUIRE) {
        const auto* a = static_cast<const xfrm_user_acquire*>(mnl_nlmsg_get_payload(nlh));
        if (a->sel.saddr.a4 == f.saddr && a->sel.daddr.a4 == f.daddr && a->sel.proto == f.proto)
          return a->policy.index;
      }
      nlh = mnl_nlmsg_next(nlh, &rem);
    }
  }
}

int send_flow(const Flow4& f) {
  int type = f.proto == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
  int proto = f.proto == IPPROTO_ICMP ? IPPROTO_ICMP : 0;
  int s = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (s < 0) throw std::runtime_error("cannot open a socket for " + f.str());
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (f.mark && setsockopt(s, SOL_SOCKET, SO_MARK, &f.mark, sizeof(f.mark)) != 0) {
    close(s);
    throw std::runtime_error("cannot set SO_MARK for " + f.str());
  }
  uint16_t sport = f.proto == IPPROTO_ICMP ? 0 : f.sport;
  sockaddr_in src{AF_INET, htons(sport), {f.saddr}, {}};
  sockaddr_in dst{AF_INET, htons(f.proto == IPPROTO_ICMP ? 0 : f.dport), {f.daddr}, {}};
  if (bind(s, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
    int e = errno;
    close(s);
    throw std::runtime_error("cannot bind the source of " + f.str() + ": " + std::to_string(e));
  }
  int rc;
  if (f.proto == IPPROTO_TCP) {
    rc = connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
    if (rc != 0 && errno == EINPROGRESS) rc = 0;
  } else if (f.proto == IPPROTO_ICMP) {
    icmphdr h{};
    h.type = static_cast<uint8_t>(f.sport);
    h.code = static_cast<uint8_t>(f.dport);
    rc = static_cast<int>(sendto(s, &h, sizeof(h), 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)));
  } else {
    rc = static_cast<int>(sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)));
  }
  int e = rc < 0 ? errno : 0;
  close(s);
  return e == EAGAIN ? 0 : e;  // EAGAIN: no SA yet (the acquire is raised)
}

void flush_states() {
  mnl_socket* nl = mnl_socket_open(NETLINK_XFRM);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) != 0) {
    if (nl) mnl_socket_close(nl);
    throw std::runtime_error("cannot open NETLINK_XFRM");
  }
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = XFRM_MSG_FLUSHSA;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  auto* fl = static_cast<xfrm_usersa_flush*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_usersa_flush)));
  fl->proto = IPSEC_PROTO_ANY;
  bool ok = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0 && mnl_socket_recvfrom(nl, buf, sizeof(buf)) > 0;
  mnl_socket_close(nl);
  if (!ok) throw std::runtime_error("XFRM_MSG_FLUSHSA failed");
}

void ip_batch(const NetnsGuard& ns, const std::vector<std::string>& lines, bool force) {
  std::string path = "/tmp/" + ns.name() + ".batch";
  {
    std::ofstream f(path);
    for (const auto& l : lines) f << l << "\n";
  }
  if (force)
    std::system(("nsenter --net=/run/netns/" + ns.name() + " ip -force -batch " + path + " 2>/dev/null").c_str());
  else
    ns.sh("ip -batch " + path);
  unlink(path.c_str());
}

namespace {
using Summary = std::map<uint32_t, std::tuple<uint8_t, std::string, std::string, uint32_t, size_t, uint32_t>>;

Summary summarize(const spd::SpdModel& m) {
  Summary s;
  for (const auto& [i, p] : m.by_index())
    s[i] = {static_cast<uint8_t>(p.dir), p.sel.src.str(), p.sel.dst.str(), p.priority, p.tmpls.size(),
            p.tmpls.empty() ? 0 : p.tmpls[0].reqid};
  return s;
}
}  // namespace

bool converge(mirror::SpdMirror& mirror, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    while (mirror.poll_once(50)) {
    }
    if (summarize(mirror.model()) == summarize(xfrm::PolicySource::read_once())) return true;
  }
  return false;
}

}  // namespace ipsnat::test
