#include "pins/fwd_map.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "pins/names.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::pins {
namespace {

// A forward replaced while other writers delete and re-insert it: tries before giving up.
constexpr int kPutTries = 8;

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

}  // namespace

// The value of an mmapped ARRAY lies at offset 0 for key 0; the kernel and every process share
// it, so the atomic read-modify-write is one across processes.
static_assert(sizeof(std::atomic<uint64_t>) == sizeof(ipsnat_fwd_count) && std::atomic<uint64_t>::is_always_lock_free);

ForwardMap::ForwardMap(int fwd_fd, int count_fd) : fwd_fd_(fwd_fd) {
  if (count_fd < 0) return;
  void* p = mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, count_fd, 0);
  if (p == MAP_FAILED) throw SysError("mapping ipsnat_fwd_cnt", errno);
  count_ = static_cast<std::atomic<uint64_t>*>(p);
}

std::optional<ForwardMap> ForwardMap::open_pinned(const std::string& pin_root) {
  Fd fwd(bpf_obj_get(state::pinned_map_path(pin_root, kForwards).c_str()));
  if (!fwd) return std::nullopt;
  Fd count(bpf_obj_get(state::pinned_map_path(pin_root, kForwardCount).c_str()));
  ForwardMap m(fwd.get(), count.get());
  m.owned_fwd_ = std::move(fwd);
  m.owned_count_ = std::move(count);
  return m;
}

ForwardMap::ForwardMap(ForwardMap&& o) noexcept
    : fwd_fd_(o.fwd_fd_), owned_fwd_(std::move(o.owned_fwd_)), owned_count_(std::move(o.owned_count_)),
      count_(std::exchange(o.count_, nullptr)) {}

ForwardMap::~ForwardMap() {
  if (count_) munmap(count_, page_size());
}

void ForwardMap::add(int64_t n) {
  if (count_) count_->fetch_add(static_cast<uint64_t>(n), std::memory_order_seq_cst);
}

uint64_t ForwardMap::count() const { return count_ ? count_->load() : 0; }

void ForwardMap::put(const ipsnat_fwd_key& k, const ipsnat_fwd_target& t) {
  for (int i = 0; i < kPutTries; ++i) {
    add(1);  // before the entry can exist
    if (bpf_map_update_elem(fwd_fd_, &k, &t, BPF_NOEXIST) == 0) return;
    int err = errno;
    add(-1);  // not inserted: the entry there is counted by whoever inserted it
    if (err != EEXIST) throw SysError("writing ipsnat_fwd", err);
    if (bpf_map_update_elem(fwd_fd_, &k, &t, BPF_EXIST) == 0) return;
    if (errno != ENOENT) throw SysError("writing ipsnat_fwd", errno);
    // Deleted meanwhile: insert it anew.
  }
  throw SysError("writing ipsnat_fwd (another writer keeps replacing the entry)", EAGAIN);
}

bool ForwardMap::erase(const ipsnat_fwd_key& k) {
  if (bpf_map_delete_elem(fwd_fd_, &k) != 0) return false;
  add(-1);  // after the entry is gone
  return true;
}

std::vector<ipsnat_fwd_key> ForwardMap::keys() const {
  std::vector<ipsnat_fwd_key> out;
  sys::walk_map_keys<ipsnat_fwd_key>(fwd_fd_, [&](const ipsnat_fwd_key& k) { out.push_back(k); });
  return out;
}

}  // namespace ipsnat::pins
