#!/bin/bash
# Policy mode (`ipsnat attach eth0`) on a dual-stack gateway whose masquerade rule is written for
# both families (`table inet`: `oifname "eth0" masquerade`), as the seed's second rule often is in
# nftables. netfilter masquerades a LAN packet in POSTROUTING, before the LWT xmit hook: its source
# reaches ipsnat as the uplink's address, of either family. NAT66 must still take it to the
# policy's address (the IPv6 inside set's NPT6_KIND_LOCAL entries, as INSIDE_LOCAL for IPv4), or
# the leak guard drops it and the company never hears from the LAN over IPv6. The oracle is the
# kernel's ACQUIRE (no ESP here): its selector must name the policy's address, never the uplink's
# or a LAN address (also for the LAN host's ICMPv6 error about a reply, which netfilter rewrote as
# related to the masqueraded flow); nothing reaches the WAN in cleartext towards the covered prefixes; the
# gateway's own packets from its uplink address are not translated; traffic to other destinations
# still leaves masqueraded by netfilter; detach leaves the kernel as before.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_dual_stack_policy_gateway
t_in "$gw" nft -f - <<'EON'
table inet seed_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" masquerade
  }
}
EON

snapshot() {
  ip -n "$gw" rule show
  ip -n "$gw" -6 rule show
  ip -n "$gw" route show table all | grep -v 'proto kernel\|^local\|^broadcast\|^multicast' || true
  ip -n "$gw" -6 route show table all | grep -v 'proto kernel\|^local\|^multicast\|fe80::' || true
  ip -n "$gw" xfrm policy show
  tc -n "$gw" filter show dev eth0 egress
  tc -n "$gw" filter show dev eth0 ingress
  t_in "$gw" nft list ruleset
}
before=$(snapshot)

plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the plan names the NAT66 translation" \
  grep -Eq 'translate policy [0-9]+ 2001:db8:77::5(/128)? -> 2001:db8:e77::/48: nat66 fd00:77:1::/64 -> 2001:db8:77::5 \(ports\)$' <<<"$plan"

acq=$(mktemp) leak=$(mktemp)
timeout 25 ip -n "$gw" xfrm monitor acquire >"$acq" &
T_PIDS+=("$!")
mon=$!
timeout 25 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode -Q in 'not arp and not (icmp6 and icmp6[0] >= 133)' \
  >"$leak" 2>"$leak.err" &
T_PIDS+=("$!")
t_wait_subscribed "$mon"
t_wait_capturing "$leak.err"
# send NS SRC DST PORT SPORT: one UDP datagram.
send() {
  t_in "$1" timeout 5 python3 -c "
import socket
fam = socket.AF_INET6 if ':' in '$3' else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind(('$2', $5))
s.sendto(b'x' * 64, ('$3', $4))" || true
}
# One ACQUIRE per SA while its larval state lives: the state is dropped before each flow.
ip -n "$gw" xfrm state flush
send "$lana" fd00:77:1::a 2001:db8:e77::1 7400 40077
t_wait_acquire 0 "$acq" || true
ip -n "$gw" xfrm state flush
t_in "$lana" ping -6 -c 1 -W 1 2001:db8:e77::1 >/dev/null 2>&1 || true
t_wait_acquire 1 "$acq" || true
ip -n "$gw" xfrm state flush
send "$lana" 172.16.77.10 10.77.9.1 7400 40078
t_wait_acquire 2 "$acq" || true
ip -n "$gw" xfrm state flush
# The LAN host's own port unreachable about a reply of its IPv6 UDP flow: netfilter rewrites it as
# related to the masqueraded flow (outer source and quoted destination: the uplink's address), and
# NAT66 translates it from that flow's entry.
t_icmp6_port_unreachable "$lana" fd00:77:1::a 2001:db8:e77::1
t_wait_acquire 3 "$acq" || true
ip -n "$gw" xfrm state flush
# The gateway's own packet from its uplink address to the covered prefix: no LAN packet, not
# translated (the guard drops its cleartext).
send "$gw" 2001:db8:ff77::1 2001:db8:e77::1 7400 40079
# Not covered: the LAN host's ping to the uplink's neighbour leaves masqueraded by netfilter.
expect_ok "the LAN host reaches an uncovered IPv6 address through netfilter's masquerade" \
  t_in "$lana" ping -6 -c 1 -W 2 2001:db8:ff77::2
sleep 1
flows=$(t_in "$gw" "$IPSNAT" flows 2>&1)
echo "$flows"
status=$(t_in "$gw" "$IPSNAT" status 2>&1)
echo "$status" | grep -E 'nat66|snat|not-inside|leak-guard' || true
for pid in "${T_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
cat "$acq"
expect_ok "an ACQUIRE for the LAN host's IPv6 UDP flow from the policy's address" \
  grep -q 'sel src 2001:db8:77::5/128 dst 2001:db8:e77::1/128 proto udp' "$acq"
expect_ok "an ACQUIRE for the LAN host's ping from the policy's address" \
  grep -q 'sel src 2001:db8:77::5/128 dst 2001:db8:e77::1/128 proto ipv6-icmp' "$acq"
expect_ok "an ACQUIRE for the LAN host's IPv4 UDP flow from the policy's address" \
  grep -q 'sel src 10.77.0.2/32 dst 10.77.9.1/32 proto udp' "$acq"
expect_ok "an ACQUIRE for the LAN host's port unreachable about a reply, from the policy's address" \
  awk '/proto ipv6-icmp/ {n++} n >= 2 && /sel src 2001:db8:77::5\/128 dst 2001:db8:e77::1\/128 proto ipv6-icmp/ {found = 1}
       END {exit !found}' "$acq"
expect_eq "ACQUIREs: the three LAN flows and the LAN host's error, not the gateway's own packet" "$(t_acquire_count "$acq")" 4
expect_ok "no ACQUIRE names the uplink's or a LAN address" \
  bash -c "! grep -Eq 'sel src (2001:db8:ff77::1|198.18.77.1|fd00:77:1|172.16.77)' '$acq'"
expect_ok "ipsnat flows: the masqueraded IPv6 flow bound to the policy's address" \
  grep -Eq '^udp \[2001:db8:ff77::1\]:[0-9]+ -> \[2001:db8:e77::1\]:7400 as \[2001:db8:77::5\]:[0-9]+ nat66' <<<"$flows"
expect_ok "ipsnat flows: no flow of the gateway's own packet" bash -c "! grep -q ':40079 ' <<<\"\$1\"" _ "$flows"
expect_ok "nothing reached the WAN in cleartext towards the covered prefixes" \
  bash -c "! grep -Eq '> (2001:db8:e77|10\.77\.9)' '$leak'"
expect_ok "the uncovered ping left as the uplink's address" \
  grep -Eq '2001:db8:ff77::1 > 2001:db8:ff77::2: ICMP6, echo request' "$leak"
expect_ok "status counts the gateway's own packet the guard dropped" grep -Eq 'drop-leak-guard-ipv6 +[1-9]' <<<"$status"
expect_ok "status counts the LAN host's error translated (xlate-icmp-error 1)" grep -Eq 'xlate-icmp-error +1( |$)' <<<"$status"
((FAILS)) && cat "$leak" >&2
rm -f "$acq" "$leak" "$leak.err"

# An address the uplink gains after attach, and a rule that SNATs IPv6 to it: the host process puts
# it into the inside set (an address change, no new SPD version) and NAT66 takes the next flow.
ip -n "$gw" addr add 2001:db8:ff77::99/64 dev eth0 nodad
t_in "$gw" nft insert rule inet seed_nat postrouting oifname eth0 meta nfproto ipv6 snat ip6 to 2001:db8:ff77::99
acq=$(mktemp)
timeout 25 ip -n "$gw" xfrm monitor acquire >"$acq" &
mon=$!
t_wait_subscribed "$mon"
late() {
  local n; n=$(t_acquire_count "$acq")
  ip -n "$gw" xfrm state flush
  send "$lana" fd00:77:1::a 2001:db8:e77::1 7400 $((40100 + n))
  t_wait_acquire "$n" "$acq" || true
  grep -q 'sel src 2001:db8:77::5/128 dst 2001:db8:e77::1/128 proto udp' "$acq"
}
expect_ok "a flow SNATed to the uplink's new address reaches the xfrm lookup from the policy's address (<= 10 s)" \
  t_wait_for 10 late
kill "$mon" 2>/dev/null || true
wait "$mon" 2>/dev/null || true
expect_ok "no ACQUIRE names the new address" bash -c "! grep -q 'sel src 2001:db8:ff77::99' '$acq'"
flows=$(t_in "$gw" "$IPSNAT" flows 2>&1)
expect_ok "ipsnat flows: the flow from the new address bound to the policy's address" \
  grep -Eq '^udp \[2001:db8:ff77::99\]:[0-9]+ -> \[2001:db8:e77::1\]:7400 as \[2001:db8:77::5\]:[0-9]+ nat66' <<<"$flows"
rm -f "$acq"
t_in "$gw" nft flush chain inet seed_nat postrouting
t_in "$gw" nft add rule inet seed_nat postrouting oifname eth0 masquerade
ip -n "$gw" addr del 2001:db8:ff77::99/64 dev eth0

expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
after=$(snapshot)
expect_ok "detach left the kernel as before attach (the masquerade table included)" test "$before" == "$after"
[[ "$before" == "$after" ]] || diff <(echo "$before") <(echo "$after") >&2 || true
finish
