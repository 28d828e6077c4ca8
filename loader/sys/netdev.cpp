#include "sys/netdev.h"

#include <net/if.h>

#include "util/error.h"

namespace ipsnat::sys {

NetDevice NetDevice::resolve(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    throw UserError("\"" + name + "\" is not a valid device name", "see: ip link");
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) throw UserError("cannot find device \"" + name + "\"", "see: ip link");
  return NetDevice{name, static_cast<int>(idx)};
}

}  // namespace ipsnat::sys
