#pragma once
// The mirrored SPD: the kernel's policies (not per-socket ones) and the events that change it.
#include <cstdint>
#include <array>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "spd/policy.h"

namespace ipsnat::spd {

struct PolicyUpsert {  // XFRM_MSG_NEWPOLICY / UPDPOLICY, and each entry of a dump
  Policy policy;
};
struct PolicyDelete {  // XFRM_MSG_DELPOLICY: by index when nonzero, else by selector+dir+type
  uint32_t index = 0;
  Dir dir = Dir::Out;
  PolicyType type = PolicyType::Main;
  Selector sel;
  uint32_t mark_v = 0, mark_m = 0, if_id = 0;
};
struct PolicyFlush {  // XFRM_MSG_FLUSHPOLICY
  PolicyType type = PolicyType::Main;
};
using PolicyEvent = std::variant<PolicyUpsert, PolicyDelete, PolicyFlush>;

// The kernel orders equal priorities by age (xfrm_policy `pos`: a policy inserted or updated is
// the newest) across its candidate lists, and by place inside one (kernel_list()). A dump lists
// the policies newest first; a notification announces the newest. So each dumped policy is older
// than every one before it in the dump, and each notified one newer than everything known. An
// update that keeps the priority keeps the place of the policy it replaces; a dump shows no
// places (Policy::place_unknown). docs/spd.md, SpdDifferentialNetns.
class SpdModel {
 public:
  enum class From : uint8_t { Event, Dump };
  // Returns true when the model changed.
  bool apply(const PolicyEvent& ev, From from = From::Event);
  void clear() {
    by_index_.clear();
    by_key_.clear();
    changes_ = Changes{};
    changes_.reset = true;
    newest_seq_ = oldest_seq_ = kFirstSeq;
    kept_places_ = 0;
  }
  // What changed since the last take: the indices of the policies added, replaced or removed,
  // or `reset` after clear() (everything may have changed).
  struct Changes {
    std::vector<uint32_t> indices;
    bool reset = false;
  };
  Changes take_changes() { return std::exchange(changes_, Changes{}); }
  size_t size() const { return by_index_.size(); }
  // Policies oldest first (the kernel's `pos` order).
  std::vector<const Policy*> ordered() const;
  const std::map<uint32_t, Policy>& by_index() const { return by_index_; }

  // The same_key() identity as bytes (fixed size: no allocation per policy).
  using Key = std::array<char, 64>;
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<std::string_view>()(std::string_view(k.data(), k.size())); }
  };

 private:
  static Key key_of(const Policy& p);
  std::map<uint32_t, Policy>::iterator forget(std::map<uint32_t, Policy>::iterator it);
  void note_possible_merge(const Policy& p);
  size_t kept_places_ = 0;  // policies whose place is not their age's
  std::map<uint32_t, Policy> by_index_;
  std::unordered_map<Key, uint32_t, KeyHash> by_key_;  // same_key() identity -> index
  // Dumped policies count down from here, notified ones up: either side has 2^62 steps.
  static constexpr uint64_t kFirstSeq = uint64_t(1) << 62;
  uint64_t newest_seq_ = kFirstSeq, oldest_seq_ = kFirstSeq;
  Changes changes_;
};

}  // namespace ipsnat::spd
