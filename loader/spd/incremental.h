#pragma once
// The compiled SPD kept up to date change by change: a changed policy recompiles only the
// destination cells its destination prefix contains (its own cell and the more specific ones),
// and reports which map keys changed, so the writer touches only those. docs/spd.md.
#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "maps/spd.h"
#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/nat.h"

namespace ipsnat::spd {

// Map keys without the generation (addresses in network order).
struct DstKey {
  uint32_t if_id;
  uint8_t len;
  uint32_t daddr;
  bool operator==(const DstKey&) const = default;
  auto operator<=>(const DstKey&) const = default;
};
struct SrcKey {
  uint32_t cell;
  uint8_t len;
  uint32_t saddr;
  bool operator==(const SrcKey&) const = default;
  auto operator<=>(const SrcKey&) const = default;
};

// Keys whose value changed (inserted, replaced or removed) since the last take_delta(). A key
// may appear more than once (dedupe() sorts and removes repeats).
struct SpdDelta {
  std::vector<DstKey> dst;
  std::vector<SrcKey> src;
  std::vector<uint32_t> lists;
  bool empty() const { return dst.empty() && src.empty() && lists.empty(); }
  size_t size() const { return dst.size() + src.size() + lists.size(); }
  void merge(const SpdDelta& o);
  void dedupe();
};

class IncrementalSpd {
 public:
  explicit IncrementalSpd(NatConfig cfg) : cfg_(std::move(cfg)) {}

  // Brings the compiled state to `model` for the policies whose index is in `touched` (those
  // added, replaced or removed since the last call).
  void update(const SpdModel& model, const std::vector<uint32_t>& touched);
  // Every policy touched (after a dump or a flush); ids and unchanged entries are kept.
  void rebuild(const SpdModel& model);
  // The gateway's addresses changed (NatConfig::local: NAPT pools leave them out); takes effect
  // at the next rebuild().
  void set_local(std::vector<Address> local) { cfg_.local = std::move(local); }

  // Set while some policy or cell cannot be represented exactly: the maps must then keep the
  // last exact SPD. The compiled state of the other cells stays current.
  std::optional<std::string> refused() const;
  // The compiled policies the maps carry as SPD_V_UNKNOWN (unknown_policy_text), by index.
  std::vector<std::string> unknown() const;
  SpdDelta take_delta();

  // Current content.
  const spd_cell* dst(const DstKey& k) const;
  std::optional<uint32_t> src(const SrcKey& k) const;
  const spd_list* list(uint32_t id) const;
  // Every entry with its value: dst(const DstKey&, const spd_cell&), src(const SrcKey&, list id),
  // list(list id, const spd_list&).
  template <class D, class S, class L>
  void for_each(D&& dst, S&& src, L&& list) const;
  CompiledSpd snapshot() const;
  // Entries one generation of the maps needs for the current content.
  struct EntryCounts {
    uint32_t dst = 0, src = 0, lists = 0;
  };
  EntryCounts entry_counts() const;
  size_t policies() const { return pols_.size(); }

 private:
  struct Cell {
    std::vector<uint32_t> own;  // indices of the policies whose destination is exactly this prefix
    uint32_t id = 0;
    bool has_id = false;
    bool compiled = false;  // value/src are in the maps' content
    spd_cell value{};
    std::vector<std::pair<SrcKey, uint32_t>> src;  // -> list id
  };
  struct ListRec {
    spd_list list;
    uint32_t refs = 0;  // 0: the id is free
    uint64_t hash = 0;
    uint32_t next_same = kNoList;  // the next list with the same hash
  };
  static constexpr uint32_t kNoList = UINT32_MAX;
  using CellMap = std::map<std::pair<uint32_t, uint8_t>, Cell>;  // (host-order net, len)

  void remove_policy(uint32_t index, std::vector<std::pair<uint32_t, std::pair<uint32_t, uint8_t>>>& dirty);
  void add_policy(const Policy& p, std::vector<std::pair<uint32_t, std::pair<uint32_t, uint8_t>>>& dirty);
  void settle(const std::vector<std::pair<uint32_t, std::pair<uint32_t, uint8_t>>>& dirty);
  void recompile(uint32_t if_id, CellMap& cells, CellMap::iterator it);
  void drop(uint32_t if_id, CellMap& cells, CellMap::iterator it);
  Cell& cell_at(uint32_t if_id, uint32_t net, uint8_t len);
  uint32_t acquire_list(const spd_list& l);
  void release_list(uint32_t id);
  uint32_t take_id(uint32_t& next, std::vector<uint32_t>& free);

  NatConfig cfg_;
  std::unordered_map<uint32_t, Policy> pols_;                 // compiled policies by index
  std::map<uint32_t, std::string> policy_refusals_;            // index -> why
  std::map<uint32_t, std::string> policy_unknown_;             // index -> unknown_policy_text
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, std::string> cell_refusals_;
  std::unordered_map<uint32_t, CellMap> cells_;               // by if_id
  // Per if_id, how many cells have each prefix length: a cell's ancestors are looked up only
  // at the lengths present.
  std::unordered_map<uint32_t, std::array<uint32_t, 33>> len_counts_;
  std::unordered_map<uint32_t, uint64_t> len_masks_;           // bit l: some cell is /l
  std::vector<Cell*> cell_by_id_;                             // compiled cells (nullptr: free id)
  std::vector<ListRec> lists_;                                // by list id
  std::unordered_map<uint64_t, uint32_t> list_ids_;          // content hash -> first list id
  uint32_t next_cell_ = 0, next_list_ = 0;
  std::vector<uint32_t> free_cells_, free_lists_;
  SpdDelta delta_;
};

template <class D, class S, class L>
void IncrementalSpd::for_each(D&& dst, S&& src, L&& list) const {
  for (const auto& [if_id, cells] : cells_)
    for (const auto& [net, c] : cells) {
      if (!c.compiled) continue;
      dst(DstKey{if_id, net.second, htonl(net.first)}, c.value);
      for (const auto& [k, l] : c.src) src(k, l);
    }
  for (uint32_t id = 0; id < lists_.size(); id++)
    if (lists_[id].refs) list(id, lists_[id].list);
}

}  // namespace ipsnat::spd
