#pragma once
// Parsers of verb arguments (`ipsnat explain SRC DST PROTO SPORT DPORT`), outside the verbs so
// that the fuzz tier (tests/fuzz/fuzz_cli_args.cpp) reaches them. Each throws UserError.
#include <cstdint>
#include <string>

namespace ipsnat::cli {

// "tcp", "udp", "icmp" (any /etc/protocols name) or 0..255.
uint8_t parse_proto_arg(const std::string& s);
// 0..65535, decimal digits only.
uint16_t parse_port_arg(const std::string& s);

}  // namespace ipsnat::cli
