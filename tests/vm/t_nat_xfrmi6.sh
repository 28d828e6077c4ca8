#!/bin/bash
# vm-cost: 120
# shellcheck source-path=SCRIPTDIR
# IPv6 on a route-based tunnel with real ESP: an xfrm interface (ipsec0, if_id from the profile)
# whose SA pair carries both inner families over the IPv4 peers (flag af-unspec, as strongSwan's
# dual-stack CHILD_SAs), an IPv4 and an IPv6 out-policy with the interface's if_id, the company's
# networks of both families routed into ipsec0, a dual-stack LAN. The company side is
# policy-based (cgw). The only ipsnat command is `ipsnat attach ipsec0` (plus `--binat` for NPTv6).
#  1. NAT66: the IPv6 policy's source is one address (LAB_NAT_IP6/128): ping, 20 UDP echoes,
#     1 MiB TCP each way reach the company host, which sees only the two policy addresses (IPv4
#     beside it is pinged; t_nat_xfrmi checks the rest of IPv4 there); the company side's IPv6
#     probes through the SA reach neither the LAN nor gw.
#  2. NPTv6: the IPv6 policy's source is a /64 block: `attach ipsec0 --binat`. The company host
#     sees the LAN host at the address RFC 6296's arithmetic gives (computed here, not by ipsnat:
#     npt6_expected), and its connection to that address reaches the LAN host.
# Each phase: without ipsnat the LAN's IPv6 misses the policy (xfrmi drops it, nothing leaves);
# detach restores gw; ESP both ways and no cleartext of either family on transit.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

# npt6_expected ADDR INSIDE/64 OUTSIDE/64: ADDR with INSIDE replaced by OUTSIDE and the first
# interface-identifier word adjusted so the one's-complement sum is unchanged (RFC 6296 3.2, 3.6).
npt6_expected() {
  python3 -S - "$@" <<'EOF'
import ipaddress, sys
addr, inside, outside = ipaddress.IPv6Address(sys.argv[1]), *(ipaddress.IPv6Network(n) for n in sys.argv[2:])
assert inside.prefixlen == outside.prefixlen == 64 and addr in inside
def words(a): return [(int(a) >> (112 - 16 * k)) & 0xffff for k in range(8)]
def fold(s):
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
w, wi, wo = words(addr), words(inside.network_address), words(outside.network_address)
adj = fold(w[4] + fold(sum(wi[:4])) + (0xffff - fold(sum(wo[:4]))))
out = wo[:4] + [0 if adj == 0xffff else adj] + w[5:]
print(ipaddress.IPv6Address(sum(x << (112 - 16 * k) for k, x in enumerate(out))))
EOF
}

# xfrmi6_lab: the lab, dual stack, ipsec0 with af-unspec SAs, the IPv4 policies (lab_esp_xfrmi)
# and the company's IPv6 network routed into ipsec0.
xfrmi6_lab() {
  lab_up
  lab_ipv6_up
  lab_ipv6_company_up
  LAB_SA_FLAGS=af-unspec lab_esp_xfrmi ipsec0
  _lab_ip gw route add "$LAB_COMPANY6_NET" dev ipsec0
}

# xfrmi6_policies add|del SRC6: gw's IPv6 policies with source SRC6 (out) and the if_id, cgw's
# mirror and its route of SRC6 into the SA, chost's route of SRC6 via cgw.
xfrmi6_policies() {
  local op=$1 src6=$2
  if [[ $op == add ]]; then
    _lab_policies "$src6" "$LAB_COMPANY6_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP" if_id "$LAB_IF_ID" | _lab_batch gw
    { _lab_policies "$LAB_COMPANY6_NET" "$src6" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"; echo "route add $src6 dev eth0"; } |
      _lab_batch cgw
  else
    _lab_ip gw xfrm policy del src "$src6" dst "$LAB_COMPANY6_NET" dir out if_id "$LAB_IF_ID"
    _lab_ip gw xfrm policy del src "$LAB_COMPANY6_NET" dst "$src6" dir in if_id "$LAB_IF_ID"
    _lab_ip gw xfrm policy del src "$LAB_COMPANY6_NET" dst "$src6" dir fwd if_id "$LAB_IF_ID"
    _lab_ip cgw xfrm policy del src "$src6" dst "$LAB_COMPANY6_NET" dir in
    _lab_ip cgw xfrm policy del src "$src6" dst "$LAB_COMPANY6_NET" dir fwd
    _lab_ip cgw xfrm policy del src "$LAB_COMPANY6_NET" dst "$src6" dir out
    _lab_ip cgw route del "$src6" dev eth0
  fi
  # lab_ipv6_company_up routes the NAT66 address already.
  [[ $src6 == "$LAB_NAT_IP6/128" ]] || _lab_ip chost route "$op" "$src6" via "$LAB_CGW_LAN_IP6" dev lan0
}

# same_ip6 A B: A and B are the same IPv6 address (socat prints them in full).
# shellcheck disable=SC2317 # called through expect_ok
same_ip6() { python3 -S -c 'import ipaddress, sys; sys.exit(ipaddress.ip_address(sys.argv[1]) != ipaddress.ip_address(sys.argv[2]))' "$1" "$2"; }

# xfrmi6_phase NAME SRC6 EXPECTED_SOURCE6 PORT [attach flags...]: with gw's IPv6 out-policy
# from SRC6, attach, the checks (header), detach.
xfrmi6_phase() {
  local name=$1 src6=$2 want6=$3 port=$4 before peer; shift 4
  FAILS_BEFORE=$FAILS
  step "$LAB_PROFILE: $name on ipsec0 (if_id $LAB_IF_ID), LAN $LAB_LAN6_NET -> $LAB_COMPANY6_NET as $want6"
  xfrmi6_policies add "$src6"
  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start chost lan0 chost
  expect_fail "without ipsnat the LAN's IPv6 misses the policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP6"
  expect_ok "ipsnat attach ipsec0 $*" eval "ipsnat_gw attach ipsec0 $* 2>&1 | sed 's/^/      /'"
  # IPv4 beside it: a ping (t_nat_xfrmi checks the rest of IPv4 on this device).
  nat_check_ping lanhost
  dual_check_family "$LAB_CHOST_IP6" "$want6" "$((port + 10))"
  if [[ $src6 == "$LAB_NAT_IP6/128" ]]; then
    nat_check_no_door 6
  else
    peer=$(nat_chost_to_lanhost tcp "$want6" "$((port + 20))" "$((port + 20))" | tr -d '[]')
    expect_ok "binat: chost -> $want6 reached lanhost, which saw $LAB_CHOST_IP6 (${peer:-nothing})" \
      same_ip6 "${peer#tcp }" "$LAB_CHOST_IP6"
  fi
  lab_capture_stop chost >/dev/null
  LAB_NAT_IP6=$want6 dual_chost_sources_check chost

  step "$LAB_PROFILE: $name: detach"
  ((FAILS == FAILS_BEFORE)) || nat_diag
  expect_ok "ipsnat detach ipsec0" ipsnat_gw detach ipsec0
  nat_expect_restored "gateway as before attach" "$before"
  expect_fail "after detach the LAN's IPv6 misses the policy again" lab_ping lanhost "$LAB_CHOST_IP6"
  xfrmi6_policies del "$src6"
}

lab_profile "${NAT_XFRMI6_PROFILE:-seed}"
# The NPTv6 block: the /64 after the NAT66 address's own, inside the company's IPv6 network.
npt6_net=$(python3 -S -c 'import ipaddress, sys
n = ipaddress.IPv6Network(sys.argv[1] + "/64", strict=False)
print(ipaddress.IPv6Network((int(n.network_address) + (1 << 64), 64)))' "$LAB_NAT_IP6")
xfrmi6_lab
lab_capture_start transit
xfrmi6_phase NAT66 "$LAB_NAT_IP6/128" "$LAB_NAT_IP6" 5601
xfrmi6_phase NPTv6 "$npt6_net" "$(npt6_expected "$LAB_LANHOST_IP6" "$LAB_LAN6_NET" "$npt6_net")" 5631 --binat
lab_capture_stop transit >/dev/null
expect_esp_both_ways "xfrmi dual stack" transit
expect_no_leak "no IPv4 cleartext on transit during the whole run" transit
expect_no_leak6 "no IPv6 cleartext on transit during the whole run" transit
lab_down
finish
