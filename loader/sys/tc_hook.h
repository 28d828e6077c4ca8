#pragma once
#include <cstdint>

namespace ipsnat::sys {

enum class TcDirection { kIngress, kEgress };

// ipsnat's own filter on a device's clsact hook, identified by a fixed handle and priority so
// that detach removes exactly what attach added and never another tool's filters.
class TcHook {
 public:
  static constexpr uint32_t kHandle = 0x1a5;
  static constexpr uint32_t kPriority = 0x1a5;

  TcHook(int ifindex, TcDirection dir) : ifindex_(ifindex), dir_(dir) {}

  // Attaches or atomically replaces ipsnat's filter; creates clsact when the device has none.
  // clsact_seen: the caller has just seen the device's clsact qdisc, so no second qdisc dump.
  void attach(int prog_fd, bool clsact_seen = false) const;
  // Removes ipsnat's filter; returns false when there was none. The clsact qdisc stays: other
  // tools may have filters on it.
  bool detach() const;
  // Program id of ipsnat's filter, 0 when absent.
  uint32_t query() const;

 private:
  int ifindex_;
  TcDirection dir_;
};

}  // namespace ipsnat::sys
