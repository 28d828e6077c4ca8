#!/bin/bash
# IPv6 in policy mode with two IPv6 LANs behind one NAT66 one-address policy (2001:db8:78::5/128
# -> 2001:db8:e78::/48): LAN 1 on a bridge (br0, a veth port) with a second IPv6 prefix (a ULA
# and another, as a router with a delegated prefix has), LAN 2 on a plain device. NAT66 takes
# every IPv6 inside prefix to the policy's address, as IPv4 NAPT does for several LANs: plain
# `attach eth0` infers all three prefixes and translates each, with fwd/in companions for each;
# --inside with one prefix covering both LANs does the same. The oracle is the kernel's ACQUIRE:
# it names the selector the kernel saw after the LWT reroute, whose source must be the policy's
# address for each LAN's host, never a LAN address. Then a /120 policy, smaller than the LANs,
# takes them with ports over a pool of its 255 addresses after the Subnet-Router anycast one:
# eight hosts' pings, a UDP and a TCP flow reach the ACQUIRE each with one pool address, the one
# `ipsnat explain` names, the hosts spread over several (the kernel names the address the
# datapath chose, not the test). Then LANs of two sizes under a /56 (NPTv6 for the one that fits,
# NAT66 over the next /64's pool for the larger) and under a /64 (the larger one left out, and
# said).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lana=$(t_netns lana) lanb=$(t_netns lanb) gw=$(t_netns gw) wan=$(t_netns wan)
t_ipv6_on "$lana" "$lanb" "$gw" "$wan"
ip -n "$gw" link add br0 type bridge
ip link add a1 netns "$lana" type veth peer name a0 netns "$gw"
ip -n "$gw" link set a0 master br0
ip link add b1 netns "$lanb" type veth peer name lan2 netns "$gw"
ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
ip -n "$gw" addr add 172.16.78.1/24 dev br0
ip -n "$gw" addr add fd00:78:1::1/64 dev br0 nodad
ip -n "$gw" addr add fd00:78:3::1/64 dev br0 nodad
ip -n "$gw" addr add fd00:78:2::1/64 dev lan2 nodad
ip -n "$lana" addr add 172.16.78.10/24 dev a1
ip -n "$lana" addr add fd00:78:1::a/64 dev a1 nodad
ip -n "$lana" addr add fd00:78:3::a/64 dev a1 nodad
ip -n "$lanb" addr add fd00:78:2::b/64 dev b1 nodad
ip -n "$gw" addr add 198.18.78.1/24 dev eth0
ip -n "$gw" addr add 2001:db8:ff78::1/64 dev eth0 nodad
ip -n "$wan" addr add 198.18.78.2/24 dev eth1
ip -n "$wan" addr add 2001:db8:ff78::2/64 dev eth1 nodad
t_links_up "$lana:a1" "$lanb:b1" "$gw:a0" "$gw:br0" "$gw:lan2" "$gw:eth0" "$wan:eth1"
ip -n "$lana" route add default via 172.16.78.1
ip -n "$lana" -6 route add default via fd00:78:1::1
ip -n "$lanb" -6 route add default via fd00:78:2::1
ip -n "$gw" route add default via 198.18.78.2
ip -n "$gw" -6 route add default via 2001:db8:ff78::2
t_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$gw" xfrm policy add src 10.78.0.2/32 dst 10.78.9.0/24 dir out \
  tmpl src 198.18.78.1 dst 198.18.78.2 proto esp reqid 1 mode tunnel
ip -n "$gw" xfrm policy add src 2001:db8:78::5/128 dst 2001:db8:e78::/48 dir out \
  tmpl src 2001:db8:ff78::1 dst 2001:db8:ff78::2 proto esp reqid 2 mode tunnel
t_wait_links_up "$lana" "$lanb" "$gw" "$wan"

# traffic ATTACH_ARGS...: attach with them, each LAN host pings its own destination in the
# policy's remote prefix (a: ::1, from its second prefix ::3, b: ::2); sets $plan, $acq (the ACQUIREs) and $leak (the WAN).
traffic() {
  plan=$(t_in "$gw" "$IPSNAT" attach eth0 "$@" 2>&1) || fail "attach $* failed: $plan"
  echo "$plan"
  local acqf leakf
  acqf=$(mktemp) leakf=$(mktemp)
  ip -n "$gw" xfrm state flush
  timeout 15 ip -n "$gw" xfrm monitor acquire >"$acqf" &
  T_PIDS+=("$!")
  t_wait_subscribed "$!"
  timeout 15 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode -Q in 'ip6 and not icmp6[0] >= 133' \
    >"$leakf" 2>"$leakf.err" &
  T_PIDS+=("$!")
  t_wait_capturing "$leakf.err"
  # The pings get no answer (no SA): each is one echo request, followed by its ACQUIRE (at most 2 s).
  local n
  n=$(t_acquire_count "$acqf")
  t_in "$lana" ping -6 -c 1 -W 0.2 2001:db8:e78::1 >/dev/null 2>&1 || true
  t_wait_acquire "$n" "$acqf" || true
  # One ACQUIRE per SA while its larval state lives: drop that state so the next flow asks again.
  ip -n "$gw" xfrm state flush
  n=$(t_acquire_count "$acqf")
  t_in "$lana" ping -6 -c 1 -W 0.2 -I fd00:78:3::a 2001:db8:e78::3 >/dev/null 2>&1 || true
  t_wait_acquire "$n" "$acqf" || true
  ip -n "$gw" xfrm state flush
  t_in "$lanb" ping -6 -c 1 -W 0.2 2001:db8:e78::2 >/dev/null 2>&1 || true
  sleep 1
  t_stop_background
  acq=$(cat "$acqf") leak=$(cat "$leakf")
  rm -f "$acqf" "$leakf" "$leakf.err"
  echo "$acq"
}
# acquires CMD...: the kernel's ACQUIREs (in $acq, and printed) while each CMD runs (eval), the
# states flushed before each: one ACQUIRE per SA while its larval state lives. Each CMD sends
# one packet that raises one: the next CMD once it came (at most 2 s).
acquires() {
  local acqf cmd n
  acqf=$(mktemp)
  ip -n "$gw" xfrm state flush
  timeout 15 ip -n "$gw" xfrm monitor acquire >"$acqf" &
  T_PIDS+=("$!")
  t_wait_subscribed "$!"
  for cmd in "$@"; do
    ip -n "$gw" xfrm state flush
    n=$(t_acquire_count "$acqf")
    eval "$cmd" || true
    t_wait_acquire "$n" "$acqf" || true
  done
  sleep 0.5
  t_stop_background
  acq=$(cat "$acqf")
  rm -f "$acqf"
  echo "$acq"
}
no_lan_source() { ! grep -q 'fd00:78:' <<<"$1"; }
no_wan_cleartext() { ! grep -Eq 'fd00:78:|2001:db8:78::5' <<<"$1"; }
# each_lan_translated: every host's ACQUIRE (traffic's) names the policy's address, none a LAN
# address, and nothing of either LAN reached the WAN in cleartext.
each_lan_translated() {
  expect_ok "an ACQUIRE for LAN 1's host (on the bridge) with the policy's address" \
    grep -q 'sel src 2001:db8:78::5/128 dst 2001:db8:e78::1/128 proto ipv6-icmp' <<<"$acq"
  expect_ok "an ACQUIRE for LAN 1's host from the bridge's second prefix with the policy's address" \
    grep -q 'sel src 2001:db8:78::5/128 dst 2001:db8:e78::3/128 proto ipv6-icmp' <<<"$acq"
  expect_ok "an ACQUIRE for LAN 2's host with the policy's address" \
    grep -q 'sel src 2001:db8:78::5/128 dst 2001:db8:e78::2/128 proto ipv6-icmp' <<<"$acq"
  expect_ok "no ACQUIRE names a LAN address" no_lan_source "$acq"
  expect_ok "neither LAN's IPv6 cleartext reached the WAN" no_wan_cleartext "$leak"
  if ((FAILS)); then echo "$leak" >&2; fi
}

traffic
expect_ok "without --inside NAT66 takes all three IPv6 inside prefixes" \
  grep -Eq '2001:db8:e78::/48: nat66 fd00:78:[0-9]::/64, fd00:78:[0-9]::/64, fd00:78:[0-9]::/64 -> 2001:db8:78::5 \(ports\)$' <<<"$plan"
expect_ok "both IPv6 LANs are inside" grep -q '^  inside fd00:78:2::/64 (lan2)$' <<<"$plan"
expect_ok "and the bridge's second prefix" grep -q '^  inside fd00:78:3::/64 (br0)$' <<<"$plan"
expect_ok "attach warns of nothing about NAT66" bash -c "! grep -q 'NAT66' <<<\"\$1\"" _ "$plan"
# The host process runs and the namespace has no rule but the kernel's: ipsnat's routes are in
# the main table, without a rule.
expect_ok "an IPv6 LWT route for the policy's destination (main table)" \
  bash -c "ip -n $gw -6 route show table main | grep -q '^2001:db8:e78::/48 .*encap bpf.* via 2001:db8:ff78::2 dev eth0 proto 165'"
expect_ok "no IPv6 rule" bash -c "! ip -n $gw -6 rule show | grep -q 'lookup 421'"
for lan in fd00:78:1::/64 fd00:78:3::/64 fd00:78:2::/64; do
  expect_ok "a fwd companion for $lan" ip -n "$gw" xfrm policy get src 2001:db8:e78::/48 dst "$lan" dir fwd
done
each_lan_translated

# One inside prefix covering both LANs (the IPv4 LAN named too: --inside replaces the inference).
traffic --inside 172.16.78.0/24 --inside fd00:78::/46
expect_ok "with --inside both LANs are one NAT66 inside prefix" \
  grep -q 'nat66 fd00:78::/46 -> 2001:db8:78::5 (ports)$' <<<"$plan"
expect_ok "the fwd companion covers both LANs" \
  ip -n "$gw" xfrm policy get src 2001:db8:e78::/48 dst fd00:78::/46 dir fwd
each_lan_translated
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0

# A policy whose source is a prefix smaller than the LANs (/120 for /64s): no 1:1 map holds them, so
# NAT66 takes all three over the /120's pool, ::101-::1ff (never the Subnet-Router anycast ::100),
# with ports; each host keeps the one address its source picks.
ip -n "$gw" xfrm policy delete src 2001:db8:78::5/128 dst 2001:db8:e78::/48 dir out
ip -n "$gw" xfrm policy add src 2001:db8:78::100/120 dst 2001:db8:e78::/48 dir out \
  tmpl src 2001:db8:ff78::1 dst 2001:db8:ff78::2 proto esp reqid 2 mode tunnel
plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach (/120 policy) failed: $plan"
echo "$plan"
expect_ok "the plan takes the LANs over the /120 selector's pool with ports" \
  grep -Eq '2001:db8:78::100/120 -> 2001:db8:e78::/48: nat66 fd00:78:[0-9]::/64, fd00:78:[0-9]::/64, fd00:78:[0-9]::/64 -> 2001:db8:78::101-2001:db8:78::1ff \(ports\)$' <<<"$plan"
expect_ok "the pool is blackholed per aligned block, not its anycast address" \
  bash -c "ip -n $gw -6 route show proto 165 | grep -q '^blackhole 2001:db8:78::180/121' &&
           ! ip -n $gw -6 route show table all proto 165 | grep -q '^blackhole 2001:db8:78::100[/ ]'"
in_pool() { [[ $1 =~ ^2001:db8:78::1[0-9a-f][0-9a-f]$ && $1 != 2001:db8:78::100 ]]; }
# explain_to SRC DST PROTO [DPORT]: the source explain says the flow leaves with (ICMPv6, 58: no ports).
explain_to() {
  local ports=()
  [[ -n ${4:-} ]] && ports=(40000 "$4")
  t_in "$gw" "$IPSNAT" -j explain "$1" "$2" "$3" "${ports[@]}" --inside fd00:78:1::/64 --inside fd00:78:3::/64 \
    --inside fd00:78:2::/64 | jq -r '.translation.to // empty'
}
# acquired_src DST PROTO: the source of the ACQUIRE (in $acq) for that destination and protocol.
acquired_src() { sed -nE "s|.*sel src ([^/]+)/128 dst $1/128 proto $2.*|\1|p" <<<"$acq" | head -1; }
# LAN 1's host's own TCP leaves from fd00:78:1::a: its second prefix's address is made deprecated too.
ip -n "$lana" addr change fd00:78:3::a/64 dev a1 preferred_lft 0
cmds=()
for i in 1 2 3 4 5 6 7 8; do
  ip -n "$lana" addr add "fd00:78:1::a$i/64" dev a1 nodad preferred_lft 0  # never a default source
  cmds+=("t_in $lana ping -6 -c 1 -W 0.2 -I fd00:78:1::a$i 2001:db8:e78::1$i >/dev/null 2>&1")
done
cmds+=("t_in $lanb bash -c 'echo x >/dev/udp/2001:db8:e78::2/5353'"
  "t_in $lana timeout 3 python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.settimeout(0.2); s.connect_ex((\"2001:db8:e78::1\", 443))'")
sleep 1  # the new addresses settle
acquires "${cmds[@]}"
declare -A seen=()
for i in 1 2 3 4 5 6 7 8; do
  got=$(acquired_src "2001:db8:e78::1$i" ipv6-icmp)
  want=$(explain_to "fd00:78:1::a$i" "2001:db8:e78::1$i" 58)
  expect_ok "host fd00:78:1::a$i reaches the kernel's ACQUIRE from a pool address ($got)" in_pool "$got"
  expect_ok "host fd00:78:1::a$i: explain names the same address ($want)" test "$got" = "$want"
  [[ -n $got ]] && seen[$got]=1
done
expect_ok "eight hosts spread over several pool addresses (${!seen[*]})" test "${#seen[@]}" -ge 4
got=$(acquired_src 2001:db8:e78::2 udp)
expect_ok "LAN 2's UDP reaches the kernel's ACQUIRE from its pool address ($got)" \
  test "$got" = "$(explain_to fd00:78:2::b 2001:db8:e78::2 udp 5353)"
expect_ok "that address is the pool's" in_pool "$got"
got=$(acquired_src 2001:db8:e78::1 tcp)
expect_ok "LAN 1's TCP reaches the kernel's ACQUIRE from its pool address ($got)" \
  test "$got" = "$(explain_to fd00:78:1::a 2001:db8:e78::1 tcp 443)"
expect_ok "that address is the pool's" in_pool "$got"
expect_ok "the ACQUIREs name the /120 policy" grep -q 'src 2001:db8:78::100/120 dst 2001:db8:e78::/48' <<<"$acq"
expect_ok "no ACQUIRE names a LAN address" no_lan_source "$acq"
json=$(t_in "$gw" "$IPSNAT" -j policies --inside fd00:78::/46)
expect_ok "policies -j says the same" \
  test "$(jq -r '.policies[] | select(.src=="2001:db8:78::100/120") | .nat.kind + " " + .nat.inside + " " + .nat.to' <<<"$json")" = "nat66 fd00:78::/46 2001:db8:78::101-2001:db8:78::1ff"
expect_ok "detach (/120 policy)" t_in "$gw" "$IPSNAT" detach eth0

# LANs of two sizes under a /56 policy: LAN 2 named as a /64 (fits 1:1) and LAN 1 inside a /47
# (larger than the selector). With --binat NPTv6 maps LAN 2 onto the selector's first /64, and the
# /47 is NAT66 with ports over the next /64's pool after its Subnet-Router anycast one,
# 2001:db8:79:1::1-2001:db8:79:1::1:0: each host's ping reaches the kernel's ACQUIRE with its own
# translation.
ip -n "$gw" xfrm policy delete src 2001:db8:78::100/120 dst 2001:db8:e78::/48 dir out
ip -n "$gw" xfrm policy add src 2001:db8:79::/56 dst 2001:db8:e78::/48 dir out \
  tmpl src 2001:db8:ff78::1 dst 2001:db8:ff78::2 proto esp reqid 2 mode tunnel
mixed=(--binat --inside 172.16.78.0/24 --inside fd00:78:2::/64 --inside fd00:78::/47)
plan=$(t_in "$gw" "$IPSNAT" attach eth0 "${mixed[@]}" 2>&1) || fail "attach (/56 policy) failed: $plan"
echo "$plan"
expect_ok "the plan maps the /64 1:1 and takes the /47 over the next /64's pool with ports" \
  grep -q '2001:db8:79::/56 -> 2001:db8:e78::/48: nptv6 fd00:78:2::/64 -> 2001:db8:79::/64; nat66 fd00:78::/47 -> 2001:db8:79:1::1-2001:db8:79:1::1:0 (ports)$' <<<"$plan"
acquires "t_in $lanb ping -6 -c 1 -W 0.2 2001:db8:e78::2 >/dev/null 2>&1" \
  "t_in $lana ping -6 -c 1 -W 0.2 -I fd00:78:1::a 2001:db8:e78::1 >/dev/null 2>&1"
expect_ok "LAN 2's ping reaches the kernel's ACQUIRE NPTv6-mapped into the selector's first /64" \
  grep -Eq 'sel src 2001:db8:79:(0:|:)[0-9a-f:]*/128 dst 2001:db8:e78::2/128 proto ipv6-icmp' <<<"$acq"
got=$(acquired_src 2001:db8:e78::1 ipv6-icmp)
want=$(t_in "$gw" "$IPSNAT" -j explain fd00:78:1::a 2001:db8:e78::1 58 --binat --inside fd00:78:2::/64 \
  --inside fd00:78::/47 | jq -r '.translation.to // empty')
expect_ok "LAN 1's ping reaches the kernel's ACQUIRE from the next /64's pool address explain names ($got)" \
  bash -c '[[ $1 == "$2" && $1 =~ ^2001:db8:79:1:: ]]' _ "$got" "$want"
expect_ok "no ACQUIRE names a LAN address" no_lan_source "$acq"
json=$(t_in "$gw" "$IPSNAT" -j policies --inside fd00:78:2::/64 --inside fd00:78::/47)
expect_ok "policies -j names the NPTv6 map and the rest's NAT66" \
  test "$(jq -r '.policies[] | select(.src=="2001:db8:79::/56") | .nat.kind + " " + .nat.to + " " + .nat.rest.inside + " " + .nat.rest.to' <<<"$json")" = "nptv6 2001:db8:79::/64 fd00:78::/47 2001:db8:79:1::1-2001:db8:79:1::1:0"
expect_ok "detach (/56 policy)" t_in "$gw" "$IPSNAT" detach eth0

# Under a /64 policy the /64 LAN takes the whole selector: no address is left for the /47, and
# attach, the plan and policies -j name it and why, in one line.
ip -n "$gw" xfrm policy delete src 2001:db8:79::/56 dst 2001:db8:e78::/48 dir out
ip -n "$gw" xfrm policy add src 2001:db8:79::/64 dst 2001:db8:e78::/48 dir out \
  tmpl src 2001:db8:ff78::1 dst 2001:db8:ff78::2 proto esp reqid 2 mode tunnel
left='fd00:78::/47 not translated: the 1:1 map of fd00:78:2::/64 takes the whole selector 2001:db8:79::/64, no address of it is left for NAT66'
plan=$(t_in "$gw" "$IPSNAT" attach eth0 "${mixed[@]}" 2>&1) || fail "attach (/64 policy) failed: $plan"
echo "$plan"
expect_ok "the plan line names the /47 left out" \
  grep -qF "2001:db8:79::/64 -> 2001:db8:e78::/48: nptv6 fd00:78:2::/64 -> 2001:db8:79::/64; $left" <<<"$plan"
expect_ok "attach warns of it in one line" bash -c 'grep -F "warning: policy " <<<"$1" | grep -qF "$2"' _ "$plan" "$left"
json=$(t_in "$gw" "$IPSNAT" -j policies --inside fd00:78:2::/64 --inside fd00:78::/47)
expect_ok "policies -j names it" \
  test "$(jq -r '.policies[] | select(.src=="2001:db8:79::/64") | .nat.left_out' <<<"$json")" = "$left"
expect_ok "detach (/64 policy)" t_in "$gw" "$IPSNAT" detach eth0
finish
