#include "state/ct_summary.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <tuple>

#include "util/address.h"

namespace ipsnat::state {

namespace {

Address nat_address(const ipsnat_ct_key& k) { return Address::v4(k.daddr); }
Address nat_address(const ipsnat_ct6_key& k) { return Address::v6(k.daddr); }
Address remote_address(const ipsnat_ct_key& k) { return Address::v4(k.saddr); }
Address remote_address(const ipsnat_ct6_key& k) { return Address::v6(k.saddr); }

const char* proto_name(uint8_t proto, uint8_t echo, const char* echo_name) {
  return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : proto == echo ? echo_name : "other";
}

template <class Entry>
bool key_less(const Entry& a, const Entry& b) {
  return std::memcmp(&a.key, &b.key, sizeof(a.key)) < 0;
}
template <class Entry>
bool key_equal(const Entry& a, const Entry& b) {
  return std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0;
}

template <class Entry>
void add_table(ConntrackSummary& s, FlowCounts& counts, std::vector<Entry> entries, uint8_t echo,
               const char* echo_name) {
  std::sort(entries.begin(), entries.end(), key_less<Entry>);
  entries.erase(std::unique(entries.begin(), entries.end(), key_equal<Entry>), entries.end());
  // Bindings per (NAT address, remote address, remote port, protocol).
  std::map<std::tuple<Address, Address, uint16_t, uint8_t>, uint64_t> per_endpoint;
  for (const Entry& e : entries) {
    ++counts.entries;
    auto& traffic = s.by_reqid[e.value.reqid];
    traffic.packets += e.value.packets;
    traffic.bytes += e.value.bytes;
    if (e.key.dir == IPSNAT_CT_ORIG) {
      ++counts.flows;
      ++counts.by_proto[proto_name(e.key.proto, echo, echo_name)];
      ++traffic.flows;
      continue;
    }
    Address nat = nat_address(e.key);
    std::string name = nat.str();
    ++s.ports_in_use[name];
    uint64_t& n = per_endpoint[{nat, remote_address(e.key), e.key.sport, e.key.proto}];
    auto& busiest = s.busiest_endpoint[name];
    busiest = std::max(busiest, ++n);
  }
}

}  // namespace

void add_entries(ConntrackSummary& s, const std::vector<ct::Entry>& entries) {
  add_table(s, s.ipv4, entries, IPPROTO_ICMP, "icmp");
}

void add_entries(ConntrackSummary& s, const std::vector<ct::Entry6>& entries) {
  if (!s.ipv6) s.ipv6.emplace();
  add_table(s, *s.ipv6, entries, IPPROTO_ICMPV6, "icmpv6");
}

}  // namespace ipsnat::state
