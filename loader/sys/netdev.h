#pragma once
#include <string>

namespace ipsnat::sys {

// A network device named by the user, resolved once; unknown names are a UserError.
struct NetDevice {
  std::string name;
  int ifindex = 0;

  static NetDevice resolve(const std::string& name);
};

}  // namespace ipsnat::sys
