#include "cli/args.h"

#include <netdb.h>
#include <netinet/in.h>

#include "spd/policy.h"
#include "util/error.h"

namespace ipsnat::cli {

uint8_t parse_proto_arg(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() <= 3 && std::stoul(s) <= 255)
    return static_cast<uint8_t>(std::stoul(s));
  if (const protoent* e = getprotobyname(s.c_str())) return static_cast<uint8_t>(e->p_proto);
  throw UserError("unknown protocol '" + s + "'", "a name like tcp, udp, icmp or a number 0..255");
}

uint16_t parse_port_arg(const std::string& s) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos || std::stoul(s) > 65535)
    throw UserError("invalid port '" + s + "'", "expected 0..65535");
  return static_cast<uint16_t>(std::stoul(s));
}

}  // namespace ipsnat::cli
