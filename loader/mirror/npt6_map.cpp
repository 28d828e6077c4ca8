#include "mirror/npt6_map.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pins/names.h"
#include "mirror/map_diff.h"
#include "mirror/mirror.h"
#include "state/pinned.h"
#include "sys/map_walk.h"
#include "util/error.h"

namespace ipsnat::mirror {

Npt6Writer::Npt6Writer(int fd) : fd_(fd) {
  if (fd_ < 0) return;
  sys::walk_map_keys<npt6_key>(fd_, [&](const npt6_key& k) {
    auto* b = reinterpret_cast<const uint8_t*>(&k);
    written_[{b, b + sizeof(k)}] = npt6_rule{};  // value unknown: rewritten by the first write()
  });
}

void Npt6Writer::write(const spd::SpdModel& model, const std::vector<Prefix>& inside,
                       const std::vector<Address>& local, const std::vector<spd::NatOverride>& rules) {
  if (fd_ < 0) return;
  auto key_of = [](const std::vector<uint8_t>& bytes) {
    npt6_key k{};
    std::memcpy(&k, bytes.data(), sizeof(k));
    return k;
  };
  write_by_difference(fd_, pins::kNpt6, spd::npt6_entries(model, inside, local, rules), written_, key_of,
                      [](const npt6_rule& r) { return r; },
                      [](const npt6_rule& a, const npt6_rule& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; });
}

int npt6_pin_fd(const std::string& root) {
  std::string path = state::pinned_map_path(root, pins::kNpt6);
  if (int fd = pinned_lpm_fd(path, sizeof(npt6_key), sizeof(npt6_rule)); fd >= 0) return fd;
  spdlog::warn("spd: no usable {}: IPv6 is not translated (attach again to create it)", path);
  return -1;
}

}  // namespace ipsnat::mirror
