#include "state/pinned.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/reasons.h"
#include "maps/common.h"
#include "maps/stats.h"
#include "pins/ct_map.h"
#include "pins/names.h"
#include "sys/map_walk.h"
#include "util/error.h"
#include "util/fd.h"

namespace ipsnat::state {

namespace {

// The pinned maps whose fill `ipsnat status` shows.
constexpr std::string_view kMaps[] = {pins::kStats,    pins::kCt,     pins::kFrag,   pins::kConfig,    pins::kDevices,
                                      pins::kForwards, pins::kSpdDst, pins::kSpdSrc, pins::kSpdLists, pins::kSpdCover6, pins::kCt6,
                                      pins::kFrag6};

std::optional<int> open_pinned(const std::string& root, std::string_view name) {
  std::string path = pinned_map_path(root, name);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw SysError("opening pinned map " + path, errno);
  }
  return fd;
}

}  // namespace

std::string pinned_map_path(const std::string& pin_root, std::string_view map_name) {
  return pin_root + "/" + std::string(map_name);
}

bool PinnedState::exists() const {
  struct stat st;
  return stat(root_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::vector<ReasonCount>> PinnedState::reasons() const {
  auto fd_opt = open_pinned(root_, "ipsnat_stats");
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw SysError("libbpf_num_possible_cpus", -cpus);
  std::vector<ipsnat_counter> per_cpu(cpus);
  std::vector<ReasonCount> out;
  for (unsigned r = 0; r < IPSNAT_R_MAX; ++r) {
    uint32_t key = r;
    if (bpf_map_lookup_elem(fd.get(), &key, per_cpu.data()) < 0) throw SysError("reading ipsnat_stats", errno);
    ReasonCount rc{r, std::string(reason_name(r)), 0, 0};
    for (const auto& c : per_cpu) {
      rc.packets += c.packets;
      rc.bytes += c.bytes;
    }
    out.push_back(std::move(rc));
  }
  return out;
}

namespace {
bpf_map_info map_info_of(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) throw SysError("bpf_obj_get_info_by_fd", errno);
  return info;
}
}  // namespace

std::optional<MapFill> PinnedState::map_fill(std::string_view name) const {
  auto fd_opt = open_pinned(root_, name);
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  bpf_map_info info = map_info_of(fd.get());
  MapFill m;
  m.name = info.name;
  m.id = info.id;
  const char* type = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(info.type));
  m.type = type ? type : "unknown";
  m.max_entries = info.max_entries;
  bool array = info.type == BPF_MAP_TYPE_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
  if (!array) {
    // Walking keys is O(entries) syscalls; fine for a status or a scrape every few seconds. A walk
    // restarted by a key removed under it counts keys again: a bound, not a count, then.
    uint64_t n = 0;
    sys::walk_map_keys(fd.get(), info.key_size, [&n](const void*) { ++n; });
    m.entries = n;
  }
  return m;
}

std::vector<MapFill> PinnedState::map_fills() const {
  std::vector<MapFill> out;
  for (auto name : kMaps)
    if (auto m = map_fill(name)) out.push_back(std::move(*m));
  return out;
}

std::optional<uint32_t> PinnedState::max_entries(std::string_view name) const {
  auto fd_opt = open_pinned(root_, name);
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  return map_info_of(fd.get()).max_entries;
}

namespace {
template <class V>
std::optional<V> first_value(const std::string& root, std::string_view name) {
  auto fd_opt = open_pinned(root, name);
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) < 0 || info.value_size != sizeof(V)) return std::nullopt;
  V v{};
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd.get(), &zero, &v) < 0) return std::nullopt;
  return v;
}
}  // namespace

std::optional<spd_health> PinnedState::spd_health_state() const { return first_value<spd_health>(root_, "spd_health"); }
std::optional<ipsnat_config> PinnedState::datapath_config() const { return first_value<ipsnat_config>(root_, "ipsnat_cfg"); }

std::vector<PinnedState::SpdFill> PinnedState::spd_fills() const {
  std::vector<SpdFill> out;
  auto active = first_value<spd_active>(root_, "spd_active");
  uint32_t gen = active ? active->gen & 1 : 0;
  auto walk = [&](std::string_view name, auto key) {
    auto fd_opt = open_pinned(root_, name);
    if (!fd_opt) return;
    Fd fd(*fd_opt);
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) < 0 || info.key_size != sizeof(key)) return;
    SpdFill f{gen, std::string(name), info.max_entries, 0, 0};
    sys::walk_map_keys<decltype(key)>(fd.get(), [&](const auto& k) { ((k.gen & 1) == gen ? f.active : f.other)++; });
    out.push_back(f);
  };
  walk("spd_dst", spd_dst_key{});
  walk("spd_src", spd_src_key{});
  walk("spd_lists", spd_list_key{});
  return out;
}

std::optional<ConntrackSummary> PinnedState::conntrack() const {
  auto fd_opt = open_pinned(root_, pins::kCt);
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  pins::require_layout<pins::Ct4Family>(fd.get(), pinned_map_path(root_, pins::kCt));
  ConntrackSummary s;
  add_entries(s, pins::CtTable<pins::Ct4Family>(fd.get()).entries());
  if (auto ct6 = pins::Ct6Map::open_pinned(root_)) add_entries(s, ct6->entries());
  return s;
}

}  // namespace ipsnat::state
