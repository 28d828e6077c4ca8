#pragma once
// Random overlapping SPDs and flows for the equivalence tests (unit and bpf tiers).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <random>
#include <vector>

#include "spd/model.h"
#include "spd/policy.h"

namespace ipsnat::test {

using namespace ipsnat::spd;


struct Gen {
  std::mt19937 rng;
  explicit Gen(uint32_t seed) : rng(seed) {}
  uint32_t u(uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng); }
  // Addresses from a small pool so that prefixes overlap often.
  uint32_t addr() { return htonl((10u << 24) | (u(0, 3) << 16) | (u(0, 3) << 8) | u(0, 7)); }
  Prefix prefix() {
    static const uint8_t lens[] = {0, 8, 16, 22, 24, 29, 30, 32};
    uint8_t len = lens[u(0, 7)];
    return Prefix{Address::v4(addr() & htonl(v4_mask(len))), len};
  }
  Policy policy(uint32_t index) {
    Policy p;
    p.sel.family = AF_INET;
    p.sel.src = prefix();
    p.sel.dst = prefix();
    p.dir = u(0, 5) == 0 ? Dir::In : Dir::Out;
    uint32_t k = u(0, 9);
    p.sel.proto = k < 5 ? 0 : k < 8 ? IPPROTO_TCP : IPPROTO_UDP;
    if (p.sel.proto && u(0, 2) == 0) {
      p.sel.dport = static_cast<uint16_t>(u(1, 4));
      p.sel.dport_mask = u(0, 3) ? 0xffff : 0xfffe;
    }
    if (p.sel.proto && u(0, 4) == 0) {
      p.sel.sport = static_cast<uint16_t>(u(1, 4));
      p.sel.sport_mask = 0xffff;
    }
    if (u(0, 6) == 0) {
      p.mark_m = 0xff;
      p.mark_v = u(0, 2);
    }
    p.if_id = u(0, 8) == 0 ? 7 : 0;
    p.priority = u(0, 4) * 100;  // many ties
    uint32_t a = u(0, 9);
    p.action = a == 0 ? Action::Block : Action::Allow;
    if (a >= 3) {
      Template t;
      t.mode = 1;
      t.proto = IPPROTO_ESP;
      t.reqid = index;
      t.optional = u(0, 7) == 0;  // `level use`: not protection when every template is optional
      p.tmpls.push_back(t);
    }
    p.index = index;
    return p;
  }
  Flow4 flow() {
    Flow4 f;
    f.saddr = u(0, 3) ? addr() : htonl(0xc0a80100u | u(1, 3));
    f.daddr = addr();
    uint32_t k = u(0, 3);
    f.proto = k == 0 ? IPPROTO_ICMP : k == 1 ? IPPROTO_UDP : IPPROTO_TCP;
    if (proto_has_ports(f.proto)) {
      f.sport = static_cast<uint16_t>(u(0, 5));
      f.dport = static_cast<uint16_t>(u(0, 5));
    }
    f.mark = u(0, 3);
    f.if_id = u(0, 5) == 0 ? 7 : 0;
    return f;
  }
};

// Random changes of an SPD, as the kernel would report them: adds, updates by index (new
// priority: the policy moves to the back), same-selector replacements under a new index,
// deletes by index and flushes. `live` follows what the model holds.
struct ChangeGen {
  explicit ChangeGen(Gen& gen, bool unmirrorable = false) : g(gen), with_unmirrorable(unmirrorable) {}
  Gen& g;
  // Sometimes add a policy bound to a device, which the maps carry as SPD_V_UNKNOWN (failing
  // closed where it could apply until it is deleted or flushed).
  bool with_unmirrorable;
  std::vector<Policy> live;
  uint32_t next_index = 1;
  int flushes = 0;

  void step(SpdModel& model) {
    uint32_t op = g.u(0, 99);
    if (op < 45 || live.empty()) {
      Policy p = g.policy(next_index);
      next_index += 8;
      if (with_unmirrorable && g.u(0, 60) == 0) p.sel.ifindex = 2;
      live.push_back(p);
      model.apply(PolicyUpsert{p});
    } else if (op < 65) {
      Policy& p = any();
      p.priority = g.u(0, 4) * 100;
      model.apply(PolicyUpsert{p});
    } else if (op < 72) {  // same selector, new index: the kernel replaces the old one
      Policy& p = any();
      p.index = next_index;
      next_index += 8;
      model.apply(PolicyUpsert{p});
    } else if (op < 98) {
      size_t i = g.u(0, static_cast<uint32_t>(live.size() - 1));
      PolicyDelete d;
      d.index = live[i].index;
      model.apply(d);
      live.erase(live.begin() + static_cast<ptrdiff_t>(i));
    } else {
      model.apply(PolicyFlush{});
      live.clear();
      flushes++;
    }
    // A same-key upsert may have replaced another live policy.
    std::erase_if(live, [&](const Policy& p) { return !model.by_index().count(p.index); });
  }

 private:
  Policy& any() { return live[g.u(0, static_cast<uint32_t>(live.size() - 1))]; }
};

}  // namespace ipsnat::test
