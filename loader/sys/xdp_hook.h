#pragma once
#include <cstdint>
#include <string>

namespace ipsnat::sys {

// ipsnat's program on a device's native (driver) XDP hook. Never generic XDP: that runs on every
// skb the device receives, including the packets the kernel decrypted and re-injected on it.
class XdpHook {
 public:
  XdpHook(int ifindex, std::string prog_name) : ifindex_(ifindex), prog_name_(std::move(prog_name)) {}

  // Attaches or replaces ipsnat's program. Throws UserError when another program is on the hook
  // or the driver has no native XDP.
  void attach(int prog_fd, const std::string& dev) const;
  // Removes the program if it is ipsnat's (by name); returns false when there was none.
  bool detach() const;

 private:
  uint32_t ours_or_throw(const std::string& dev) const;  // 0: hook empty
  int ifindex_;
  std::string prog_name_;
};

}  // namespace ipsnat::sys
