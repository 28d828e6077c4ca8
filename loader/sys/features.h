#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ipsnat::sys {

// What the running kernel and process can do, probed without changing anything.
struct Feature {
  std::string name;
  bool ok = false;
  bool required = false;
  std::string detail;  // what was found, or what to do when missing
};

class FeatureProbe {
 public:
  std::vector<Feature> probe() const;
  // Throws UserError naming the first missing required feature and what to do about it.
  static void require_all(const std::vector<Feature>& features);
  static nlohmann::json to_json(const std::vector<Feature>& features);
};

// Capability bits from /proc/self/status "CapEff".
bool has_capability(int cap);

}  // namespace ipsnat::sys
