#include "spd/mirror.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "util/error.h"
#include "xfrm/policy_source.h"

namespace ipsnat::spd {

namespace {
int map_fd(bpf_object* obj, const char* name) {
  bpf_map* m = bpf_object__find_map_by_name(obj, name);
  if (!m) throw std::runtime_error(std::string("BPF object has no map ") + name);
  return bpf_map__fd(m);
}

int pinned_fd(const std::string& root, const char* name) {
  std::string path = root + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0)
    throw UserError("cannot open pinned map " + path + ": " + std::strerror(errno), "is ipsnat attached?");
  return fd;
}

void update(int fd, const void* k, const void* v, const char* what) {
  if (bpf_map_update_elem(fd, k, v, BPF_ANY) != 0) throw SysError(std::string("writing ") + what, errno);
}
}  // namespace

SpdMapFds SpdMapFds::from_object(bpf_object* obj) {
  return SpdMapFds{map_fd(obj, "spd_active"), map_fd(obj, "spd_dst"), map_fd(obj, "spd_src"),
                   map_fd(obj, "spd_lists")};
}

SpdMapFds SpdMapFds::from_pins(const std::string& root) {
  SpdMapFds f;
  f.active = pinned_fd(root, "spd_active");
  f.dst = pinned_fd(root, "spd_dst");
  f.src = pinned_fd(root, "spd_src");
  f.lists = pinned_fd(root, "spd_lists");
  return f;
}

void SpdMapFds::close_all() {
  for (int* fd : {&active, &dst, &src, &lists})
    if (*fd >= 0) close(*fd), *fd = -1;
}

SpdMapWriter::SpdMapWriter(SpdMapFds fds) : fds_(fds) {
  uint32_t zero = 0;
  spd_active a{};
  if (bpf_map_lookup_elem(fds_.active, &zero, &a) == 0) {
    if (a.version != 0 && a.schema != IPSNAT_SPD_SCHEMA)
      throw UserError("pinned SPD maps have schema " + std::to_string(a.schema) + ", this ipsnat writes " +
                          std::to_string(IPSNAT_SPD_SCHEMA),
                      "detach and attach again to replace them");
    active_ = a.gen & 1;
    version_ = a.version;
  }
}

// Removes whatever an earlier process left in a generation this writer has not written yet.
void SpdMapWriter::purge(uint32_t gen) {
  auto sweep = [gen](int fd, auto key) {
    std::vector<decltype(key)> stale;
    decltype(key) cur{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      if (next.gen == gen) stale.push_back(next);
      cur = next;
      prev = &cur;
    }
    for (const auto& k : stale) bpf_map_delete_elem(fd, &k);
  };
  sweep(fds_.dst, spd_dst_key{});
  sweep(fds_.src, spd_src_key{});
  sweep(fds_.lists, spd_list_key{});
  written_[gen] = {};
  written_[gen].known = true;
}

void SpdMapWriter::write(const CompiledSpd& c) {
  uint32_t gen = active_ ^ 1;
  // The inactive generation was last read a whole update ago: no datapath program still walks
  // it. It holds the SPD of two updates ago: bring it to `c` by difference.
  if (!written_[gen].known) purge(gen);
  Written& w = written_[gen];
  size_t ops = 0;
  auto same = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; };

  std::map<uint32_t, spd_list> lists;
  for (const auto& [id, l] : c.lists) lists.emplace(id, l);
  for (const auto& [id, l] : lists) {
    auto it = w.lists.find(id);
    if (it != w.lists.end() && same(it->second, l)) continue;
    spd_list_key k{gen, id};
    update(fds_.lists, &k, &l, "spd_lists");
    ops++;
  }
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, uint32_t> src;
  for (const auto& e : c.src) src.emplace(std::make_tuple(e.cell, e.len, e.saddr), e.list);
  for (const auto& [t, list] : src) {
    auto it = w.src.find(t);
    if (it != w.src.end() && it->second == list) continue;
    spd_src_key k{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
    update(fds_.src, &k, &list, "spd_src");
    ops++;
  }
  std::map<std::tuple<uint32_t, uint8_t, uint32_t>, spd_cell> dst;
  for (const auto& e : c.dst) dst.emplace(std::make_tuple(e.if_id, e.len, e.daddr), e.cell);
  for (const auto& [t, cell] : dst) {
    auto it = w.dst.find(t);
    if (it != w.dst.end() && same(it->second, cell)) continue;
    spd_dst_key k{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
    update(fds_.dst, &k, &cell, "spd_dst");
    ops++;
  }
  // Stale entries go after the new ones are in (this generation is not read anyway).
  for (const auto& [t, cell] : w.dst)
    if (!dst.count(t)) {
      spd_dst_key k{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
      bpf_map_delete_elem(fds_.dst, &k);
      ops++;
    }
  for (const auto& [t, list] : w.src)
    if (!src.count(t)) {
      spd_src_key k{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
      bpf_map_delete_elem(fds_.src, &k);
      ops++;
    }
  for (const auto& [id, l] : w.lists)
    if (!lists.count(id)) {
      spd_list_key k{gen, id};
      bpf_map_delete_elem(fds_.lists, &k);
      ops++;
    }
  w.dst = std::move(dst);
  w.src = std::move(src);
  w.lists = std::move(lists);
  spd_active a{gen, IPSNAT_SPD_SCHEMA, ++version_};
  uint32_t zero = 0;
  update(fds_.active, &zero, &a, "spd_active");
  active_ = gen;
  last_ops_ = ops;
}

SpdMirror::SpdMirror(SpdMapFds fds, NatConfig nat, int rcvbuf)
    : source_(new xfrm::PolicySource(rcvbuf)), writer_(fds), nat_(std::move(nat)) {}

SpdMirror::~SpdMirror() { delete source_; }

void SpdMirror::publish() {
  auto t0 = std::chrono::steady_clock::now();
  CompiledSpd c = compile_spd(model_.ordered(), nat_, &ids_);
  auto t1 = std::chrono::steady_clock::now();
  if (c.refused) {
    stats_.refusals++;
    if (stats_.last_refusal != *c.refused) spdlog::error("spd: {}; the maps keep the last SPD that could be mirrored exactly", *c.refused);
    stats_.last_refusal = *c.refused;
    return;
  }
  stats_.last_refusal.clear();
  writer_.write(c);
  stats_.swaps++;
  auto t2 = std::chrono::steady_clock::now();
  spdlog::debug("spd: {} policies compiled in {:.1f} ms, {} map operations in {:.1f} ms", model_.size(),
                std::chrono::duration<double, std::milli>(t1 - t0).count(), writer_.last_ops(),
                std::chrono::duration<double, std::milli>(t2 - t1).count());
}

void SpdMirror::sync_once() {
  source_->resync(model_);
  publish();
}

bool SpdMirror::poll_once(int timeout_ms) {
  pollfd p{source_->fd(), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  auto d = source_->drain(model_);
  // Coalesce a burst: keep reading while more arrives within a millisecond (at most 50 ms),
  // then compile once.
  for (int waited = 0; !d.overrun && waited < 50; waited++) {
    pollfd more{source_->fd(), POLLIN, 0};
    if (poll(&more, 1, 1) <= 0) break;
    auto d2 = source_->drain(model_);
    d.events += d2.events;
    d.changed |= d2.changed;
    d.overrun |= d2.overrun;
  }
  stats_.events += d.events;
  if (d.overrun) {
    stats_.resyncs++;
    spdlog::warn("spd: XFRM notifications lost (socket buffer overrun), resyncing from a full dump");
    source_->resync(model_);
    publish();
    return true;
  }
  if (!d.changed) return false;
  publish();
  return true;
}

void SpdMirror::run(std::stop_token stop) {
  while (!stop.stop_requested()) poll_once(200);
}

}  // namespace ipsnat::spd
