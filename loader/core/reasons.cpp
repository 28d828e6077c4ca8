#include "core/reasons.h"

#include <array>

namespace ipsnat {
namespace {

constexpr std::array<std::string_view, IPSNAT_R_MAX> kNames = {
#define IPSNAT_REASON_NAME(name, text) text,
    IPSNAT_REASONS(IPSNAT_REASON_NAME)
#undef IPSNAT_REASON_NAME
};

static_assert(IPSNAT_R_MAX <= IPSNAT_STATS_MAX_ENTRIES, "stats map too small for the reasons");

}  // namespace

std::string_view reason_name(unsigned reason) {
  return reason < kNames.size() ? kNames[reason] : std::string_view("unknown");
}

std::optional<unsigned> reason_by_name(std::string_view name) {
  for (unsigned i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return i;
  return std::nullopt;
}

}  // namespace ipsnat
