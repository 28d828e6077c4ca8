#include "sys/netlink.h"

#include <cerrno>
#include <ctime>

#include "util/error.h"

namespace ipsnat::sys {

NlRequest::NlRequest() : buf_(MNL_SOCKET_BUFFER_SIZE * 2, 0), hdr_(mnl_nlmsg_put_header(buf_.data())) {}

NlRequest::NlRequest(uint16_t type, uint16_t flags) : NlRequest() {
  hdr_->nlmsg_type = type;
  hdr_->nlmsg_flags = NLM_F_REQUEST | flags;
}

NlRequest NlRequest::built(uint16_t flags, const std::function<nlmsghdr*(char* buf, size_t size)>& build) {
  NlRequest req;
  req.hdr_ = build(req.buf_.data(), req.buf_.size());
  req.hdr_->nlmsg_flags = NLM_F_REQUEST | flags;
  return req;
}

NlSocket::NlSocket(int protocol) : nl_(mnl_socket_open2(protocol, SOCK_CLOEXEC)) {
  if (!nl_) throw SysError("opening netlink socket", errno);
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl_);
    throw SysError("binding netlink socket", err);
  }
  portid_ = mnl_socket_get_portid(nl_);
  seq_ = static_cast<uint32_t>(time(nullptr));
  // Extended acks give the kernel's reason text; harmless when unsupported.
  int one = 1;
  mnl_socket_setsockopt(nl_, NETLINK_EXT_ACK, &one, sizeof(one));
}

NlSocket::~NlSocket() { mnl_socket_close(nl_); }

int NlSocket::request(NlRequest& req) {
  req.hdr()->nlmsg_flags |= NLM_F_ACK;
  return exchange(req, [](const nlmsghdr*) {});
}

namespace {
struct CbData {
  const std::function<void(const nlmsghdr*)>* on_msg;
};
int data_cb(const nlmsghdr* nlh, void* data) {
  (*static_cast<CbData*>(data)->on_msg)(nlh);
  return MNL_CB_OK;
}
}  // namespace

int NlSocket::exchange(NlRequest& req, const std::function<void(const nlmsghdr*)>& on_msg) {
  nlmsghdr* nlh = req.hdr();
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return -errno;
  std::vector<char> buf(32768);  // a dump batch fits
  CbData data{&on_msg};
  bool needs_ack_or_done = (nlh->nlmsg_flags & (NLM_F_ACK | NLM_F_DUMP)) != 0;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n < 0) return -errno;
    int r = mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid_, data_cb, &data);
    if (r < 0) return -errno;
    if (r == MNL_CB_STOP) return 0;
    if (!needs_ack_or_done) return 0;
  }
}

}  // namespace ipsnat::sys
