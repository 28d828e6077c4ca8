#include "xfrm/policy_msg.h"

#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

namespace ipsnat::xfrm {

using namespace ipsnat::spd;

namespace {

Address addr_of(const xfrm_address_t& a, uint16_t family) {
  Address out;
  out.family = family;
  std::memcpy(out.bytes.data(), &a, family == AF_INET ? 4 : 16);
  return out;
}

void to_xfrm_addr(xfrm_address_t& out, const Address& a) {
  std::memset(&out, 0, sizeof(out));
  std::memcpy(&out, a.bytes.data(), a.family == AF_INET ? 4 : 16);
}

Selector selector_of(const xfrm_selector& s) {
  if (s.family != AF_INET && s.family != AF_INET6) throw std::runtime_error("xfrm selector of unknown family");
  unsigned max = s.family == AF_INET ? 32 : 128;
  if (s.prefixlen_d > max || s.prefixlen_s > max) throw std::runtime_error("xfrm selector prefix too long");
  Selector out;
  out.family = s.family;
  out.dst = Prefix{addr_of(s.daddr, s.family), s.prefixlen_d};
  out.src = Prefix{addr_of(s.saddr, s.family), s.prefixlen_s};
  out.proto = s.proto;
  out.dport = ntohs(s.dport);
  out.dport_mask = ntohs(s.dport_mask);
  out.sport = ntohs(s.sport);
  out.sport_mask = ntohs(s.sport_mask);
  out.ifindex = s.ifindex;
  return out;
}

xfrm_selector to_xfrm_sel(const Selector& s) {
  xfrm_selector out{};
  out.family = s.family;
  to_xfrm_addr(out.daddr, s.dst.addr);
  to_xfrm_addr(out.saddr, s.src.addr);
  out.prefixlen_d = s.dst.len;
  out.prefixlen_s = s.src.len;
  out.proto = s.proto;
  out.dport = htons(s.dport);
  out.dport_mask = htons(s.dport_mask);
  out.sport = htons(s.sport);
  out.sport_mask = htons(s.sport_mask);
  out.ifindex = s.ifindex;
  return out;
}

struct Attrs {
  const nlattr* tb[XFRMA_MAX + 1] = {};
};

void parse_attrs(const nlmsghdr* nlh, size_t offset, Attrs& a) {
  auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset));
  // The message's own length, not libmnl's payload tail: that is nlmsg_len rounded up to 4, and
  // the last message of a buffer may end unaligned (found by tests/fuzz).
  const char* end = reinterpret_cast<const char*>(nlh) + nlh->nlmsg_len;
  while (mnl_attr_ok(attr, static_cast<int>(end - reinterpret_cast<const char*>(attr)))) {
    uint16_t t = mnl_attr_get_type(attr);
    if (t <= XFRMA_MAX) a.tb[t] = attr;
    attr = mnl_attr_next(attr);
  }
}

// Netlink aligns messages and attributes to 4 bytes only, and xfrm_userpolicy_info holds 64-bit
// lifetimes: every structure is copied out, never read in place (found by tests/fuzz).
template <class T>
T copy_of(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <class T>
std::optional<T> attr_payload(const nlattr* a) {
  if (!a) return std::nullopt;
  if (mnl_attr_get_payload_len(a) < sizeof(T)) throw std::runtime_error("xfrm attribute too short");
  return copy_of<T>(mnl_attr_get_payload(a));
}

void common_attrs(const Attrs& a, PolicyType& type, uint32_t& mark_v, uint32_t& mark_m, uint32_t& if_id) {
  if (const auto t = attr_payload<xfrm_userpolicy_type>(a.tb[XFRMA_POLICY_TYPE]))
    type = t->type == XFRM_POLICY_TYPE_SUB ? PolicyType::Sub : PolicyType::Main;
  if (const auto m = attr_payload<xfrm_mark>(a.tb[XFRMA_MARK])) {
    mark_v = m->v;
    mark_m = m->m;
  }
  if (const auto i = attr_payload<uint32_t>(a.tb[XFRMA_IF_ID])) if_id = *i;
}

std::optional<Policy> policy_of(const xfrm_userpolicy_info& info, const Attrs& a) {
  if (info.dir >= XFRM_POLICY_MAX) return std::nullopt;  // per-socket policy
  Policy p;
  p.sel = selector_of(info.sel);
  p.dir = static_cast<Dir>(info.dir);
  p.action = info.action == XFRM_POLICY_BLOCK ? Action::Block : Action::Allow;
  p.priority = info.priority;
  p.index = info.index;
  common_attrs(a, p.type, p.mark_v, p.mark_m, p.if_id);
  if (const nlattr* t = a.tb[XFRMA_TMPL]) {
    size_t n = mnl_attr_get_payload_len(t) / sizeof(xfrm_user_tmpl);
    const auto* raw = static_cast<const char*>(mnl_attr_get_payload(t));
    for (size_t i = 0; i < n; i++) {
      const auto ut = copy_of<xfrm_user_tmpl>(raw + i * sizeof(xfrm_user_tmpl));
      Template tm;
      tm.mode = ut.mode;
      tm.proto = ut.id.proto;
      tm.reqid = ut.reqid;
      tm.spi = ut.id.spi;
      tm.optional = ut.optional != 0;
      tm.family = ut.family;
      uint16_t fam = ut.family ? ut.family : p.sel.family;
      tm.tunnel_src = addr_of(ut.saddr, fam);
      tm.tunnel_dst = addr_of(ut.id.daddr, fam);
      p.tmpls.push_back(tm);
    }
  }
  return p;
}

}  // namespace

bool nlmsg_ok(const nlmsghdr* nlh, int remaining) {
  return remaining >= static_cast<int>(sizeof(nlmsghdr)) && nlh->nlmsg_len >= sizeof(nlmsghdr) &&
         nlh->nlmsg_len <= static_cast<unsigned>(remaining);
}

std::optional<PolicyEvent> parse_policy_msg(const nlmsghdr* nlh) {
  size_t payload = nlh->nlmsg_len >= NLMSG_HDRLEN ? nlh->nlmsg_len - NLMSG_HDRLEN : 0;
  switch (nlh->nlmsg_type) {
    case XFRM_MSG_NEWPOLICY:
    case XFRM_MSG_UPDPOLICY: {
      if (payload < sizeof(xfrm_userpolicy_info)) throw std::runtime_error("truncated xfrm policy message");
      const auto info = copy_of<xfrm_userpolicy_info>(mnl_nlmsg_get_payload(nlh));
      Attrs a;
      parse_attrs(nlh, sizeof(info), a);
      auto p = policy_of(info, a);
      if (!p) return std::nullopt;
      return PolicyUpsert{std::move(*p)};
    }
    case XFRM_MSG_DELPOLICY: {
      if (payload < sizeof(xfrm_userpolicy_id)) throw std::runtime_error("truncated xfrm delpolicy message");
      const auto idv = copy_of<xfrm_userpolicy_id>(mnl_nlmsg_get_payload(nlh));
      const auto* id = &idv;
      if (id->dir >= XFRM_POLICY_MAX) return std::nullopt;
      Attrs a;
      parse_attrs(nlh, sizeof(*id), a);
      PolicyDelete d;
      d.index = id->index;
      d.dir = static_cast<Dir>(id->dir);
      common_attrs(a, d.type, d.mark_v, d.mark_m, d.if_id);
      if (const auto info = attr_payload<xfrm_userpolicy_info>(a.tb[XFRMA_POLICY])) {
        // The kernel's notification carries the whole policy: its index identifies it.
        if (d.index == 0) d.index = info->index;
        d.sel = selector_of(info->sel);
      } else if (d.index == 0) {
        d.sel = selector_of(id->sel);
      }
      return d;
    }
    case XFRM_MSG_POLEXPIRE: {
      // A hard expiry: the kernel has deleted the policy (xfrm_policy_timer) and says so only
      // here, not with a DELPOLICY. A soft one changes nothing.
      if (payload < sizeof(xfrm_user_polexpire)) throw std::runtime_error("truncated xfrm polexpire message");
      const auto exp = copy_of<xfrm_user_polexpire>(mnl_nlmsg_get_payload(nlh));
      if (!exp.hard || exp.pol.dir >= XFRM_POLICY_MAX) return std::nullopt;
      Attrs a;
      parse_attrs(nlh, sizeof(exp), a);
      PolicyDelete d;
      d.index = exp.pol.index;
      d.dir = static_cast<Dir>(exp.pol.dir);
      d.sel = selector_of(exp.pol.sel);
      common_attrs(a, d.type, d.mark_v, d.mark_m, d.if_id);
      return d;
    }
    case XFRM_MSG_FLUSHPOLICY: {
      Attrs a;
      parse_attrs(nlh, 0, a);
      PolicyFlush f;
      if (const auto t = attr_payload<xfrm_userpolicy_type>(a.tb[XFRMA_POLICY_TYPE]))
        f.type = t->type == XFRM_POLICY_TYPE_SUB ? PolicyType::Sub : PolicyType::Main;
      return f;
    }
    default:
      return std::nullopt;
  }
}

namespace {
void put_common(nlmsghdr* nlh, PolicyType type, uint32_t mark_v, uint32_t mark_m, uint32_t if_id) {
  if (type == PolicyType::Sub) {
    xfrm_userpolicy_type t{};
    t.type = XFRM_POLICY_TYPE_SUB;
    mnl_attr_put(nlh, XFRMA_POLICY_TYPE, sizeof(t), &t);
  }
  if (mark_m) {
    xfrm_mark m{mark_v, mark_m};
    mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
  }
  if (if_id) mnl_attr_put_u32(nlh, XFRMA_IF_ID, if_id);
}

xfrm_userpolicy_info info_of(const Policy& p) {
  xfrm_userpolicy_info info{};
  info.sel = to_xfrm_sel(p.sel);
  info.dir = static_cast<uint8_t>(p.dir);
  info.action = p.action == Action::Block ? XFRM_POLICY_BLOCK : XFRM_POLICY_ALLOW;
  info.priority = p.priority;
  info.index = p.index;
  info.lft.soft_byte_limit = info.lft.hard_byte_limit = XFRM_INF;
  info.lft.soft_packet_limit = info.lft.hard_packet_limit = XFRM_INF;
  return info;
}
}  // namespace

nlmsghdr* build_policy_msg(char* buf, size_t size, uint16_t type, const Policy& p) {
  std::memset(buf, 0, size);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  auto* info = static_cast<xfrm_userpolicy_info*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_userpolicy_info)));
  *info = info_of(p);
  if (!p.tmpls.empty()) {
    std::vector<xfrm_user_tmpl> ut(p.tmpls.size());
    for (size_t i = 0; i < p.tmpls.size(); i++) {
      const Template& t = p.tmpls[i];
      ut[i] = {};
      ut[i].mode = t.mode;
      ut[i].id.proto = t.proto;
      ut[i].id.spi = t.spi;
      ut[i].reqid = t.reqid;
      ut[i].optional = t.optional;
      ut[i].family = t.family;
      to_xfrm_addr(ut[i].saddr, t.tunnel_src);
      to_xfrm_addr(ut[i].id.daddr, t.tunnel_dst);
      ut[i].aalgos = ut[i].ealgos = ut[i].calgos = ~0u;
    }
    mnl_attr_put(nlh, XFRMA_TMPL, ut.size() * sizeof(xfrm_user_tmpl), ut.data());
  }
  put_common(nlh, p.type, p.mark_v, p.mark_m, p.if_id);
  return nlh;
}

nlmsghdr* build_polexpire_msg(char* buf, size_t size, const Policy& p, bool hard) {
  std::memset(buf, 0, size);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = XFRM_MSG_POLEXPIRE;
  auto* exp = static_cast<xfrm_user_polexpire*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_user_polexpire)));
  exp->pol = info_of(p);
  exp->hard = hard;
  put_common(nlh, p.type, p.mark_v, p.mark_m, p.if_id);
  return nlh;
}

nlmsghdr* build_delpolicy_msg(char* buf, size_t size, const Policy& p, bool by_index) {
  std::memset(buf, 0, size);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = XFRM_MSG_DELPOLICY;
  auto* id = static_cast<xfrm_userpolicy_id*>(mnl_nlmsg_put_extra_header(nlh, sizeof(xfrm_userpolicy_id)));
  id->dir = static_cast<uint8_t>(p.dir);
  if (by_index)
    id->index = p.index;
  else
    id->sel = to_xfrm_sel(p.sel);
  put_common(nlh, p.type, p.mark_v, p.mark_m, p.if_id);
  return nlh;
}

nlmsghdr* build_flush_msg(char* buf, size_t size, PolicyType type) {
  std::memset(buf, 0, size);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = XFRM_MSG_FLUSHPOLICY;
  put_common(nlh, type, 0, 0, 0);
  return nlh;
}

}  // namespace ipsnat::xfrm
