#pragma once
// Compiles the mirrored SPD into the datapath's maps (maps/spd.h, docs/spd.md), and evaluates
// the compiled form the way bpf/lib/spd.h does, so tests can compare it with the reference.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "maps/spd.h"
#include "spd/nat.h"
#include "spd/policy.h"

namespace ipsnat::spd {

// Keys without the generation: the writer adds it.
struct CompiledDst {
  uint32_t if_id;
  uint8_t len;
  uint32_t daddr;  // network order
  spd_cell cell;
};
struct CompiledSrc {
  uint32_t cell;
  uint8_t len;
  uint32_t saddr;  // network order
  uint32_t list;
};

struct CompiledSpd {
  std::vector<CompiledDst> dst;
  std::vector<CompiledSrc> src;
  std::vector<std::pair<uint32_t, spd_list>> lists;  // (list id, list)
  size_t policies = 0;          // IPv4 out main policies compiled
  // Set when the SPD cannot be represented exactly; nothing else is meaningful then.
  std::optional<std::string> refused;
  // Policies compiled as SPD_V_UNKNOWN (unknown_condition), one line each saying so.
  std::vector<std::string> unknown;
};

// Cell and list ids that stay the same from one compile to the next for unchanged content.
// Optional: without it ids are numbered afresh.
class CompileIds {
 public:
  uint32_t cell(uint32_t if_id, uint8_t len, uint32_t daddr);
  uint32_t list(const spd_list& l);
  // Frees the ids the last compile did not use.
  void sweep();

 private:
  struct Pool {
    uint32_t next = 0;
    std::vector<uint32_t> free;
    uint32_t take();
  };
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, std::pair<uint32_t, bool>> cells_;
  std::map<std::string, std::pair<uint32_t, bool>> lists_;
  Pool cell_pool_, list_pool_;
};

// One destination cell compiled from the policies whose destination contains its prefix (any
// order): the cell without its id and cover ids, and one candidate list per source prefix.
struct CellCompile {
  struct Src {
    uint8_t len;
    uint32_t saddr;  // network order
    spd_list list;
  };
  spd_cell cell{};
  std::vector<Src> src;
  std::vector<size_t> cover;  // indices into src of the lists the cell's cover[] names
  std::optional<std::string> refused;
};
CellCompile compile_cell(std::vector<const Policy*> cell_pols, uint8_t dlen, uint32_t dnet_host,
                         const NatConfig& cfg);

// Which policies the maps carry (IPv4 out), which of those cannot be mirrored at all (why: the
// whole SPD is refused), which have a condition the datapath cannot evaluate (why: compiled as
// SPD_V_UNKNOWN, failing closed where they could apply), and which can never match (a mark
// value outside its mask).
bool compiled_kind(const Policy& p);
std::optional<std::string> mirror_refusal(const Policy& p);
std::optional<std::string> unknown_condition(const Policy& p);
// The line that names an SPD_V_UNKNOWN policy and what fails closed (logs, `ipsnat policies`).
std::string unknown_policy_text(const Policy& p, const std::string& why);
bool mark_can_match(const Policy& p);

CompiledSpd compile_spd(const std::vector<const Policy*>& ordered, const NatConfig& cfg,
                        CompileIds* ids = nullptr);

// What the guard makes of a flow: not covered, covered by an IPsec policy, or reaching a policy
// the maps cannot express (SPD_V_UNKNOWN).
enum class CompiledCover { kNo, kIpsec, kUnknown };

struct CompiledVerdict {
  uint32_t policy_index = 0;
  uint8_t verdict = SPD_V_BYPASS;
};

// Evaluates a CompiledSpd with the datapath's algorithm (LPM, LPM, candidate list).
class CompiledEvaluator {
 public:
  explicit CompiledEvaluator(const CompiledSpd& c);
  std::optional<CompiledVerdict> lookup(const Flow4& f) const;
  std::optional<spd_nat_target> nat_target(const Flow4& f) const;
  CompiledCover out_covered(const Flow4& f) const;

 private:
  const spd_cell* dst_cell(const Flow4& f) const;
  std::optional<CompiledVerdict> eval_list(uint32_t list, const Flow4& f) const;
  std::optional<CompiledVerdict> lookup_in(const spd_cell& cell, const Flow4& f) const;
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, const spd_cell*> dst_;
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, uint32_t> src_;
  std::map<uint32_t, const spd_list*> lists_;
};

bool cand_matches(const spd_cand& c, const Flow4& f);

}  // namespace ipsnat::spd
