#include "pins/ct6_map.h"

#include <bpf/bpf.h>

#include <cerrno>

#include "pins/names.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::pins {

std::optional<Ct6Map> Ct6Map::open_pinned(const std::string& root) {
  Fd fd(bpf_obj_get(state::pinned_map_path(root, kCt6).c_str()));
  if (!fd) return std::nullopt;
  // Entries of another layout (an older build's schema) are not read as this build's.
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0 || info.key_size != sizeof(ipsnat_ct6_key) ||
      info.value_size != sizeof(ipsnat_ct6_entry))
    return std::nullopt;
  std::optional<Ct6Map> m(std::in_place, fd.get());
  m->owned_ = std::move(fd);
  return m;
}

std::vector<ct::Entry6> Ct6Map::entries() const {
  std::vector<ct::Entry6> all;
  // As CtMaps::entries: a restart after a concurrent delete yields duplicates, dropped by pairing.
  sys::walk_map_keys<ipsnat_ct6_key>(fd_, [&](const ipsnat_ct6_key& k) {
    ct::Entry6 e;
    e.key = k;
    if (bpf_map_lookup_elem(fd_, &k, &e.value) == 0) all.push_back(e);
  });
  return all;
}

std::optional<ipsnat_ct6_entry> Ct6Map::lookup(const ipsnat_ct6_key& k) const {
  ipsnat_ct6_entry e{};
  if (bpf_map_lookup_elem(fd_, &k, &e) != 0) return std::nullopt;
  return e;
}

bool Ct6Map::erase(const ipsnat_ct6_key& k) {
  if (bpf_map_delete_elem(fd_, &k) == 0) return true;
  if (errno == ENOENT) return false;
  throw SysError("deleting an IPv6 conntrack entry", errno);
}

GcResult Ct6Gc::sweep(uint64_t now_ns, const ct::Timeouts& t) {
  Removal r = remove_if([&](const ct::Flow6& f) { return ct::expired(f.as_flow(), now_ns, t); });
  return GcResult{r.flows, r.removed, r.entries_deleted};
}

Removal Ct6Gc::remove_if(const std::function<bool(const ct::Flow6&)>& doomed) {
  Removal r;
  for (const ct::Flow6& snapshot : ct::pair_entries6(map_.entries())) {
    ++r.flows;
    if (!doomed(snapshot)) continue;
    // Re-read right before deleting (a packet may have refreshed the flow); never delete a
    // partner that does not point back (its key belongs to another flow by now).
    ct::Flow6 f;
    ipsnat_ct6_key ok = snapshot.orig_key(), rk = snapshot.reply_key();
    if (auto e = map_.lookup(ok)) f.orig = ct::Entry6{ok, *e};
    if (auto e = map_.lookup(rk)) f.reply = ct::Entry6{rk, *e};
    if (f.orig && f.reply && !points_to(*f.orig, rk)) f.orig.reset();
    if (f.orig && f.reply && !points_to(*f.reply, ok)) f.reply.reset();
    if ((!f.orig && !f.reply) || !doomed(f)) continue;
    ++r.removed;
    if (f.reply && map_.erase(rk)) ++r.entries_deleted;
    if (f.orig && map_.erase(ok)) ++r.entries_deleted;
  }
  return r;
}

}  // namespace ipsnat::pins
