#include "spd/spoof.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "util/error.h"

namespace ipsnat::spd {

namespace {

bool applies(const Policy& p, Dir dir) { return p.dir == dir && p.sel.family == AF_INET && p.if_id == 0; }

// Refuses cleartext: a required template (XfrmInTmplMismatch) or a block (XfrmInPolBlock).
bool refuses(const Policy& p) { return p.action == Action::Block || p.is_ipsec(); }

bool only_prefixes(const Policy& p) {
  const Selector& s = p.sel;
  return p.type == PolicyType::Main && p.mark_m == 0 && p.mark_v == 0 && s.proto == 0 && s.sport_mask == 0 &&
         s.dport_mask == 0 && s.ifindex == 0;
}

// The longer of two nested prefixes; none when they are disjoint.
std::optional<Prefix> intersect(const Prefix& a, const Prefix& b) {
  const Prefix& shorter = a.len <= b.len ? a : b;
  const Prefix& longer = a.len <= b.len ? b : a;
  if (!shorter.contains(longer.addr)) return std::nullopt;
  return longer;
}

bool overlaps(const Policy& q, const SpoofBox& b) {
  return intersect(q.sel.src, b.src) && intersect(q.sel.dst, b.dst);
}

bool inside(const SpoofBox& in, const SpoofBox& out) {
  return out.src.len <= in.src.len && out.src.contains(in.src.addr) && out.dst.len <= in.dst.len &&
         out.dst.contains(in.dst.addr);
}

// Boxes of `dir` where the kernel's first matching policy refuses every packet.
std::vector<SpoofBox> refused_boxes(const SpdModel& model, Dir dir) {
  std::vector<SpoofBox> out;
  for (const auto& [index, p] : model.by_index()) {
    if (!applies(p, dir) || !p.is_ipsec() || !only_prefixes(p)) continue;
    SpoofBox box{p.sel.src, p.sel.dst};
    bool shadowed = false;
    for (const auto& [qi, q] : model.by_index()) {
      if (qi == index || !applies(q, dir) || refuses(q)) continue;
      bool may_come_first = q.type == PolicyType::Sub || q.priority <= p.priority;
      if (may_come_first && overlaps(q, box)) {
        shadowed = true;
        break;
      }
    }
    if (!shadowed) out.push_back(box);
  }
  return out;
}

Prefix masked(const Prefix& p) {
  Prefix m = p;
  m.addr = Address::v4(p.addr.v4_be() & htonl(v4_mask(p.len)));
  return m;
}

xdp_spoof_box to_map(const SpoofBox& b) {
  return xdp_spoof_box{b.src.addr.v4_be() & htonl(v4_mask(b.src.len)), htonl(v4_mask(b.src.len)),
                       b.dst.addr.v4_be() & htonl(v4_mask(b.dst.len)), htonl(v4_mask(b.dst.len))};
}

}  // namespace

std::vector<SpoofBox> spoof_boxes(const SpdModel& model) {
  std::vector<SpoofBox> both;
  for (const SpoofBox& a : refused_boxes(model, Dir::In))
    for (const SpoofBox& f : refused_boxes(model, Dir::Fwd)) {
      auto src = intersect(a.src, f.src), dst = intersect(a.dst, f.dst);
      if (src && dst) both.push_back(SpoofBox{masked(*src), masked(*dst)});
    }
  std::sort(both.begin(), both.end());
  both.erase(std::unique(both.begin(), both.end()), both.end());
  std::vector<SpoofBox> out;
  for (const SpoofBox& b : both)
    if (std::none_of(both.begin(), both.end(), [&](const SpoofBox& o) { return o != b && inside(b, o); }))
      out.push_back(b);
  return out;
}

SpoofWriter::SpoofWriter(int set_fd, int act_fd) : set_fd_(set_fd), act_fd_(act_fd) {
  uint32_t zero = 0;
  if (act_fd_ >= 0) bpf_map_lookup_elem(act_fd_, &zero, &active_);
  active_ &= 1;
}

size_t SpoofWriter::write(const SpdModel& model) {
  if (set_fd_ < 0 || act_fd_ < 0) return 0;
  auto boxes = spoof_boxes(model);
  if (boxes.size() > XDP_SPOOF_MAX) {
    spdlog::warn("spd: the XDP pre-filter holds {} of {} drop boxes; the kernel drops the rest's spoofs itself",
                 XDP_SPOOF_MAX, boxes.size());
    boxes.resize(XDP_SPOOF_MAX);
  }
  if (written_ && boxes == last_) return boxes.size();
  xdp_spoof_set set{};
  set.n = static_cast<uint32_t>(boxes.size());
  for (size_t i = 0; i < boxes.size(); ++i) set.box[i] = to_map(boxes[i]);
  uint32_t next = active_ ^ 1, zero = 0;
  if (bpf_map_update_elem(set_fd_, &next, &set, BPF_ANY) != 0) throw SysError("writing xdp_spoof4", errno);
  if (bpf_map_update_elem(act_fd_, &zero, &next, BPF_ANY) != 0) throw SysError("writing xdp_spoof_act", errno);
  active_ = next;
  last_ = std::move(boxes);
  written_ = true;
  return last_.size();
}

}  // namespace ipsnat::spd
