#pragma once
// The datapath's port-forward map (ipsnat_fwd) with its entry count (ipsnat_fwd_cnt, maps/fwd.h):
// every write of a forward goes through here, so the count stays an upper bound of the entries at
// every instant, across processes, without a lock: +1 (atomic, on the mmapped count) before an
// insert, -1 after a delete that removed an entry. The datapath skips its ipsnat_fwd lookups
// while the count is 0 (docs/datapath.md, "Port-forwards").
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "maps/fwd.h"
#include "util/fd.h"

namespace ipsnat::pins {

class ForwardMap {
 public:
  // Borrows the fds. count_fd < 0: a datapath without the count (nothing is counted).
  ForwardMap(int fwd_fd, int count_fd);
  // Opens <pin_root>/ipsnat_fwd and, if pinned, <pin_root>/ipsnat_fwd_cnt; nullopt when
  // ipsnat_fwd is not pinned.
  static std::optional<ForwardMap> open_pinned(const std::string& pin_root);
  ~ForwardMap();
  ForwardMap(ForwardMap&& o) noexcept;
  ForwardMap(const ForwardMap&) = delete;
  ForwardMap& operator=(const ForwardMap&) = delete;
  ForwardMap& operator=(ForwardMap&&) = delete;

  // Adds or replaces the forward of k. Throws SysError.
  void put(const ipsnat_fwd_key& k, const ipsnat_fwd_target& t);
  // Deletes the forward of k; false when there was none.
  bool erase(const ipsnat_fwd_key& k);
  std::vector<ipsnat_fwd_key> keys() const;
  // The count as the datapath reads it (0 without one).
  uint64_t count() const;

 private:
  void add(int64_t n);

  int fwd_fd_;
  Fd owned_fwd_, owned_count_;  // what open_pinned opened; empty when borrowed
  std::atomic<uint64_t>* count_ = nullptr;  // the mmapped ipsnat_fwd_cnt[0].entries
};

}  // namespace ipsnat::pins
