// A/B cost of the datapath's hot paths in the kernel, without a network: two builds of the
// datapath object (A, B) are loaded side by side, each given the same configuration and SPD, and
// their programs are run on the same golden packets with BPF_PROG_TEST_RUN, each packet through
// A and B in turn, so that load from other processes hits both alike; each round reports the
// trimmed mean of the kernel's per-run duration per build, and the result is the median over
// rounds, with the median of the rounds' B - A (docs/benchmarks.md).
//
//   ipsnat_abtime --a A.bpf.o --b B.bpf.o [--case est,new,masq,masq-new,lwt,lwt-new,lwt-syn,est6,new6,est6pool,new6pool]
//                 [--rounds 12]
//                 [--loads 4] [--packets 10000] [--flows 1000]
//
// One packet per run (repeat = 1): the programs rewrite the packet in place, so a repeated run
// would see the translated packet and take another path. Cases:
//   est       route mode (tc_snat_egress), an established UDP flow out of --flows flows
//   new       route mode, a new UDP 5-tuple every packet (conntrack is emptied between rounds)
//   masq      `--masquerade` (tc_guard_egress, policy mode), an established flow to a
//             destination no out-policy covers
//   masq-new  the same, a new 5-tuple every packet
//   lwt       policy mode's LWT xmit program (lwt_snat_xmit), an established flow
//   lwt-new   the same, a new UDP 5-tuple every packet (as `new`: two inserts, no port search)
//   lwt-syn   the same, a TCP SYN of a new connection every packet (a connection's first packet,
//             which is what the end-to-end bench's tcp-cc times for policy mode)
//   est6      route mode, an established NAT66 UDP flow out of --flows flows (an IPv6 out-policy
//             from one address: lib/nat66.h)
//   new6      route mode, a new IPv6 UDP 5-tuple every packet (ct6 emptied between rounds)
//   est6pool  as est6, towards a destination whose out-policy's source is a /120 pool, smaller
//             than the LAN: NAT66 over the pool, each LAN host keeping one of its addresses
//   new6pool  as new6 towards that destination (the pool pick on every new flow)
// Every packet's return code and the reason counters must show the path meant (translated);
// otherwise the case fails rather than time the wrong path.
#include <arpa/inet.h>
#include <getopt.h>
#include <net/if.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "core/reasons.h"
#include "maps/config.h"
#include "maps/inside.h"
#include "maps/stats.h"
#include "mirror/mirror.h"
#include "pins/dev_map.h"
#include "spd/compiler.h"
#include "spd/model.h"
#include "spd/tunnel_policy.h"
#include "support/packet.h"
#include "sys/map_walk.h"

namespace {

namespace mirror = ipsnat::mirror;
namespace spd = ipsnat::spd;
namespace sys = ipsnat::sys;

using ipsnat::test::Bytes;
using ipsnat::test::PacketBuilder;
using ipsnat::test::parse_ipv4;

// Documentation and benchmark prefixes only (the inside LAN, the far side, the NAT address).
const char* const kInside = "172.16.0.0/16";
const char* const kNat = "100.64.0.1";
const char* const kUplink = "198.18.0.2";
// IPv6: the LAN fd00:9::/48 leaves as the one address kNat66 towards 2001:db8:f00::/40 (NAT66).
const char* const kInside6 = "fd00:9::/48";
const char* const kNat66 = "2001:db8:b:7::5";
// ... and towards 2001:db8:e00::/40 over the pool of the /120 kPool66 (a LAN larger than it).
const char* const kPool66 = "2001:db8:b:8::/120";
constexpr uint32_t kLanIfindex = 7;  // a forwarded packet's input device (masquerade)

struct Case {
  std::string name;
  const char* prog;
  bool fresh;       // a new 5-tuple every packet
  bool masquerade;  // policy-mode uplink with --masquerade, else route mode / LWT
  bool lwt;         // policy mode's LWT program (no device configuration)
  bool ipv6;        // NAT66 (route mode)
  bool tcp_syn;     // a TCP SYN instead of a UDP datagram
  bool pool6 = false;  // NAT66 over kPool66's pool instead of to the one address kNat66
};

const std::vector<Case> kCases = {
    {"est", "tc_snat_egress", false, false, false, false, false},
    {"new", "tc_snat_egress", true, false, false, false, false},
    {"masq", "tc_guard_egress", false, true, false, false, false},
    {"masq-new", "tc_guard_egress", true, true, false, false, false},
    {"lwt", "lwt_snat_xmit", false, false, true, false, false},
    {"lwt-new", "lwt_snat_xmit", true, false, true, false, false},
    {"lwt-syn", "lwt_snat_xmit", true, false, true, false, true},
    {"est6", "tc_snat_egress", false, false, false, true, false},
    {"new6", "tc_snat_egress", true, false, false, true, false},
    {"est6pool", "tc_snat_egress", false, false, false, true, false, true},
    {"new6pool", "tc_snat_egress", true, false, false, true, false, true},
};

// An ESP tunnel out-policy src -> dst whose reqid is its index.
spd::Policy out_policy(uint32_t index, const std::string& src, const std::string& dst) {
  spd::Policy p = spd::tunnel_policy(spd::Dir::Out, ipsnat::parse_prefix(src), ipsnat::parse_prefix(dst), index);
  p.index = index;
  p.priority = 100;
  p.seq = index;
  return p;
}

// One build of the datapath, loaded without pins and configured for a case.
class Datapath {
 public:
  Datapath(const std::string& path, const Case& c) : case_(c) {
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj_) throw std::runtime_error("cannot open " + path);
    bpf_map* m;
    bpf_object__for_each_map(m, obj_) bpf_map__set_pin_path(m, nullptr);
    if (bpf_object__load(obj_)) throw std::runtime_error("cannot load " + path);
    prog_ = bpf_object__find_program_by_name(obj_, c.prog);
    if (!prog_) throw std::runtime_error(std::string(c.prog) + " not in " + path);
    configure();
  }
  ~Datapath() { bpf_object__close(obj_); }
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // The kernel's duration of one run; throws unless the packet was translated.
  uint32_t run(const Bytes& pkt) {
    Bytes out(pkt.size() + 64);
    __sk_buff ctx{};
    ctx.ingress_ifindex = case_.masquerade ? kLanIfindex : 0;
    bpf_test_run_opts o{};
    o.sz = sizeof(o);
    o.data_in = pkt.data();
    o.data_size_in = static_cast<uint32_t>(pkt.size());
    o.data_out = out.data();
    o.data_size_out = static_cast<uint32_t>(out.size());
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
    o.repeat = 1;
    if (bpf_prog_test_run_opts(bpf_program__fd(prog_), &o))
      throw std::runtime_error(std::string("BPF_PROG_TEST_RUN: ") + strerror(errno));
    return o.duration;
  }

  uint64_t reason_packets(unsigned reason) {
    std::vector<ipsnat_counter> v(libbpf_num_possible_cpus());
    uint32_t key = reason;
    if (bpf_map_lookup_elem(fd("ipsnat_stats"), &key, v.data())) throw std::runtime_error("reading ipsnat_stats");
    uint64_t n = 0;
    for (const auto& c : v) n += c.packets;
    return n;
  }

  // Every entry of the conntrack and fragment maps removed (between rounds of new flows).
  void flush() {
    for (const char* name : {"ipsnat_ct", "ipsnat_frag", "ipsnat_ct6", "ipsnat_frag6"}) {
      int f = fd(name);
      uint32_t ksz = bpf_map__key_size(bpf_object__find_map_by_name(obj_, name));
      std::vector<std::vector<uint8_t>> keys;
      sys::walk_map_keys(f, ksz, [&](const void* k) {
        auto bytes = static_cast<const uint8_t*>(k);
        keys.emplace_back(bytes, bytes + ksz);
      });
      for (const auto& k : keys) bpf_map_delete_elem(f, k.data());
    }
  }

 private:
  int fd(const char* name) {
    bpf_map* m = bpf_object__find_map_by_name(obj_, name);
    if (!m) throw std::runtime_error(std::string("no map ") + name);
    return bpf_map__fd(m);
  }

  void configure() {
    uint32_t zero = 0;
    ipsnat_config cfg{};
    cfg.port_min = IPSNAT_DEF_PORT_MIN;
    cfg.port_max = IPSNAT_DEF_PORT_MAX;
    if (bpf_map_update_elem(fd("ipsnat_cfg"), &zero, &cfg, BPF_ANY)) throw std::runtime_error("writing ipsnat_cfg");
    ipsnat_dev_cfg d{};
    d.mode = case_.masquerade || case_.lwt ? IPSNAT_DEV_POLICY : IPSNAT_DEV_ROUTE;
    if (case_.masquerade) {
      d.masq_addr = parse_ipv4(kUplink);
      d.masq_port_min = 61000;
      d.masq_port_max = 65535;
    }
    uint32_t lo = if_nametoindex("lo");
    // With its generation where the build has one (pins/dev_map.h), as the loader writes it.
    bpf_map* gen = bpf_object__find_map_by_name(obj_, "ipsnat_dev_gen");
    ipsnat::pins::write_device(fd("ipsnat_dev"), gen ? bpf_map__fd(gen) : -1, lo, &d);
    // The company's 10.0.0.0/8 behind an out-policy from the NAT address (the SPD implies NAPT
    // of the inside set to it); the masquerade case sends elsewhere. Its 2001:db8:f00::/40
    // behind one from kNat66 (a NAT66 rule of the IPv6 inside set). As the mirror does: the
    // NAT66 rules first, then the SPD and its new version.
    spd::SpdModel model;
    model.apply(spd::PolicyUpsert{out_policy(9, std::string(kNat) + "/32", "10.0.0.0/8")});
    model.apply(spd::PolicyUpsert{out_policy(10, std::string(kNat66) + "/128", "2001:db8:f00::/40")});
    model.apply(spd::PolicyUpsert{out_policy(11, kPool66, "2001:db8:e00::/40")});
    spd::NatConfig nat;
    nat.inside.push_back(ipsnat::parse_prefix(kInside));
    nat.inside.push_back(ipsnat::parse_prefix(kInside6));
    auto compiled = spd::compile_spd(model.ordered(), nat);
    if (compiled.refused) throw std::runtime_error("SPD refused: " + *compiled.refused);
    mirror::SpdMapFds fds = mirror::SpdMapFds::from_object(obj_);
    mirror::Npt6Writer(fds.npt6).write(model, nat.inside);
    mirror::SpdMapWriter(fds).write(compiled);
    ipsnat_inside_key k{};
    k.prefixlen = 16;
    k.addr = parse_ipv4("172.16.0.0");
    ipsnat_inside_val v{INSIDE_PREFIX};
    if (bpf_map_update_elem(fd("ipsnat_inside"), &k, &v, BPF_ANY)) throw std::runtime_error("writing ipsnat_inside");
  }

  const Case& case_;
  bpf_object* obj_ = nullptr;
  bpf_program* prog_ = nullptr;
};

// Packet i of a round: flow i % flows, or for fresh cases a tuple no earlier packet of the
// round had (source host, source port and destination vary). In route mode each new flow keeps
// its source port, as the end-to-end bench's (scripts/bench/sender.c): the port is in the NAPT
// range and no other flow holds it towards that remote endpoint, so the case times the two
// inserts and not a port search. The masquerade range (61000-65535) holds none of these ports:
// masq-new times the search.
Bytes packet(const Case& c, unsigned i, unsigned flows) {
  static const PacketBuilder eth;
  const PacketBuilder& b = eth;  // LWT too: the test run strips the L2 header
  unsigned n = c.fresh ? i : i % flows;
  unsigned host = 1 + n % 250, remote = 1 + (n / 250) % 200;
  uint16_t sport = static_cast<uint16_t>(20000 + (n / 50000) % 40000);
  if (c.fresh && !c.masquerade) sport = static_cast<uint16_t>(1024 + n % 59000);
  if (c.ipv6) {
    char ss[INET6_ADDRSTRLEN], ds[INET6_ADDRSTRLEN];
    std::snprintf(ss, sizeof(ss), "fd00:9::%x", host);
    std::snprintf(ds, sizeof(ds), c.pool6 ? "2001:db8:e00::%x" : "2001:db8:f00::%x", remote);
    return b.ipv6_l4(ss, ds, IPPROTO_UDP, ipsnat::test::udp_header(sport, 5201, 18));
  }
  uint32_t src = ntohl(parse_ipv4("172.16.0.0")) + host;
  uint32_t dst = ntohl(parse_ipv4(c.masquerade ? "198.51.100.0" : "10.1.0.0")) + remote;
  in_addr s{htonl(src)}, d{htonl(dst)};
  char ss[INET_ADDRSTRLEN], ds[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &s, ss, sizeof(ss));
  inet_ntop(AF_INET, &d, ds, sizeof(ds));
  if (c.tcp_syn) return b.tcp({ss, ds, IPPROTO_TCP, 63, 1}, sport, 80, 0x02 /* SYN */, {});
  return b.udp({ss, ds, IPPROTO_UDP, 63, 1}, sport, 5201, Bytes(18, 0x5a));
}

unsigned want_reason(const Case& c) {
  return c.ipv6 ? IPSNAT_R_XLATE_NAT66 : c.masquerade ? IPSNAT_R_XLATE_MASQ : IPSNAT_R_XLATE_SNAT;
}

uint32_t median(std::vector<uint32_t> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// The mean of the runs between the 10th and the 90th percentile: the kernel's durations come in
// steps of several ns here (the clock source's), so a median would move by whole steps; the
// trimmed mean resolves finer and still ignores interrupts and preemptions.
uint32_t trimmed_mean(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  size_t lo = v.size() / 10, hi = v.size() - v.size() / 10;
  double sum = 0;
  for (size_t i = lo; i < hi; ++i) sum += v[i];
  return static_cast<uint32_t>(sum / static_cast<double>(hi - lo) + 0.5);
}

// Throws unless `n` more packets than `before` took the path meant since.
void check_path(Datapath& dp, const Case& c, uint64_t before, size_t n) {
  uint64_t done = dp.reason_packets(want_reason(c)) - before;
  if (done == n) return;
  std::string seen;
  for (unsigned r = 0; r < IPSNAT_R_MAX; ++r)
    if (uint64_t k = dp.reason_packets(r)) seen += " " + std::string(ipsnat::reason_name(r)) + "=" + std::to_string(k);
  throw std::runtime_error(c.name + ": " + std::to_string(done) + " of " + std::to_string(n) +
                           " packets took the path meant; counters:" + seen);
}

// One round: every packet through A and B in turn (which one first alternates), so that both
// meet the same load; each build's trimmed mean ns. Every run must translate.
std::pair<uint32_t, uint32_t> round_of(Datapath& da, Datapath& db, const Case& c, const std::vector<Bytes>& pkts) {
  uint64_t before_a = da.reason_packets(want_reason(c)), before_b = db.reason_packets(want_reason(c));
  std::vector<uint32_t> na, nb;
  na.reserve(pkts.size());
  nb.reserve(pkts.size());
  for (size_t i = 0; i < pkts.size(); ++i) {
    if (i % 2) {
      na.push_back(da.run(pkts[i]));
      nb.push_back(db.run(pkts[i]));
    } else {
      nb.push_back(db.run(pkts[i]));
      na.push_back(da.run(pkts[i]));
    }
  }
  check_path(da, c, before_a, pkts.size());
  check_path(db, c, before_b, pkts.size());
  if (c.fresh) {
    da.flush();
    db.flush();
  }
  return {trimmed_mean(na), trimmed_mean(nb)};
}

// `rounds` rounds over `loads` fresh loads of both objects (which one loads first alternates):
// where the kernel places a build's maps moves its cost by tens of ns, and a new load places
// them anew, so that no build keeps a lucky or unlucky layout.
void run_case(const Case& c, const std::string& a, const std::string& b, unsigned rounds, unsigned loads,
              unsigned packets, unsigned flows) {
  std::vector<Bytes> pkts;
  for (unsigned i = 0; i < packets; ++i) pkts.push_back(packet(c, i, flows));
  std::vector<uint32_t> ra, rb;
  std::vector<int> diff;
  for (unsigned l = 0; l < loads; ++l) {
    auto first = std::make_unique<Datapath>(l % 2 ? b : a, c);
    auto second = std::make_unique<Datapath>(l % 2 ? a : b, c);
    Datapath& da = l % 2 ? *second : *first;
    Datapath& db = l % 2 ? *first : *second;
    if (!c.fresh)  // the flows established first, in both
      round_of(da, db, c, std::vector<Bytes>(pkts.begin(), pkts.begin() + std::min(flows, packets)));
    for (unsigned r = l * rounds / loads; r < (l + 1) * rounds / loads; ++r) {
      auto [ta, tb] = round_of(da, db, c, pkts);
      ra.push_back(ta);
      rb.push_back(tb);
      diff.push_back(static_cast<int>(tb) - static_cast<int>(ta));
    }
  }
  uint32_t amin = *std::min_element(ra.begin(), ra.end()), amax = *std::max_element(ra.begin(), ra.end());
  uint32_t bmin = *std::min_element(rb.begin(), rb.end()), bmax = *std::max_element(rb.begin(), rb.end());
  int dmin = *std::min_element(diff.begin(), diff.end()), dmax = *std::max_element(diff.begin(), diff.end());
  std::nth_element(diff.begin(), diff.begin() + diff.size() / 2, diff.end());
  std::printf("| %-9s | %5u (%u-%u) | %5u (%u-%u) | %+5d (%+d..%+d) |\n", c.name.c_str(), median(ra), amin, amax,
              median(rb), bmin, bmax, diff[diff.size() / 2], dmin, dmax);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string a, b, cases = "est,new,masq,masq-new,lwt,lwt-new,lwt-syn,est6,new6,est6pool,new6pool";
  unsigned rounds = 12, loads = 4, packets = 10000, flows = 1000;
  static const option lo[] = {{"a", required_argument, 0, 'a'},       {"b", required_argument, 0, 'b'},
                              {"case", required_argument, 0, 'c'},    {"rounds", required_argument, 0, 'r'},
                              {"packets", required_argument, 0, 'p'}, {"flows", required_argument, 0, 'f'},
                              {"loads", required_argument, 0, 'l'},   {0, 0, 0, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "", lo, nullptr)) != -1;) {
    switch (ch) {
      case 'a': a = optarg; break;
      case 'b': b = optarg; break;
      case 'c': cases = optarg; break;
      case 'r': rounds = std::stoul(optarg); break;
      case 'p': packets = std::stoul(optarg); break;
      case 'f': flows = std::stoul(optarg); break;
      case 'l': loads = std::stoul(optarg); break;
      default: return 2;
    }
  }
  if (a.empty() || b.empty() || !rounds || !loads || loads > rounds || !packets || !flows || flows > 50000) {
    std::fprintf(stderr, "usage: ipsnat_abtime --a A.bpf.o --b B.bpf.o [--case est,new,masq,masq-new,lwt,lwt-new,lwt-syn,est6,new6,est6pool,new6pool] "
                         "[--rounds N] [--loads N <= rounds] [--packets N] [--flows N <= 50000]\n");
    return 2;
  }
  libbpf_set_print([](libbpf_print_level l, const char* f, va_list ap) {
    return l == LIBBPF_WARN ? std::vfprintf(stderr, f, ap) : 0;
  });
  std::printf("ns per packet: median over %u rounds (%u loads of both objects) of each round's trimmed mean "
              "(10th-90th percentile) of %u runs, every packet through A and B in turn; min-max of the rounds\n\n",
              rounds, loads, packets);
  std::printf("| case      | A | B | B-A per round |\n|---|---|---|---|\n");
  try {
    for (const auto& c : kCases)
      if (("," + cases + ",").find("," + c.name + ",") != std::string::npos) run_case(c, a, b, rounds, loads, packets, flows);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipsnat_abtime: %s\n", e.what());
    return 1;
  }
  return 0;
}
