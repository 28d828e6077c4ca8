#pragma once
// The datapath's conntrack tables, IPv4 (ipsnat_ct, maps/ct.h) and IPv6 (ipsnat_ct6, maps/ct6.h),
// and its config map, opened from their pins or from fds a caller owns (tests, the daemon that
// loaded the skeleton). Both tables are one CtTable over the family's key and entry types.
//
//   auto maps = CtMaps::open_pinned(root);  // throws UserError when ipsnat is not attached, or
//                                           // ipsnat_ct has another build's layout
//   auto ct6 = Ct6Map::open_pinned(root);   // nullopt: no ipsnat_ct6 of this layout (an older build's)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ct/flow.h"
#include "ct/flow6.h"
#include "util/fd.h"

namespace ipsnat::pins {

// What sets the two tables apart: the key and entry types, the partner key (maps/ct.h, maps/ct6.h)
// and the flow userspace joins the two entries into.
struct Ct4Family {
  using Key = ipsnat_ct_key;
  using Value = ipsnat_ct_entry;
  using Entry = ct::Entry;
  using Flow = ct::Flow;
  static constexpr const char* kEntryName = "a conntrack entry";
  static Key partner_key(const Entry& e) { return ct_partner_key(&e.key, &e.value); }
  static std::vector<Flow> pair(const std::vector<Entry>& entries) { return ct::pair_entries(entries); }
  static bool expired(const Flow& f, uint64_t now_ns, const ct::Timeouts& t) { return ct::expired(f, now_ns, t); }
};

// An ICMPv6 echo ages as ICMP: a flow's state and expiry are its IPv4 shadow's (ct/flow6.h).
struct Ct6Family {
  using Key = ipsnat_ct6_key;
  using Value = ipsnat_ct6_entry;
  using Entry = ct::Entry6;
  using Flow = ct::Flow6;
  static constexpr const char* kEntryName = "an IPv6 conntrack entry";
  static Key partner_key(const Entry& e) { return ct6_partner_key(&e.key, &e.value); }
  static std::vector<Flow> pair(const std::vector<Entry>& entries) { return ct::pair_entries6(entries); }
  static bool expired(const Flow& f, uint64_t now_ns, const ct::Timeouts& t) {
    return ct::expired(f.as_flow(), now_ns, t);
  }
};

// One conntrack table: every entry (a bounded walk), one entry looked up or deleted.
template <class Family>
class CtTable {
 public:
  using Key = typename Family::Key;
  using Value = typename Family::Value;
  using Entry = typename Family::Entry;

  explicit CtTable(int fd) : fd_(fd) {}  // borrows fd
  CtTable(CtTable&&) noexcept = default;
  CtTable(const CtTable&) = delete;
  CtTable& operator=(const CtTable&) = delete;
  CtTable& operator=(CtTable&&) = delete;

  // The datapath adds and the GC deletes concurrently: a walk restarted by a deleted key yields
  // duplicates, dropped by pairing (Family::pair).
  std::vector<Entry> entries() const;
  std::optional<Value> lookup(const Key& k) const;
  // False when the entry was not there; throws SysError on any other failure.
  bool erase(const Key& k);

 protected:
  explicit CtTable(Fd owned) : fd_(owned.get()), owned_(std::move(owned)) {}

 private:
  int fd_;
  Fd owned_;  // what open_pinned opened; empty when borrowed
};

extern template class CtTable<Ct4Family>;
extern template class CtTable<Ct6Family>;

// The IPv4 table with the config map beside it (the timeouts both tables age by).
class CtMaps : public CtTable<Ct4Family> {
 public:
  // Borrows the fds.
  CtMaps(int ct_fd, int cfg_fd) : CtTable(ct_fd), cfg_fd_(cfg_fd) {}
  // Opens <pin_root>/ipsnat_ct and <pin_root>/ipsnat_cfg; throws UserError when not pinned, or
  // when ipsnat_ct's keys or values are not this build's sizes (require_layout).
  static CtMaps open_pinned(const std::string& pin_root);
  CtMaps(CtMaps&&) noexcept = default;

  ipsnat_config config() const;

 private:
  CtMaps(Fd ct, Fd cfg) : CtTable(std::move(ct)), cfg_fd_(cfg.get()), owned_cfg_(std::move(cfg)) {}
  int cfg_fd_;
  Fd owned_cfg_;
};

class Ct6Map : public CtTable<Ct6Family> {
 public:
  using CtTable::CtTable;
  // nullopt when <pin_root>/ipsnat_ct6 is not pinned, or holds entries of another layout (an older
  // build's schema), which are not read as this build's.
  static std::optional<Ct6Map> open_pinned(const std::string& pin_root);
  Ct6Map(Ct6Map&&) noexcept = default;
};

// Why the map `fd`, pinned at `path`, cannot be read as Family's table: its keys or values have
// other sizes (an older or newer build's pins, whose entries must not be read or deleted as this
// build's); empty when they match. A descriptor whose info cannot be read counts as another layout.
template <class Family>
std::string layout_mismatch(int fd, const std::string& path);
// The same, as a UserError (one line naming the map and both layouts) when they differ.
template <class Family>
void require_layout(int fd, const std::string& path);

// CLOCK_BOOTTIME in ns: the clock of bpf_ktime_get_boot_ns(), which the datapath stamps.
uint64_t boottime_ns();

}  // namespace ipsnat::pins
