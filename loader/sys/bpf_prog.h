#pragma once
// What the kernel says of a loaded BPF program, by its id.
#include <cstdint>
#include <string>

namespace ipsnat::sys {

// The program's name as the kernel keeps it (at most 15 characters of the object's function
// name); empty when no program has this id (any more) or it has no name.
std::string bpf_prog_name(uint32_t id);

}  // namespace ipsnat::sys
