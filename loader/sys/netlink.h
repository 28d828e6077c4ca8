#pragma once
// A blocking libmnl socket for request/ack and dump exchanges (rtnetlink, NETLINK_XFRM).
#include <libmnl/libmnl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ipsnat::sys {

// A message under construction, in a buffer large enough for any request ipsnat sends.
class NlRequest {
 public:
  NlRequest(uint16_t type, uint16_t flags);
  // A message written by a pure builder (e.g. xfrm::build_policy_msg) into the request's buffer.
  static NlRequest built(uint16_t flags, const std::function<nlmsghdr*(char* buf, size_t size)>& build);
  nlmsghdr* hdr() { return hdr_; }
  template <typename T>
  T* put_header() {
    return static_cast<T*>(mnl_nlmsg_put_extra_header(hdr_, sizeof(T)));
  }

 private:
  NlRequest();
  std::vector<char> buf_;
  nlmsghdr* hdr_;
};

// Attribute walks (libmnl's mnl_attr_for_each macros do not compile as C++).
template <typename F>
void for_each_attr(const nlmsghdr* nlh, size_t offset, F&& f) {
  auto* a = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
  // nlmsg_len, not mnl_nlmsg_get_payload_tail (nlmsg_len rounded up to 4): a buffer's last
  // message may end unaligned.
  auto* tail = reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len;
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    f(a);
    a = mnl_attr_next(a);
  }
}
template <typename F>
void for_each_nested(const nlattr* nest, F&& f) {
  auto* a = static_cast<const nlattr*>(mnl_attr_get_payload(nest));
  auto* tail = reinterpret_cast<const char*>(nest) + mnl_attr_get_len(nest);
  while (mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<const char*>(a)))) {
    f(a);
    a = mnl_attr_next(a);
  }
}

class NlSocket {
 public:
  explicit NlSocket(int protocol);
  ~NlSocket();
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;

  // Sends a request with NLM_F_ACK and waits for the ack; returns 0 or -errno from the kernel.
  int request(NlRequest& req);
  // Sends a request; calls `on_msg` for each reply (dumps and single answers). Returns 0 or -errno.
  int exchange(NlRequest& req, const std::function<void(const nlmsghdr*)>& on_msg);

 private:
  mnl_socket* nl_;
  uint32_t portid_;
  uint32_t seq_;
};

}  // namespace ipsnat::sys
