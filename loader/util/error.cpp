#include "util/error.h"

#include <cstring>

namespace ipsnat {

SysError::SysError(const std::string& op, int err)
    : std::runtime_error(op + ": " + std::strerror(err < 0 ? -err : err)), err_(err < 0 ? -err : err) {}

}  // namespace ipsnat
