#include "spd/mirror.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
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

// Removes every entry of a generation: the ones this writer wrote, and on first use whatever an
// earlier process left there.
void SpdMapWriter::purge(uint32_t gen) {
  Written& w = written_[gen];
  for (const auto& k : w.dst) bpf_map_delete_elem(fds_.dst, &k);
  for (const auto& k : w.src) bpf_map_delete_elem(fds_.src, &k);
  for (const auto& k : w.lists) bpf_map_delete_elem(fds_.lists, &k);
  w = {};
  if (scanned_) return;
  scanned_ = true;
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
}

void SpdMapWriter::write(const CompiledSpd& c) {
  uint32_t gen = active_ ^ 1;
  // The inactive generation was last read a whole update ago: no datapath program still
  // walks it.
  purge(gen);
  Written& w = written_[gen];
  w.lists.reserve(c.lists.size());
  for (uint32_t i = 0; i < c.lists.size(); i++) {
    spd_list_key k{gen, i};
    update(fds_.lists, &k, &c.lists[i], "spd_lists");
    w.lists.push_back(k);
  }
  w.src.reserve(c.src.size());
  for (const auto& s : c.src) {
    spd_src_key k{64u + s.len, gen, s.cell, s.saddr};
    update(fds_.src, &k, &s.list, "spd_src");
    w.src.push_back(k);
  }
  w.dst.reserve(c.dst.size());
  for (const auto& d : c.dst) {
    spd_dst_key k{64u + d.len, gen, d.if_id, d.daddr};
    update(fds_.dst, &k, &d.cell, "spd_dst");
    w.dst.push_back(k);
  }
  spd_active a{gen, IPSNAT_SPD_SCHEMA, ++version_};
  uint32_t zero = 0;
  update(fds_.active, &zero, &a, "spd_active");
  active_ = gen;
}

SpdMirror::SpdMirror(SpdMapFds fds, NatConfig nat, int rcvbuf)
    : source_(new xfrm::PolicySource(rcvbuf)), writer_(fds), nat_(std::move(nat)) {}

SpdMirror::~SpdMirror() { delete source_; }

void SpdMirror::publish() {
  CompiledSpd c = compile_spd(model_.ordered(), nat_);
  if (c.refused) {
    stats_.refusals++;
    if (stats_.last_refusal != *c.refused) spdlog::error("spd: {}; keeping the last exact SPD", *c.refused);
    stats_.last_refusal = *c.refused;
    return;
  }
  stats_.last_refusal.clear();
  writer_.write(c);
  stats_.swaps++;
}

void SpdMirror::sync_once() {
  source_->resync(model_);
  publish();
}

bool SpdMirror::poll_once(int timeout_ms) {
  pollfd p{source_->fd(), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  auto d = source_->drain(model_);
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
