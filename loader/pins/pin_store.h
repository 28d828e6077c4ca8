#pragma once
// Where ipsnat's BPF objects live in bpffs, and the rules for reusing them across restarts:
//   ROOT/                 0700, ROOT from --pin-root, $IPSNAT_PIN_ROOT, or /sys/fs/bpf/ipsnat
//   ROOT/<map>            maps pinned by name (LIBBPF_PIN_BY_NAME), 0600, reused when compatible
//   ROOT/ipsnat_meta      hash map name -> schema version of the pinned map of that name
//   ROOT/dev/<netns inode>@<dev>/<prog> ('.' in DEV becomes ':')   the programs attached to a device (for status and restarts)
// A pinned map is reused only when its kernel definition (type, key/value size, max entries,
// flags) and its recorded schema equal this build's; otherwise it is replaced with a warning.
#include <optional>
#include <string>
#include <vector>

#include "util/fd.h"

struct bpf_object;
struct bpf_program;

namespace ipsnat::pins {

class PinStore {
 public:
  static constexpr const char* kMetaMap = "ipsnat_meta";

  // cli_option (may be empty) > $IPSNAT_PIN_ROOT > IPSNAT_PIN_ROOT from maps/common.h.
  static std::string resolve_root(const std::string& cli_option);
  explicit PinStore(std::string root);
  const std::string& root() const { return root_; }

  // Creates ROOT (0700) after checking it is on a BPF filesystem.
  void prepare() const;

  // Exclusive lock on ROOT (flock) while attachments change; released by the destructor.
  class Lock {
   public:
    explicit Lock(const std::string& dir);
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

   private:
    Fd fd_;
  };
  Lock lock() const { return Lock(root_); }

  // The size to give ipsnat_ct: `requested` (0: the pinned map's size, or the default when none
  // is pinned). A pinned map of another size is shared by every attached device and cannot be
  // resized in place: a different explicit request throws UserError saying both sizes.
  // Throws UserError for a size outside IPSNAT_CT_MIN_ENTRIES..IPSNAT_CT_LIMIT_ENTRIES or odd.
  uint32_t ct_entries_for(uint32_t requested) const;
  // The same for spd_dst, spd_src and spd_lists (one size for the three; --spd-max).
  uint32_t spd_entries_for(uint32_t requested) const;

  // Before bpf_object__load (the object opened with pin_root_path = root()): removes pinned
  // maps that this build must not reuse. Returns one message per replaced map.
  std::vector<std::string> drop_incompatible(bpf_object* obj) const;
  // After load: records each pinned map's schema and makes the pins 0600.
  void record(bpf_object* obj) const;

  // Pins `progs` under ROOT/dev/<id>/ (replacing earlier pins); returns their paths.
  std::vector<std::string> pin_programs(const std::string& id, const std::vector<bpf_program*>& progs) const;
  void unpin_programs(const std::string& id) const;

  // The schema version this build gives a map (maps/*.h IPSNAT_*_SCHEMA).
  static unsigned schema_of(const std::string& map_name);
  // The version recorded for the map pinned under map_name (none: no meta map or no entry).
  std::optional<unsigned> recorded_schema(const std::string& map_name) const;
  void record_schema(const std::string& map_name, unsigned schema) const;

 private:
  std::string root_;
};

}  // namespace ipsnat::pins
