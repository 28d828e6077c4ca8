#include "sys/bpf_prog.h"

#include <bpf/bpf.h>

#include "util/fd.h"

namespace ipsnat::sys {

std::string bpf_prog_name(uint32_t id) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) return "";
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0 ? info.name : "";
}

}  // namespace ipsnat::sys
