#include "mirror/inside_map.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <map>

#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::mirror {

std::vector<InsideEntry> inside_entries(const std::vector<Prefix>& inside, const std::vector<Address>& local) {
  std::vector<InsideEntry> out;
  auto add = [&](const Prefix& p, uint32_t flags) {
    for (auto& e : out)
      if (e.prefix == p) {
        e.flags |= flags;
        return;
      }
    out.push_back({p, flags});
  };
  for (const auto& p : inside)
    if (p.addr.family == AF_INET) add(p, INSIDE_PREFIX);
  for (const auto& a : local) {
    if (a.family != AF_INET) continue;
    uint32_t flags = INSIDE_LOCAL;
    for (const auto& p : inside)
      if (p.addr.family == AF_INET && p.contains(a)) flags |= INSIDE_PREFIX;
    add(Prefix{a, 32}, flags);
  }
  return out;
}

namespace {
ipsnat_inside_key key_of(const Prefix& p) {
  ipsnat_inside_key k{};
  k.prefixlen = p.len;
  k.addr = htonl(ntohl(p.addr.v4_be()) & v4_mask(p.len));
  return k;
}
}  // namespace

void write_inside_map(int fd, const std::vector<InsideEntry>& want) {
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> wanted;  // (prefixlen, addr) -> flags
  for (const auto& e : want) {
    auto k = key_of(e.prefix);
    wanted[{k.prefixlen, k.addr}] |= e.flags;
  }
  // Added first, removed after: a source that stays inside is never missing in between.
  for (const auto& [k, flags] : wanted) {
    ipsnat_inside_key key{k.first, k.second};
    ipsnat_inside_val v{flags};
    if (bpf_map_update_elem(fd, &key, &v, BPF_ANY) != 0) throw SysError("writing ipsnat_inside", errno);
  }
  std::vector<ipsnat_inside_key> stale;
  sys::walk_map_keys<ipsnat_inside_key>(fd, [&](const ipsnat_inside_key& k) {
    if (!wanted.count({k.prefixlen, k.addr})) stale.push_back(k);
  });
  for (const auto& k : stale) bpf_map_delete_elem(fd, &k);
}

}  // namespace ipsnat::mirror
