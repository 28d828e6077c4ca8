#pragma once
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"

namespace ipsnat::cli {

inline void print_json(const GlobalOptions& g, const nlohmann::json& j) {
  std::cout << (g.pretty ? j.dump(2) : j.dump()) << "\n";
}

}  // namespace ipsnat::cli
