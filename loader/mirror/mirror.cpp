#include "mirror/mirror.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <tuple>
#include <utility>

#include "pins/names.h"
#include "mirror/inside_map.h"
#include "state/pinned.h"
#include "pins/pin_store.h"
#include "sys/map_walk.h"
#include "util/error.h"
#include "util/fd.h"
#include "xfrm/policy_source.h"

namespace ipsnat::mirror {

namespace {
int map_fd(bpf_object* obj, const char* name) {
  bpf_map* m = bpf_object__find_map_by_name(obj, name);
  if (!m) throw std::runtime_error(std::string("BPF object has no map ") + name);
  return bpf_map__fd(m);
}

int pinned_fd(const std::string& root, const char* name) {
  std::string path = state::pinned_map_path(root, name);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0)
    throw UserError("cannot open pinned map " + path + ": " + std::strerror(errno), "is ipsnat attached?");
  return fd;
}

Fd open_pin(const std::string& path, uint32_t value_size, uint32_t entries) {
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd) return fd;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 && info.type == BPF_MAP_TYPE_ARRAY &&
      info.value_size == value_size && info.max_entries == entries)
    return fd;
  return Fd();
}

// ROOT/xdp_spoof4 and ROOT/xdp_spoof_act when they have this build's layout, else -1 (pins of an
// older build: no pre-filter can be attached to them).
std::pair<int, int> spoof_pin_fds(const std::string& root) {
  Fd set = open_pin(state::pinned_map_path(root, pins::kSpoofSet), sizeof(xdp_spoof_set), 2);
  Fd act = open_pin(state::pinned_map_path(root, pins::kSpoofActive), sizeof(uint32_t), 1);
  if (!set || !act) return {-1, -1};
  return {set.release(), act.release()};
}

bool map_full(int err) { return err == E2BIG || err == ENOSPC; }

void update(int fd, const void* k, const void* v, const char* what) {
  if (bpf_map_update_elem(fd, k, v, BPF_ANY) != 0) {
    int err = errno;
    if (map_full(err)) throw SpdMapFull(what, err);
    throw SysError(std::string("writing ") + what, err);
  }
}
}  // namespace

SpdMapFull::SpdMapFull(std::string map, int err)
    : std::runtime_error(map + " is full (" + std::strerror(err) + ")"), map_(std::move(map)) {}

SpdMapFds SpdMapFds::from_object(bpf_object* obj) {
  using namespace pins;
  return SpdMapFds{map_fd(obj, kSpdActive), map_fd(obj, kSpdDst),      map_fd(obj, kSpdSrc),
                   map_fd(obj, kSpdLists),  map_fd(obj, kSpdHealth),   map_fd(obj, kSpdCover6),
                   map_fd(obj, kInside),    map_fd(obj, kSpoofSet),    map_fd(obj, kSpoofActive),
                   map_fd(obj, kNpt6),      {}};  // owns nothing: the skeleton does
}

SpdMapFds SpdMapFds::from_pins(const std::string& root) {
  // The daemon writes into maps that attached programs read: it must never write into a map
  // of another layout or meaning. `ipsnat attach` replaces such pins (pins::PinStore); here they are
  // refused.
  struct Expect {
    const char* name;
    uint32_t type, key_size, value_size;
    int SpdMapFds::*fd;
  };
  static const Expect expect[] = {
      {pins::kSpdActive, BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(spd_active), &SpdMapFds::active},
      {pins::kSpdDst, BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_dst_key), sizeof(spd_cell), &SpdMapFds::dst},
      {pins::kSpdSrc, BPF_MAP_TYPE_LPM_TRIE, sizeof(spd_src_key), sizeof(uint32_t), &SpdMapFds::src},
      {pins::kSpdLists, BPF_MAP_TYPE_HASH, sizeof(spd_list_key), sizeof(spd_list), &SpdMapFds::lists},
  };
  pins::PinStore pins(root);
  SpdMapFds f;
  try {
    for (const Expect& e : expect) {
      int fd = f.*(e.fd) = pinned_fd(root, e.name);
      std::string path = state::pinned_map_path(root, e.name);
      bpf_map_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) throw SysError("reading " + path, errno);
      if (info.type != e.type || info.key_size != e.key_size || info.value_size != e.value_size)
        throw UserError("pinned map " + path + " has another layout than this ipsnat's SPD schema " +
                            std::to_string(IPSNAT_SPD_SCHEMA) + " (key " + std::to_string(info.key_size) +
                            ", value " + std::to_string(info.value_size) + " bytes)",
                        "attach again with this ipsnat to replace it");
      auto recorded = pins.recorded_schema(e.name);
      if (!recorded || *recorded != IPSNAT_SPD_SCHEMA)
        throw UserError("pinned map " + path + " has " +
                            (recorded ? "SPD schema " + std::to_string(*recorded) : std::string("no recorded schema")) +
                            ", this ipsnat writes schema " + std::to_string(IPSNAT_SPD_SCHEMA),
                        "attach again with this ipsnat to replace it");
    }
    std::string health = state::pinned_map_path(root, pins::kSpdHealth);
    Fd health_fd(bpf_obj_get(health.c_str()));  // optional: pins of an older build lack it
    if (health_fd) {
      bpf_map_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(health_fd.get(), &info, &len) != 0 || info.value_size != sizeof(spd_health))
        health_fd.reset();
    }
    f.health = health_fd.release();
    std::string inside = state::pinned_map_path(root, pins::kInside);
    f.inside = bpf_obj_get(inside.c_str());  // optional as spd_health
    if (f.inside < 0)
      spdlog::warn("spd: no {}: NAPT translates no source of an inside set (attach again to create it)", inside);
    if (f.health < 0)
      spdlog::warn("spd: no usable {}: an SPD larger than the maps cannot fail closed (attach again to create it)",
                   health);
    f.cover6 = cover6_pin_fd(root);
    f.npt6 = npt6_pin_fd(root);
    std::tie(f.spoof_set, f.spoof_act) = spoof_pin_fds(root);
  } catch (...) {
    f.close_all();
    throw;
  }
  f.owned = std::make_shared<std::vector<Fd>>();
  for (int* fd : f.all())
    if (*fd >= 0) f.owned->emplace_back(*fd);
  return f;
}

std::array<int*, 10> SpdMapFds::all() {
  return {&active, &dst, &src, &lists, &health, &cover6, &inside, &spoof_set, &spoof_act, &npt6};
}

void SpdMapFds::close_all() {
  if (owned)
    for (Fd& fd : *owned) (void)fd.release();  // closed below, once
  owned.reset();
  // Also descriptors this struct does not own: those a caller opened by hand (the tests).
  for (int* fd : all())
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
  find_stale();
}

// Conntrack entries remember the version their translation was checked under and compare it for
// equality only (bpf/lib/xlate.h): a version must never repeat, also across a replaced
// spd_active map (an SPD schema change keeps the ct map). So versions are the wall clock's
// nanoseconds at the swap, and at least one more than the last.
uint64_t SpdMapWriter::next_version() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
  version_ = std::max(version_ + 1, now);
  return version_;
}

// One walk over the maps at the start (nothing for fresh maps): what an earlier process left,
// by generation. Every later write knows what it wrote, so no generation is walked again.
void SpdMapWriter::find_stale() {
  auto walk = [this](int fd, auto key, auto member) {
    using Key = decltype(key);
    sys::walk_map_keys<Key>(fd, [&](const Key& k) { (stale_[k.gen & 1].*member).push_back(k); });
  };
  walk(fds_.dst, spd_dst_key{}, &Stale::dst);
  walk(fds_.src, spd_src_key{}, &Stale::src);
  walk(fds_.lists, spd_list_key{}, &Stale::lists);
}

// Removes whatever an earlier process left in a generation this writer has not written yet.
void SpdMapWriter::purge(uint32_t gen) {
  auto del = [](int fd, auto& keys) {
    for (const auto& k : keys) bpf_map_delete_elem(fd, &k);
    keys.clear();
    keys.shrink_to_fit();
  };
  del(fds_.dst, stale_[gen].dst);
  del(fds_.src, stale_[gen].src);
  del(fds_.lists, stale_[gen].lists);
  written_[gen] = {};
  written_[gen].known = true;
}

// A write into `gen` was refused half way: the generation was never activated. What it left
// is found by one walk (only after a refusal) so that the next write purges it and fills the
// generation whole.
void SpdMapWriter::forget_partial(uint32_t gen) {
  written_[gen] = {};
  Stale other = std::move(stale_[gen ^ 1]);
  stale_[0] = stale_[1] = Stale{};
  find_stale();
  stale_[gen ^ 1] = std::move(other);
}

spd_health SpdMapWriter::health() const {
  spd_health h{};
  uint32_t zero = 0;
  if (fds_.health >= 0) bpf_map_lookup_elem(fds_.health, &zero, &h);
  return h;
}

void SpdMapWriter::set_health(const spd_health& h) {
  uint32_t zero = 0;
  if (fds_.health >= 0) update(fds_.health, &zero, &h, pins::kSpdHealth);
}

void SpdMapWriter::write(const spd::CompiledSpd& c) {
  uint32_t gen = active_ ^ 1;
  // The inactive generation was last read a whole update ago: no datapath program still walks
  // it. It holds the SPD of two updates ago: bring it to `c` by difference.
  if (!written_[gen].known) purge(gen);
  try {
    write_diff(c, gen);
  } catch (...) {  // full, or any other refused write: never activated, rewritten whole next time
    forget_partial(gen);
    throw;
  }
}

void SpdMapWriter::write_diff(const spd::CompiledSpd& c, uint32_t gen) {
  Written& w = written_[gen];
  size_t ops = 0;
  auto same = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; };

  // The entries of `want` the generation lacks or holds otherwise, written; then (delete_stale)
  // the ones it holds and `want` lacks, deleted.
  auto write_changed = [&](const auto& want, const auto& had, int fd, const char* map, auto key_of) {
    for (const auto& [t, v] : want) {
      auto it = had.find(t);
      if (it != had.end() && same(it->second, v)) continue;
      auto k = key_of(t);
      update(fd, &k, &v, map);
      ops++;
    }
  };
  auto delete_stale = [&](const auto& had, const auto& want, int fd, auto key_of) {
    for (const auto& entry : had)
      if (!want.count(entry.first)) {
        auto k = key_of(entry.first);
        bpf_map_delete_elem(fd, &k);
        ops++;
      }
  };
  using Lpm = std::tuple<uint32_t, uint8_t, uint32_t>;  // (cell or if_id, prefix length, address)
  auto list_key = [gen](uint32_t id) { return spd_list_key{gen, id}; };
  auto src_key = [gen](const Lpm& t) {
    return spd_src_key{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
  };
  auto dst_key = [gen](const Lpm& t) {
    return spd_dst_key{64u + std::get<1>(t), gen, std::get<0>(t), std::get<2>(t)};
  };

  std::map<uint32_t, spd_list> lists;
  for (const auto& [id, l] : c.lists) lists.emplace(id, l);
  write_changed(lists, w.lists, fds_.lists, pins::kSpdLists, list_key);
  std::map<Lpm, uint32_t> src;
  for (const auto& e : c.src) src.emplace(std::make_tuple(e.cell, e.len, e.saddr), e.list);
  write_changed(src, w.src, fds_.src, pins::kSpdSrc, src_key);
  std::map<Lpm, spd_cell> dst;
  for (const auto& e : c.dst) dst.emplace(std::make_tuple(e.if_id, e.len, e.daddr), e.cell);
  write_changed(dst, w.dst, fds_.dst, pins::kSpdDst, dst_key);
  // Stale entries go after the new ones are in (this generation is not read anyway).
  delete_stale(w.dst, dst, fds_.dst, dst_key);
  delete_stale(w.src, src, fds_.src, src_key);
  delete_stale(w.lists, lists, fds_.lists, list_key);
  w.dst = std::move(dst);
  w.src = std::move(src);
  w.lists = std::move(lists);
  spd_active a{gen, IPSNAT_SPD_SCHEMA, next_version()};
  uint32_t zero = 0;
  update(fds_.active, &zero, &a, pins::kSpdActive);
  active_ = gen;
  last_ops_ = ops;
}

template <class K, class V>
void SpdMapWriter::put(int slot, int fd, const std::vector<K>& keys, const std::vector<V>& values, const char* what) {
  size_t done = 0;
  if (!batch_off_[slot] && !keys.empty()) {
    // One syscall per batch (LPM tries take batches through the kernel's generic loop).
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    __u32 count = static_cast<__u32>(keys.size());
    if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) == 0) return;
    int err = errno;
    if (map_full(err)) throw SpdMapFull(what, err);
    if (err != EINVAL && err != ENOTSUP && err != EOPNOTSUPP && err != 524 /* ENOTSUPP */)
      throw SysError(std::string("writing ") + what + " (batch)", err);
    spdlog::info("spd: batched updates of {} refused ({}), writing element by element", what, std::strerror(err));
    batch_off_[slot] = true;
    done = count;
  }
  for (size_t i = done; i < keys.size(); i++) update(fd, &keys[i], &values[i], what);
}

void SpdMapWriter::stage(const spd::SpdDelta& d) {
  // A generation not written yet gets every entry at its first write: nothing to record.
  for (uint32_t gen : {0u, 1u}) {
    if (!written_[gen].known) continue;
    spd::SpdDelta& p = pending_[gen];
    p.merge(d);
    // While a refusal stands, deltas pile up without writes: repeats are dropped now and then.
    if (p.size() > 2 * pending_distinct_[gen] + 65536) {
      p.dedupe();
      pending_distinct_[gen] = p.size();
    }
  }
}

void SpdMapWriter::write(const spd::IncrementalSpd& s) {
  uint32_t gen = active_ ^ 1;
  spd::SpdDelta& p = pending_[gen];
  p.dedupe();
  bool whole = !written_[gen].known;
  if (whole) purge(gen);  // what an earlier process left; then every entry
  std::vector<spd_list_key> lk;
  std::vector<spd_list> lv;
  std::vector<spd_src_key> sk;
  std::vector<uint32_t> sv;
  std::vector<spd_dst_key> dk;
  std::vector<spd_cell> dv;
  std::vector<spd_list_key> ldel;
  std::vector<spd_src_key> sdel;
  std::vector<spd_dst_key> ddel;
  auto on_list = [&](uint32_t id) {
    spd_list_key k{gen, id};
    if (const spd_list* l = s.list(id)) {
      lk.push_back(k), lv.push_back(*l);
    } else {
      ldel.push_back(k);
    }
  };
  auto on_src = [&](const spd::SrcKey& t) {
    spd_src_key k{64u + t.len, gen, t.cell, t.saddr};
    if (auto l = s.src(t)) {
      sk.push_back(k), sv.push_back(*l);
    } else {
      sdel.push_back(k);
    }
  };
  auto on_dst = [&](const spd::DstKey& t) {
    spd_dst_key k{64u + t.len, gen, t.if_id, t.daddr};
    if (const spd_cell* c = s.dst(t)) {
      dk.push_back(k), dv.push_back(*c);
    } else {
      ddel.push_back(k);
    }
  };
  if (whole) {
    s.for_each(
        [&](const spd::DstKey& t, const spd_cell& c) {
          dk.push_back(spd_dst_key{64u + t.len, gen, t.if_id, t.daddr}), dv.push_back(c);
        },
        [&](const spd::SrcKey& t, uint32_t list) {
          sk.push_back(spd_src_key{64u + t.len, gen, t.cell, t.saddr}), sv.push_back(list);
        },
        [&](uint32_t id, const spd_list& l) { lk.push_back(spd_list_key{gen, id}), lv.push_back(l); });
  } else {
    for (uint32_t id : p.lists) on_list(id);
    for (const auto& t : p.src) on_src(t);
    for (const auto& t : p.dst) on_dst(t);
  }
  // The generation is not read until the switch below; the order only keeps every reference
  // resolvable at all times anyway (lists, then sources, then cells; removals in reverse).
  try {
    put(2, fds_.lists, lk, lv, pins::kSpdLists);
    put(1, fds_.src, sk, sv, pins::kSpdSrc);
    put(0, fds_.dst, dk, dv, pins::kSpdDst);
    auto del = [](int fd, const auto& keys, const char* what) {
      for (const auto& k : keys)
        if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) throw SysError(std::string("deleting from ") + what, errno);
    };
    del(fds_.dst, ddel, pins::kSpdDst);
    del(fds_.src, sdel, pins::kSpdSrc);
    del(fds_.lists, ldel, pins::kSpdLists);
  } catch (...) {
    forget_partial(gen);
    p = spd::SpdDelta{};
    throw;
  }
  last_ops_ = lk.size() + sk.size() + dk.size() + ldel.size() + sdel.size() + ddel.size();
  p = spd::SpdDelta{};
  pending_distinct_[gen] = 0;
  spd_active a{gen, IPSNAT_SPD_SCHEMA, next_version()};
  uint32_t zero = 0;
  update(fds_.active, &zero, &a, pins::kSpdActive);
  active_ = gen;
}

SpdMirror::SpdMirror(SpdMapFds fds, spd::NatConfig nat, int rcvbuf)
    : compiled_(nat), source_(new xfrm::PolicySource(rcvbuf)), writer_(fds), cover6_(fds.cover6), npt6_(fds.npt6),
      spoof_(fds.spoof_set, fds.spoof_act), nat_(std::move(nat)),
      inside_fd_(fds.inside) {
  stats_.fail_closed = writer_.health().flags & SPD_HEALTH_FAIL_CLOSED;
}

SpdMirror::~SpdMirror() { delete source_; }

void SpdMirror::publish(bool full) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  auto t0 = Clock::now();
  spd::SpdModel::Changes ch = model_.take_changes();
  if (full || ch.reset)
    compiled_.rebuild(model_);
  else
    compiled_.update(model_, ch.indices);
  writer_.stage(compiled_.take_delta());
  auto t1 = Clock::now();
  sync_times_.compile_ms = ms(t0, t1);
  try {
    // First and whatever happens to the other maps: a stale drop set could drop what the kernel
    // accepts now.
    spoof_.write(model_);
  } catch (const std::exception& e) {
    spdlog::error("spd: {}; the XDP pre-filter may drop by an older SPD", e.what());
  }
  spd_health h = writer_.health();
  // Set again below only if this publish's write fails too: a stale error would be retried.
  std::string failed_before = std::exchange(stats_.last_write_error, {});
  if (auto refused = compiled_.refused()) {
    // Not one policy of the SPD can be trusted to be in the maps: a policy added since the last
    // exact SPD would look uncovered and the leak guard would let its cleartext out.
    stats_.refusals++;
    if (stats_.last_refusal != *refused)
      spdlog::error("spd: {}; the maps keep the last SPD that could be mirrored exactly and the datapath fails "
                    "closed", *refused);
    stats_.last_refusal = *refused;
    fail_closed(h, SPD_HEALTH_UNREPRESENTABLE);
    return;
  }
  stats_.last_refusal.clear();
  auto counts = compiled_.entry_counts();
  h.dst = counts.dst, h.src = counts.src, h.lists = counts.lists;
  std::vector<std::string> unknown = compiled_.unknown();
  try {
    cover6_.write(model_);
    npt6_.write(model_, nat_.inside, nat_.local, nat_.overrides);
    writer_.write(compiled_);
  } catch (const SpdMapFull& e) {
    // The limit watcher (loader/limits) logs the condition once per interval; here only the
    // transition.
    stats_.capacity_failures++;
    stats_.last_capacity_error = e.what();
    h.failures++;
    if (!stats_.fail_closed)
      spdlog::debug("spd: {} ({} policies need {} spd_dst, {} spd_src, {} spd_lists entries per generation); failing "
                    "closed", e.what(), model_.size(), h.dst, h.src, h.lists);
    fail_closed(h, 0);
    return;
  } catch (const std::exception& e) {
    // Refused for another reason (EPERM, ENOMEM, ...): the maps are just as stale. Nothing may
    // change in the SPD for a long time, so retry_failed_write() tries again.
    stats_.write_errors++;
    if (failed_before != e.what())
      spdlog::error("spd: {}; the datapath fails closed, the write is retried every second", e.what());
    stats_.last_write_error = e.what();
    retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    fail_closed(h, SPD_HEALTH_WRITE_FAILED);
    return;
  }
  if (!failed_before.empty()) spdlog::info("spd: the maps were written again");
  // Cleared after the swap: between the two the datapath only fails closed a moment longer.
  h.flags &= ~uint32_t(SPD_HEALTH_FAIL_CLOSED | SPD_HEALTH_UNREPRESENTABLE | SPD_HEALTH_WRITE_FAILED |
                       SPD_HEALTH_POLICY_UNKNOWN);
  if (!unknown.empty()) h.flags |= SPD_HEALTH_POLICY_UNKNOWN;
  h.since = 0;
  writer_.set_health(h);
  for (const auto& u : unknown)
    if (std::find(stats_.unknown_policies.begin(), stats_.unknown_policies.end(), u) == stats_.unknown_policies.end())
      spdlog::warn("spd: {}", u);
  stats_.unknown_policies = std::move(unknown);
  stats_.fail_closed = false;
  stats_.last_capacity_error.clear();
  stats_.swaps++;
  auto t2 = Clock::now();
  sync_times_.write_ms = ms(t1, t2);
  sync_times_.second_write_ms = 0;
  // The first write filled one generation; the other is filled now, not at the first change
  // (which would then wait for a whole fill).
  if (writer_.inactive_unwritten()) {
    auto thread_cpu_ms = [] {
      timespec ts{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
    };
    double c2 = thread_cpu_ms();
    try {
      writer_.write(compiled_);
      stats_.swaps++;
    } catch (const SpdMapFull& e) {
      // The active generation is complete; if the next change cannot be written either, it
      // fails closed then.
      spdlog::debug("spd: second generation not filled yet: {}", e.what());
    }
    sync_times_.second_write_ms = ms(t2, Clock::now());
    sync_times_.second_write_cpu_ms = thread_cpu_ms() - c2;
  }
  spdlog::debug("spd: {} policies, compiled in {:.2f} ms, {} map operations in {:.2f} ms", model_.size(),
                ms(t0, t1), writer_.last_ops(), ms(t1, t2));
}

// maps/spd.h spd_health: the active generation is stale; `cause` is 0 (no room),
// SPD_HEALTH_UNREPRESENTABLE or SPD_HEALTH_WRITE_FAILED. If even this write fails, the error
// ends the caller (nothing could fail closed).
void SpdMirror::fail_closed(spd_health h, uint32_t cause) {
  if (!(h.flags & SPD_HEALTH_FAIL_CLOSED)) h.since = static_cast<uint64_t>(std::time(nullptr));
  h.flags = (h.flags & ~uint32_t(SPD_HEALTH_UNREPRESENTABLE | SPD_HEALTH_WRITE_FAILED)) | SPD_HEALTH_FAIL_CLOSED | cause;
  writer_.set_health(h);
  stats_.fail_closed = true;
}

void SpdMirror::sync_once() {
  // Before the SPD: a NAPT target that asks the inside set never meets an empty one.
  if (inside_fd_ >= 0) write_inside_map(inside_fd_, inside_entries(nat_.inside, nat_.local));
  auto t0 = std::chrono::steady_clock::now();
  source_->resync(model_);
  sync_times_ = SpdSyncTimes{};
  sync_times_.dump_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  publish(true);
}

void SpdMirror::set_local(std::vector<Address> local) {
  if (local == nat_.local) return;
  bool moves = spd::local_change_moves_nat(model_, nat_, local);
  nat_.local = std::move(local);
  if (inside_fd_ >= 0) write_inside_map(inside_fd_, inside_entries(nat_.inside, nat_.local));
  compiled_.set_local(nat_.local);
  // NAPT and NAT66 pools leave the gateway's addresses out (spd/nat.h, spd/npt6.h). A pool that
  // changed is published as a new SPD version (the NAT66 rules, then the generation's switch):
  // an established flow checks its address against it again, so one translated to an address
  // that has just become the gateway's own moves off it (docs/datapath.md "Established flows
  // and SPD changes"). Address churn outside every pool publishes nothing.
  if (moves) {
    publish(true);
  } else if (!stats_.fail_closed) {
    // Only the IPv6 inside set's entries of the gateway's own addresses (NAT66 takes a LAN packet
    // a netfilter masquerade rewrote to one of them) can differ: rewritten in place. A failed
    // write leaves the old ones until the next publish writes the map whole.
    try {
      npt6_.write(model_, nat_.inside, nat_.local, nat_.overrides);
    } catch (const std::exception& e) {
      spdlog::warn("spd: {}; the gateway's own IPv6 addresses are updated with the next SPD change", e.what());
    }
  }
}

int SpdMirror::fd() const { return source_->fd(); }

bool SpdMirror::retry_failed_write() {
  if (stats_.last_write_error.empty() || std::chrono::steady_clock::now() < retry_at_) return false;
  publish(false);  // the failed generation is rewritten whole (SpdMapWriter::forget_partial)
  return true;
}

bool SpdMirror::poll_once(int timeout_ms) {
  bool retried = retry_failed_write();
  pollfd p{source_->fd(), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return retried;
  // Everything queued is applied, then compiled once: a burst costs one map write, a single
  // change is not delayed waiting for more.
  auto d = source_->drain(model_);
  stats_.events += d.events;
  if (d.overrun) {
    stats_.resyncs++;
    spdlog::warn("spd: XFRM notifications lost (socket buffer overrun), resyncing from a full dump");
    source_->resync(model_);
    publish(true);
    return true;
  }
  if (!d.changed) return retried;
  publish(false);
  return true;
}

void SpdMirror::run(std::stop_token stop) {
  while (!stop.stop_requested()) poll_once(200);
}

}  // namespace ipsnat::mirror
