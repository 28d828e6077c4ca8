#include "pins/pin_store.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "maps/common.h"
#include "maps/ct.h"
#include "maps/cover6.h"
#include "maps/ct6.h"
#include "maps/frag6.h"
#include "maps/fwd.h"
#include "maps/npt6.h"
#include "maps/spoof.h"
#include "maps/inside.h"
#include "maps/spd.h"
#include "pins/names.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::pins {
namespace {

constexpr unsigned kDefaultSchema = 1;

struct MetaKey {
  char name[16];
};

MetaKey meta_key(const std::string& name) {
  MetaKey k{};
  std::strncpy(k.name, name.c_str(), sizeof(k.name) - 1);
  return k;
}

// The meta map, opened from its pin or created and pinned.
Fd open_meta(const std::string& root, bool create) {
  std::string path = root + "/" + PinStore::kMetaMap;
  Fd fd(bpf_obj_get(path.c_str()));
  if (fd || !create) return fd;
  fd.reset(bpf_map_create(BPF_MAP_TYPE_HASH, PinStore::kMetaMap, sizeof(MetaKey), sizeof(uint32_t), 128, nullptr));
  if (!fd) throw SysError("creating " + path, errno);
  if (bpf_obj_pin(fd.get(), path.c_str()) != 0) throw SysError("pinning " + path, errno);
  chmod(path.c_str(), 0600);
  return fd;
}

}  // namespace

std::string PinStore::resolve_root(const std::string& cli_option) {
  if (!cli_option.empty()) return cli_option;
  if (const char* env = std::getenv("IPSNAT_PIN_ROOT"); env && *env) return env;
  return IPSNAT_PIN_ROOT;
}

PinStore::PinStore(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

unsigned PinStore::schema_of(const std::string& name) {
  // One line per schema header; a map without its own constant has version kDefaultSchema.
  if (name == pins::kSpdCover6) return IPSNAT_COVER6_SCHEMA;
  if (name == pins::kNpt6) return IPSNAT_NPT6_SCHEMA;
  if (name == pins::kCt6) return IPSNAT_CT6_SCHEMA;
  if (name == pins::kFrag6) return IPSNAT_FRAG6_SCHEMA;  // before the ipsnat_frag prefix below
  if (name.rfind("xdp_spoof", 0) == 0) return IPSNAT_SPOOF_SCHEMA;
  if (name.rfind("spd_", 0) == 0) return IPSNAT_SPD_SCHEMA;
#ifdef IPSNAT_CT_SCHEMA
  if (name.rfind("ipsnat_ct", 0) == 0 || name.rfind("ipsnat_frag", 0) == 0) return IPSNAT_CT_SCHEMA;
  // Its generations stamp conntrack entries: the two are replaced together (maps/config.h).
  if (name == pins::kDeviceGen) return IPSNAT_CT_SCHEMA;
#endif
#ifdef IPSNAT_CONFIG_SCHEMA
  if (name == "ipsnat_cfg" || name == "ipsnat_dev") return IPSNAT_CONFIG_SCHEMA;
#endif
  if (name == pins::kForwards || name == pins::kForwardCount) return IPSNAT_FWD_SCHEMA;
  if (name == "ipsnat_inside") return IPSNAT_INSIDE_SCHEMA;
#ifdef IPSNAT_STATS_SCHEMA
  if (name == "ipsnat_stats") return IPSNAT_STATS_SCHEMA;
#endif
  return kDefaultSchema;
}

void PinStore::prepare() const {
  std::filesystem::path root(root_);
  struct statfs fs {};
  auto parent = root.parent_path();
  if (statfs(parent.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC)
    throw UserError(parent.string() + " is not a BPF filesystem",
                    "mount -t bpf bpf /sys/fs/bpf; under 'ip netns exec' use nsenter --net=/run/netns/NS");
  if (mkdir(root_.c_str(), 0700) != 0 && errno != EEXIST) {
    if (errno == EPERM || errno == EACCES)
      throw UserError("cannot create " + root_ + ": " + std::strerror(errno), "needs root (CAP_SYS_ADMIN on bpffs)");
    throw SysError("creating " + root_, errno);
  }
  chmod(root_.c_str(), 0700);
  mkdir((root_ + "/dev").c_str(), 0700);
}

PinStore::Lock::Lock(const std::string& dir) : fd_(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  if (!fd_) throw SysError("opening " + dir, errno);
  if (flock(fd_.get(), LOCK_EX) != 0) throw SysError("locking " + dir, errno);
}

namespace {
// The size to give a shared pinned map: see ct_entries_for.
uint32_t entries_for(const std::string& root, const char* map, const char* what, const char* option, uint32_t requested,
                     uint32_t dflt, uint32_t min, uint32_t limit, bool even) {
  if (requested != 0 && (requested < min || requested > limit || (even && requested % 2)))
    throw UserError(std::string(what) + " size " + std::to_string(requested) + " is out of range",
                    std::string(even ? "an even number of entries (2 per flow)" : "a number of entries") + " from " +
                        std::to_string(min) + " to " + std::to_string(limit));
  std::string pin = root + "/" + map;
  Fd fd(bpf_obj_get(pin.c_str()));
  if (!fd) return requested ? requested : dflt;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd.get(), &info, &len);
  if (rc != 0 || info.max_entries == 0) return requested ? requested : dflt;
  if (requested == 0 || requested == info.max_entries) return info.max_entries;
  throw UserError("pinned " + std::string(what) + " map " + pin + " holds " + std::to_string(info.max_entries) +
                      " entries, " + option + " asks for " + std::to_string(requested),
                  std::string(even ? "it is shared by every attached device: omit " : "omit ") + option + " to keep " +
                      std::to_string(info.max_entries) + ", or detach every device and remove " + pin +
                      " to resize" + (even ? " (its flows are lost)" : ""));
}
}  // namespace

uint32_t PinStore::ct_entries_for(uint32_t requested) const {
  return entries_for(root_, "ipsnat_ct", "conntrack", "--ct-max", requested, IPSNAT_CT_MAX_ENTRIES,
                     IPSNAT_CT_MIN_ENTRIES, IPSNAT_CT_LIMIT_ENTRIES, true);
}

uint32_t PinStore::spd_entries_for(uint32_t requested) const {
  return entries_for(root_, "spd_dst", "SPD", "--spd-max", requested, IPSNAT_SPD_MAX_ENTRIES, IPSNAT_SPD_MIN_ENTRIES,
                     IPSNAT_SPD_LIMIT_ENTRIES, false);
}

std::vector<std::string> PinStore::drop_incompatible(bpf_object* obj) const {
  std::vector<std::string> messages;
  Fd meta = open_meta(root_, false);
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* pin = bpf_map__pin_path(map);
    if (!pin) continue;  // not pinned by name (.bss, probes)
    Fd fd(bpf_obj_get(pin));
    if (!fd) continue;  // nothing pinned yet
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    std::string why;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
      why = "unreadable";
    } else if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
               info.value_size != bpf_map__value_size(map) || info.max_entries != bpf_map__max_entries(map) ||
               info.map_flags != bpf_map__map_flags(map)) {
      why = "its layout differs from this build's";
    } else {
      uint32_t recorded = 0;
      auto key = meta_key(bpf_map__name(map));
      if (!meta || bpf_map_lookup_elem(meta.get(), &key, &recorded) != 0)
        why = "it has no recorded schema version";
      else if (recorded != schema_of(bpf_map__name(map)))
        why = "it has schema " + std::to_string(recorded) + ", this build needs " +
              std::to_string(schema_of(bpf_map__name(map)));
    }
    fd.reset();
    if (why.empty()) continue;
    if (unlink(pin) != 0) throw SysError(std::string("removing incompatible pinned map ") + pin, errno);
    messages.push_back(std::string("pinned map ") + pin + " replaced: " + why + " (its entries are lost)");
  }
  // The datapath skips ipsnat_fwd while its count reads 0: forwards kept without their count
  // (its pin gone or just replaced) would be ports NAPT hands out.
  std::string fwd = root_ + "/" + pins::kForwards, count = root_ + "/" + pins::kForwardCount;
  if (access(fwd.c_str(), F_OK) == 0 && access(count.c_str(), F_OK) != 0) {
    if (unlink(fwd.c_str()) != 0) throw SysError("removing pinned map " + fwd, errno);
    messages.push_back("pinned map " + fwd + " replaced: its entry count is not pinned (its entries are lost)");
  }
  return messages;
}

std::optional<unsigned> PinStore::recorded_schema(const std::string& map_name) const {
  Fd meta = open_meta(root_, false);
  if (!meta) return std::nullopt;
  uint32_t recorded = 0;
  auto key = meta_key(map_name);
  if (bpf_map_lookup_elem(meta.get(), &key, &recorded) != 0) return std::nullopt;
  return recorded;
}

void PinStore::record_schema(const std::string& map_name, unsigned schema) const {
  Fd meta = open_meta(root_, true);
  auto key = meta_key(map_name);
  uint32_t value = schema;
  if (bpf_map_update_elem(meta.get(), &key, &value, BPF_ANY) != 0)
    throw SysError("recording the schema of " + map_name, errno);
}

void PinStore::record(bpf_object* obj) const {
  Fd meta = open_meta(root_, true);
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* pin = bpf_map__pin_path(map);
    if (!pin || !bpf_map__is_pinned(map)) continue;
    auto key = meta_key(bpf_map__name(map));
    uint32_t schema = schema_of(bpf_map__name(map));
    if (bpf_map_update_elem(meta.get(), &key, &schema, BPF_ANY) != 0)
      throw SysError("recording the schema of " + std::string(pin), errno);
    chmod(pin, 0600);
  }
}

namespace {
// bpffs refuses names with '.', interface names never contain ':'.
std::string bpffs_name(std::string id) {
  for (auto& c : id)
    if (c == '.') c = ':';
  return id;
}
}  // namespace

std::vector<std::string> PinStore::pin_programs(const std::string& id, const std::vector<bpf_program*>& progs) const {
  unpin_programs(id);
  std::string dir = root_ + "/dev/" + bpffs_name(id);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) throw SysError("creating " + dir, errno);
  std::vector<std::string> paths;
  for (auto* p : progs) {
    std::string path = dir + "/" + bpf_program__name(p);
    int err = bpf_obj_pin(bpf_program__fd(p), path.c_str());
    if (err) throw SysError("pinning " + path, errno);
    chmod(path.c_str(), 0600);
    paths.push_back(path);
  }
  return paths;
}

void PinStore::unpin_programs(const std::string& id) const {
  std::string dir = root_ + "/dev/" + bpffs_name(id);
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

}  // namespace ipsnat::pins
