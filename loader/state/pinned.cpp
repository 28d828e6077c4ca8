#include "state/pinned.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "core/reasons.h"
#include "maps/common.h"
#include "maps/ct.h"
#include "maps/stats.h"
#include "util/error.h"

namespace ipsnat::state {

namespace {

// The maps ipsnat pins, by their names in the BPF object.
constexpr std::string_view kMaps[] = {"ipsnat_stats", "ipsnat_ct", "ipsnat_frag", "ipsnat_cfg", "ipsnat_dev", "spd_nat"};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::optional<int> open_pinned(const std::string& root, std::string_view name) {
  std::string path = pinned_map_path(root, name);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw SysError("opening pinned map " + path, errno);
  }
  return fd;
}

std::string ipv4_be_str(uint32_t be) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &be, buf, sizeof(buf));
  return buf;
}

}  // namespace

std::string default_pin_root() {
  const char* env = std::getenv("IPSNAT_PIN_ROOT");
  return env && *env ? env : IPSNAT_PIN_ROOT;
}

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

std::optional<MapFill> PinnedState::map_fill(std::string_view name) const {
  auto fd_opt = open_pinned(root_, name);
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) < 0) throw SysError("bpf_obj_get_info_by_fd", errno);
  MapFill m;
  m.name = info.name;
  m.id = info.id;
  const char* type = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(info.type));
  m.type = type ? type : "unknown";
  m.max_entries = info.max_entries;
  bool array = info.type == BPF_MAP_TYPE_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_ARRAY;
  if (!array) {
    // Walking keys is O(entries) syscalls; fine for a status or a scrape every few seconds.
    std::vector<uint8_t> key(info.key_size), next(info.key_size);
    uint64_t n = 0;
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd.get(), prev, next.data()) == 0) {
      ++n;
      key.swap(next);
      prev = key.data();
      if (n > info.max_entries * 2ULL) break;  // the map changed under us; a bound, not a count
    }
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

std::optional<ConntrackSummary> PinnedState::conntrack() const {
  auto fd_opt = open_pinned(root_, "ipsnat_ct");
  if (!fd_opt) return std::nullopt;
  Fd fd(*fd_opt);
  ConntrackSummary s;
  ipsnat_ct_key key{}, next{};
  ipsnat_ct_entry e{};
  const ipsnat_ct_key* prev = nullptr;
  uint64_t guard = 0;
  bpf_map_info info{};
  uint32_t info_len = sizeof(info);
  uint64_t bound = 2ULL * (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) == 0 && info.max_entries
                               ? info.max_entries
                               : IPSNAT_CT_MAX_ENTRIES);
  while (bpf_map_get_next_key(fd.get(), prev, &next) == 0 && guard++ < bound) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd.get(), &key, &e) < 0) continue;  // deleted meanwhile
    ++s.entries;
    if (key.dir == IPSNAT_CT_ORIG) {
      ++s.flows;
      const char* proto = key.proto == IPPROTO_TCP ? "tcp" : key.proto == IPPROTO_UDP ? "udp"
                          : key.proto == IPPROTO_ICMP ? "icmp" : "other";
      ++s.flows_by_proto[proto];
      ++s.by_reqid[e.reqid].flows;
    } else {
      ++s.ports_in_use[ipv4_be_str(key.daddr)];
    }
    auto& t = s.by_reqid[e.reqid];
    t.packets += e.packets;
    t.bytes += e.bytes;
  }
  return s;
}

}  // namespace ipsnat::state
