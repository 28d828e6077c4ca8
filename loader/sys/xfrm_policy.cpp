#include "sys/xfrm_policy.h"

#include <linux/xfrm.h>
#include <netinet/in.h>

#include <cstring>

#include "sys/netlink.h"
#include "util/error.h"

namespace ipsnat::xfrm {
namespace {

spd::Address address_from(const xfrm_address_t& a, uint16_t family) {
  spd::Address out;
  out.family = family;
  std::memcpy(out.bytes.data(), &a, family == AF_INET ? 4 : 16);
  return out;
}

void address_to(const spd::Address& a, xfrm_address_t* out) {
  std::memset(out, 0, sizeof(*out));
  std::memcpy(out, a.bytes.data(), a.family == AF_INET ? 4 : 16);
}

spd::Selector selector_from(const xfrm_selector& s) {
  spd::Selector sel;
  sel.family = s.family;
  sel.src = {address_from(s.saddr, s.family), s.prefixlen_s};
  sel.dst = {address_from(s.daddr, s.family), s.prefixlen_d};
  sel.proto = s.proto;
  sel.sport = ntohs(s.sport);
  sel.sport_mask = ntohs(s.sport_mask);
  sel.dport = ntohs(s.dport);
  sel.dport_mask = ntohs(s.dport_mask);
  sel.ifindex = s.ifindex;
  return sel;
}

xfrm_selector selector_to(const spd::Selector& sel) {
  xfrm_selector s{};
  s.family = sel.family;
  address_to(sel.src.addr, &s.saddr);
  address_to(sel.dst.addr, &s.daddr);
  s.prefixlen_s = sel.src.len;
  s.prefixlen_d = sel.dst.len;
  s.proto = sel.proto;
  s.sport = htons(sel.sport);
  s.sport_mask = htons(sel.sport_mask);
  s.dport = htons(sel.dport);
  s.dport_mask = htons(sel.dport_mask);
  s.ifindex = sel.ifindex;
  return s;
}

void put_identity(nlmsghdr* nlh, const spd::Policy& p) {
  if (p.mark_m) {
    xfrm_mark m{p.mark_v, p.mark_m};
    mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
  }
  if (p.if_id) mnl_attr_put_u32(nlh, XFRMA_IF_ID, p.if_id);
}

}  // namespace

std::vector<spd::Policy> dump_policies() {
  NlSocket nl(NETLINK_XFRM);
  NlRequest req(XFRM_MSG_GETPOLICY, NLM_F_DUMP);
  std::vector<spd::Policy> out;
  int err = nl.exchange(req, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_type != XFRM_MSG_NEWPOLICY) return;
    const auto* info = static_cast<const xfrm_userpolicy_info*>(mnl_nlmsg_get_payload(nlh));
    if (info->dir >= XFRM_POLICY_MAX) return;  // per-socket
    spd::Policy p;
    p.sel = selector_from(info->sel);
    p.dir = static_cast<spd::Dir>(info->dir);
    p.action = info->action == XFRM_POLICY_BLOCK ? spd::Action::Block : spd::Action::Allow;
    p.priority = info->priority;
    p.index = info->index;
    for_each_attr(nlh, sizeof(*info), [&](const nlattr* attr) {
      switch (mnl_attr_get_type(attr)) {
        case XFRMA_TMPL: {
          size_t n = mnl_attr_get_payload_len(attr) / sizeof(xfrm_user_tmpl);
          const auto* t = static_cast<const xfrm_user_tmpl*>(mnl_attr_get_payload(attr));
          for (size_t i = 0; i < n; ++i) {
            spd::Template tm;
            tm.mode = t[i].mode;
            tm.proto = t[i].id.proto;
            tm.reqid = t[i].reqid;
            tm.spi = t[i].id.spi;
            tm.optional = t[i].optional;
            tm.family = t[i].family;
            tm.tunnel_src = address_from(t[i].saddr, t[i].family);
            tm.tunnel_dst = address_from(t[i].id.daddr, t[i].family);
            p.tmpls.push_back(tm);
          }
          break;
        }
        case XFRMA_MARK: {
          const auto* m = static_cast<const xfrm_mark*>(mnl_attr_get_payload(attr));
          p.mark_v = m->v;
          p.mark_m = m->m;
          break;
        }
        case XFRMA_IF_ID: p.if_id = mnl_attr_get_u32(attr); break;
        case XFRMA_POLICY_TYPE: {
          const auto* t = static_cast<const xfrm_userpolicy_type*>(mnl_attr_get_payload(attr));
          p.type = t->type == XFRM_POLICY_TYPE_SUB ? spd::PolicyType::Sub : spd::PolicyType::Main;
          break;
        }
        default: break;
      }
    });
    out.push_back(std::move(p));
  });
  if (err) throw SysError("dumping XFRM policies", err);
  return out;
}

int add_policy(const spd::Policy& p, bool update) {
  NlSocket nl(NETLINK_XFRM);
  NlRequest req(update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, NLM_F_CREATE | (update ? 0 : NLM_F_EXCL));
  auto* info = req.put_header<xfrm_userpolicy_info>();
  info->sel = selector_to(p.sel);
  info->lft.soft_byte_limit = info->lft.hard_byte_limit = XFRM_INF;
  info->lft.soft_packet_limit = info->lft.hard_packet_limit = XFRM_INF;
  info->priority = p.priority;
  info->dir = static_cast<uint8_t>(p.dir);
  info->action = p.action == spd::Action::Block ? XFRM_POLICY_BLOCK : XFRM_POLICY_ALLOW;
  info->share = XFRM_SHARE_ANY;
  std::vector<xfrm_user_tmpl> tmpls;
  for (const auto& t : p.tmpls) {
    xfrm_user_tmpl u{};
    address_to(t.tunnel_dst, &u.id.daddr);
    u.id.spi = t.spi;
    u.id.proto = t.proto;
    u.family = t.family;
    address_to(t.tunnel_src, &u.saddr);
    u.reqid = t.reqid;
    u.mode = t.mode;
    u.optional = t.optional;
    u.aalgos = u.ealgos = u.calgos = ~0u;
    tmpls.push_back(u);
  }
  if (!tmpls.empty())
    mnl_attr_put(req.hdr(), XFRMA_TMPL, tmpls.size() * sizeof(xfrm_user_tmpl), tmpls.data());
  put_identity(req.hdr(), p);
  return nl.request(req);
}

int delete_policy(const spd::Policy& p) {
  NlSocket nl(NETLINK_XFRM);
  NlRequest req(XFRM_MSG_DELPOLICY, 0);
  auto* id = req.put_header<xfrm_userpolicy_id>();
  id->sel = selector_to(p.sel);
  id->dir = static_cast<uint8_t>(p.dir);
  put_identity(req.hdr(), p);
  return nl.request(req);
}

}  // namespace ipsnat::xfrm
