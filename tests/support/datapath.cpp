#include "support/datapath.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/reasons.h"
#include "pins/dev_map.h"
#include "support/spd_probe.h"
#include "sys/map_walk.h"

namespace ipsnat::test {

ipsnat_bpf* load_unpinned_skeleton(bool sa_reqid_from_mark) {
  ipsnat_bpf* skel = ipsnat_bpf__open();
  if (!skel) throw std::runtime_error("opening the BPF skeleton failed");
  skel->rodata->ipsnat_test_sa_from_mark = sa_reqid_from_mark;
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) bpf_map__set_pin_path(map, nullptr);
  if (int err = ipsnat_bpf__load(skel)) {
    ipsnat_bpf__destroy(skel);
    throw std::runtime_error("loading the BPF skeleton failed: " + std::to_string(err));
  }
  return skel;
}

namespace {

// Loading the object verifies every program: about a second on the build host, tens of seconds
// on the VM's emulated CPU (tests/vm/t_bpf_kernel.sh). A Datapath therefore takes a loaded object
// a finished test gave back when one with the same read-only settings is idle, its maps emptied
// as a fresh load leaves them (reset_maps), so a test process loads once per variant.
struct IdleObject {
  ipsnat_bpf* skel;
  bool sa_reqid_from_mark;
};

std::vector<IdleObject>& idle_objects() {
  static std::vector<IdleObject> idle;
  return idle;
}

uint64_t next_instance() {
  static uint64_t n = 0;
  return ++n;
}

// Every element gone (hash, LRU, LPM) or zero (arrays), as after a load: the object has no
// initialised data (.data) and its read-only sections (.rodata, .rodata.cst32, ...) are frozen at
// load, so zero is the fresh state of every map a test can write.
void reset_maps(bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    std::string_view section(name);
    if (bpf_map__is_internal(map) && (section.find(".rodata") != section.npos || section.ends_with(".kconfig")))
      continue;
    if (bpf_map__is_internal(map) && !section.ends_with(".bss"))
      throw std::runtime_error(std::string("Datapath: no reset for the object's section map ") + name);
    int fd = bpf_map__fd(map);
    uint32_t max = bpf_map__max_entries(map);
    switch (bpf_map__type(map)) {
      case BPF_MAP_TYPE_ARRAY:
      case BPF_MAP_TYPE_PERCPU_ARRAY: {
        size_t size = bpf_map__value_size(map);
        if (bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_ARRAY)
          size = ((size + 7) / 8 * 8) * static_cast<size_t>(libbpf_num_possible_cpus());
        std::vector<uint8_t> zero(size, 0);
        for (uint32_t i = 0; i < max; ++i)
          if (bpf_map_update_elem(fd, &i, zero.data(), BPF_ANY) != 0)
            throw std::runtime_error(std::string("Datapath: zeroing ") + name + " failed");
        break;
      }
      case BPF_MAP_TYPE_HASH:
      case BPF_MAP_TYPE_LRU_HASH:
      case BPF_MAP_TYPE_LPM_TRIE: {
        std::vector<uint8_t> key(bpf_map__key_size(map));
        // Bounded: each round removes the first key, so max + 1 rounds empty any map.
        for (uint64_t round = 0;; ++round) {
          if (bpf_map_get_next_key(fd, nullptr, key.data()) != 0) break;
          if (round > max || bpf_map_delete_elem(fd, key.data()) != 0)
            throw std::runtime_error(std::string("Datapath: emptying ") + name + " failed");
        }
        break;
      }
      default:
        throw std::runtime_error(std::string("Datapath: no reset for the map type of ") + name);
    }
  }
}

ipsnat_bpf* load_object(bool sa_reqid_from_mark) {
  auto& idle = idle_objects();
  for (auto it = idle.begin(); it != idle.end(); ++it) {
    if (it->sa_reqid_from_mark != sa_reqid_from_mark) continue;
    ipsnat_bpf* skel = it->skel;
    idle.erase(it);
    reset_maps(skel->obj);
    return skel;
  }
  return load_unpinned_skeleton(sa_reqid_from_mark);
}

}  // namespace

Datapath::Datapath(bool sa_reqid_from_mark)
    : skel_(load_object(sa_reqid_from_mark)), sa_reqid_from_mark_(sa_reqid_from_mark), instance_(next_instance()) {}

Datapath::~Datapath() {
  probe_.reset();
  idle_objects().push_back({skel_, sa_reqid_from_mark_});
}

SpdProbeProgram& Datapath::spd_probe() {
  if (!probe_) probe_ = std::make_unique<SpdProbeProgram>(skel_->obj);
  return *probe_;
}

RunResult Datapath::run(bpf_program* prog, const Bytes& pkt, uint32_t mark) { return run_ctx(prog, pkt, mark, 0); }

RunResult Datapath::run_forwarded(bpf_program* prog, const Bytes& pkt, uint32_t ingress_ifindex) {
  return run_ctx(prog, pkt, 0, ingress_ifindex);
}

RunResult Datapath::run_ctx(bpf_program* prog, const Bytes& pkt, uint32_t mark, uint32_t ingress_ifindex) {
  RunResult r;
  r.out.resize(pkt.size() + 256);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  __sk_buff ctx{};
  if (mark || ingress_ifindex) {
    ctx.mark = mark;
    ctx.ingress_ifindex = ingress_ifindex;
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
  }
  opts.data_in = pkt.data();
  opts.data_size_in = static_cast<__u32>(pkt.size());
  opts.data_out = r.out.data();
  opts.data_size_out = static_cast<__u32>(r.out.size());
  opts.repeat = 1;
  if (int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts))
    throw std::runtime_error("BPF_PROG_TEST_RUN failed: " + std::to_string(err));
  r.retval = opts.retval;
  r.duration_ns = opts.duration;
  r.out.resize(opts.data_size_out);
  return r;
}

uint64_t Datapath::reason_packets(enum ipsnat_reason reason) const {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<ipsnat_counter> values(ncpu);
  uint32_t key = reason;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ipsnat_stats), &key, values.data()) != 0)
    throw std::runtime_error("reading ipsnat_stats failed");
  uint64_t sum = 0;
  for (const auto& v : values) sum += v.packets;
  return sum;
}

std::string Datapath::nonzero_reasons() const {
  std::string s;
  for (unsigned r = 0; r < IPSNAT_R_MAX; ++r)
    if (uint64_t n = reason_packets(static_cast<ipsnat_reason>(r)))
      s += std::string(reason_name(r)) + "=" + std::to_string(n) + " ";
  return s;
}

void Datapath::set_config(const ipsnat_config& cfg) {
  uint32_t key = 0;
  if (bpf_map_update_elem(cfg_fd(), &key, &cfg, BPF_ANY) != 0) throw std::runtime_error("writing ipsnat_cfg failed");
}

void Datapath::set_port_range(uint16_t min, uint16_t max) {
  ipsnat_config cfg{};
  cfg.port_min = min;
  cfg.port_max = max;
  set_config(cfg);
}

void Datapath::set_inside(const std::string& prefix, uint32_t flags) {
  auto slash = prefix.find('/');
  ipsnat_inside_key k{};
  k.prefixlen = slash == std::string::npos ? 32 : std::stoi(prefix.substr(slash + 1));
  if (inet_pton(AF_INET, prefix.substr(0, slash).c_str(), &k.addr) != 1)
    throw std::runtime_error("not an IPv4 prefix: " + prefix);
  ipsnat_inside_val v{flags};
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.ipsnat_inside), &k, &v, BPF_ANY) != 0)
    throw std::runtime_error("writing ipsnat_inside failed");
}

uint32_t Datapath::test_ifindex() { return if_nametoindex("lo"); }

void Datapath::set_dev_mode(uint32_t ifindex, ipsnat_dev_mode mode, uint32_t if_id, uint32_t flags) {
  ipsnat_dev_cfg d{};
  d.mode = mode;
  d.if_id = if_id;
  d.flags = flags;
  set_dev_cfg(ifindex, d);
}

void Datapath::set_dev_cfg(uint32_t ifindex, const ipsnat_dev_cfg& d) {
  pins::write_device(bpf_map__fd(skel_->maps.ipsnat_dev), bpf_map__fd(skel_->maps.ipsnat_dev_gen), ifindex, &d);
}

std::optional<ipsnat_ct_entry> Datapath::ct_get(const ipsnat_ct_key& key) const {
  ipsnat_ct_entry e{};
  if (bpf_map_lookup_elem(ct_fd(), &key, &e) != 0) return std::nullopt;
  return e;
}

std::vector<std::pair<ipsnat_ct_key, ipsnat_ct_entry>> Datapath::ct_all() const {
  std::vector<std::pair<ipsnat_ct_key, ipsnat_ct_entry>> all;
  sys::walk_map_keys<ipsnat_ct_key>(ct_fd(), [&](const ipsnat_ct_key& key) {
    ipsnat_ct_entry e{};
    if (bpf_map_lookup_elem(ct_fd(), &key, &e) == 0) all.emplace_back(key, e);
  });
  return all;
}

uint32_t program_id(bpf_program* prog) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0)
    throw std::runtime_error(std::string("reading the id of ") + bpf_program__name(prog) + " failed");
  return info.id;
}

ipsnat_ct_key ct_key(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
                     uint8_t proto, ipsnat_ct_dir dir) {
  ipsnat_ct_key k{};
  k.saddr = parse_ipv4(src);
  k.daddr = parse_ipv4(dst);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.dir = static_cast<uint8_t>(dir);
  return k;
}

}  // namespace ipsnat::test
