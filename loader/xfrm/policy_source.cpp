#include "xfrm/policy_source.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>
#include <vector>

#include "util/error.h"
#include "xfrm/policy_msg.h"

namespace ipsnat::xfrm {

namespace {
constexpr size_t kBufSize = 1 << 16;
}

PolicySource::PolicySource(int rcvbuf) {
  nl_ = mnl_socket_open(NETLINK_XFRM);
  if (!nl_) throw SysError("opening NETLINK_XFRM socket", errno);
  if (rcvbuf > 0 && setsockopt(mnl_socket_get_fd(nl_), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
    int e = errno;
    mnl_socket_close(nl_);
    throw SysError("setting SO_RCVBUF", e);
  }
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) != 0) {
    int e = errno;
    mnl_socket_close(nl_);
    throw SysError("binding NETLINK_XFRM socket", e);
  }
  portid_ = mnl_socket_get_portid(nl_);
  seq_ = static_cast<uint32_t>(time(nullptr));
  fcntl(mnl_socket_get_fd(nl_), F_SETFL, fcntl(mnl_socket_get_fd(nl_), F_GETFL) | O_NONBLOCK);
}

PolicySource::~PolicySource() {
  if (nl_) mnl_socket_close(nl_);
}

int PolicySource::fd() const { return mnl_socket_get_fd(nl_); }

bool PolicySource::handle(const char* buf, size_t len, spd::SpdModel& model, Drained& d, uint32_t dump_seq,
                          bool& done) {
  const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(buf);
  int remaining = static_cast<int>(len);
  while (nlmsg_ok(nlh, remaining)) {
    bool ours = dump_seq && nlh->nlmsg_seq == dump_seq && nlh->nlmsg_pid == portid_;
    if (ours && (nlh->nlmsg_flags & NLM_F_DUMP_INTR)) return false;  // the SPD changed under the dump
    if (nlh->nlmsg_type == NLMSG_DONE) {
      if (ours) done = true;
    } else if (nlh->nlmsg_type == NLMSG_ERROR) {
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (ours && err->error) throw SysError("dumping XFRM policies", -err->error);
    } else if (auto ev = parse_policy_msg(nlh)) {
      d.events++;
      d.changed |= model.apply(*ev, ours ? spd::SpdModel::From::Dump : spd::SpdModel::From::Event);
    }
    nlh = mnl_nlmsg_next(nlh, &remaining);
  }
  return true;
}

void PolicySource::resync(spd::SpdModel& model) {
  std::vector<char> buf(kBufSize);
  for (int attempt = 0;; attempt++) {
    if (attempt == 50) throw std::runtime_error("XFRM policy dump kept being interrupted");
    // Subscribing first (again after an overrun is harmless) means nothing falls between
    // the dump and the events.
    // XFRMNLGRP_EXPIRE carries XFRM_MSG_POLEXPIRE: a policy's hard lifetime ending deletes it.
    for (unsigned grp : {XFRMNLGRP_POLICY, XFRMNLGRP_EXPIRE})
      if (mnl_socket_setsockopt(nl_, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp)) != 0)
        throw SysError("joining XFRM notification group " + std::to_string(grp), errno);
    // Whatever is queued predates the dump: drop it.
    while (recv(fd(), buf.data(), buf.size(), MSG_DONTWAIT) > 0 || errno == ENOBUFS) {
    }
    model.clear();
    nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
    nlh->nlmsg_type = XFRM_MSG_GETPOLICY;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = ++seq_;
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) throw SysError("requesting XFRM policy dump", errno);
    uint32_t dump_seq = seq_;
    bool done = false, restart = false;
    Drained d;
    while (!done && !restart) {
      ssize_t n = recv(fd(), buf.data(), buf.size(), 0 | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd(), POLLIN, 0};
        if (poll(&p, 1, 5000) == 0) throw std::runtime_error("XFRM policy dump timed out");
        continue;
      }
      if (n < 0 && errno == ENOBUFS) {
        restart = true;
        break;
      }
      if (n < 0) throw SysError("reading XFRM policy dump", errno);
      restart = !handle(buf.data(), static_cast<size_t>(n), model, d, dump_seq, done);
    }
    if (!restart) return;
    spdlog::info("xfrm: policy dump interrupted, restarting");
  }
}

PolicySource::Drained PolicySource::drain(spd::SpdModel& model) {
  Drained d;
  std::vector<char> buf(kBufSize);
  for (;;) {
    ssize_t n = recv(fd(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return d;
    if (n < 0 && errno == ENOBUFS) {
      d.overrun = true;
      return d;
    }
    if (n < 0) throw SysError("reading XFRM notifications", errno);
    bool done = false;
    handle(buf.data(), static_cast<size_t>(n), model, d, 0, done);
  }
}

spd::SpdModel PolicySource::read_once() {
  PolicySource src;
  spd::SpdModel m;
  src.resync(m);
  return m;
}

}  // namespace ipsnat::xfrm
