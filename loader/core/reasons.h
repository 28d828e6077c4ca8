#pragma once
#include <optional>
#include <string_view>

#include "maps/stats.h"

namespace ipsnat {

// The datapath's reasons (maps/stats.h) by name, for status, metrics and JSON.
std::string_view reason_name(unsigned reason);
std::optional<unsigned> reason_by_name(std::string_view name);

}  // namespace ipsnat
