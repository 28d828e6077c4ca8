#!/bin/bash
# IPv6 in policy mode (the default: `ipsnat attach eth0`), dual stack: a LAN on a bridge (IPv4
# 172.16.77.0/24, IPv6 fd00:77:1::/64) behind a gateway whose uplink carries policy-based SAs.
# The IPv6 out-policy 2001:db8:77::5/128 -> 2001:db8:e77::/48 (strongSwan's virtual IPv6, here not
# a local address) implies NAT66 with ports; 2001:db8:d77:1::/64 -> 2001:db8:b77::/48 implies
# NPTv6, only with --binat. This kernel has no ESP: the oracle is the kernel's ACQUIRE, raised when
# the translated packet matches the out-policy at the xfrm lookup after the LWT reroute; it names
# the selector the kernel saw, whose source must be the policy's, never a LAN address (also for the
# LAN host's own ICMPv6 error about a reply of its flow, translated in LWT xmit). Replies:
# without ESP no packet can arrive with an SA, and on a policy-mode uplink only a decrypted reply
# is translated back (the bpf tier proves that path: tests/bpf/lwt6_test.cpp, and for ICMPv6
# errors tests/bpf/icmp6_error_test.cpp); here a reply and a Packet Too Big about the flow injected
# in cleartext on the uplink must not reach the LAN host, nor an unsolicited packet.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_dual_stack_policy_gateway

# What ipsnat installs and the kernel holds (IPv6 side), for the before/after comparison.
snapshot() {
  ip -n "$gw" -6 rule show
  ip -n "$gw" -6 route show table all | grep -v 'proto kernel\|^local\|^multicast\|fe80::' || true
  ip -n "$gw" xfrm policy show
  tc -n "$gw" filter show dev eth0 egress
  tc -n "$gw" filter show dev eth0 ingress
}
before=$(snapshot)

plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "policy mode" grep -q '^attach eth0 mode policy' <<<"$plan"
expect_ok "the plan names the NAT66 translation" \
  grep -Eq '^  translate policy [0-9]+ 2001:db8:77::5(/128)? -> 2001:db8:e77::/48: nat66 fd00:77:1::/64 -> 2001:db8:77::5 \(ports\)$' <<<"$plan"
expect_ok "NPTv6 waits for --binat" grep -q '2001:db8:b77::/48: none (nptv6 is stateless both ways: --binat allows it)' <<<"$plan"
expect_ok "the plan names the IPv4 translation" grep -q 'napt 172.16.77.0/24 -> 10.77.0.2$' <<<"$plan"
# The host process runs and the namespace has no rule but the kernel's: the routes of both
# families go to the main table, without a rule.
expect_ok "an IPv6 LWT route in the main table with a locked MTU (1500 - 88 - 20 for an IPv6 outer header)" \
  grep -q '^  route 2001:db8:e77::/48 table main via 2001:db8:ff77::2 dev eth0 metric 65535 mtu lock 1392 encap bpf xmit lwt_snat_xmit$' <<<"$plan"
expect_ok "the NAT66 address blackholed in the main table" grep -q '^  route blackhole 2001:db8:77::5/128 table main metric 65535$' <<<"$plan"
expect_ok "the IPv4 LWT route in the main table" grep -q '^  route 10.77.9.0/24 table main via 198.18.77.2 dev eth0 ' <<<"$plan"
expect_ok "the plan names no rule" bash -c "! grep -q '^  rule ' <<<\"\$1\"" _ "$plan"
expect_ok "the kernel holds the IPv6 LWT route (proto 165) in the main table" \
  bash -c "ip -n $gw -6 route show table main | grep -Eq '^2001:db8:e77::/48 +encap bpf .*lwt_snat_xmit.* via 2001:db8:ff77::2 dev eth0 proto 165 .*mtu lock 1392'"
expect_ok "and the blackhole" bash -c "ip -n $gw -6 route show table main | grep -q '^blackhole 2001:db8:77::5 dev lo proto 165'"
expect_ok "and the IPv4 LWT route" \
  bash -c "ip -n $gw route show table main | grep -q '^10.77.9.0/24 *encap bpf xmit lwt_snat_xmit.* via 198.18.77.2 dev eth0 proto 165'"
expect_ok "nothing in table 421 (IPv4, IPv6)" \
  bash -c "[[ -z \$(ip -n $gw route show table 421 2>/dev/null) && -z \$(ip -n $gw -6 route show table 421 2>/dev/null) ]]"
expect_ok "no IPv6 rule: only the kernel's two" bash -c "[[ \$(ip -n $gw -6 rule show | cut -d: -f1 | tr '\n' ' ') == '0 32766 ' ]]"
expect_ok "no IPv4 rule: only the kernel's three" bash -c "[[ \$(ip -n $gw rule show | cut -d: -f1 | tr '\n' ' ') == '0 32766 32767 ' ]]"
expect_ok "no IPv6 route for the NPTv6 policy without --binat" bash -c "! ip -n $gw -6 route show table all proto 165 | grep -q 2001:db8:b77"
for dir in fwd in; do
  expect_ok "companion $dir policy for the IPv6 LAN" \
    bash -c "ip -n $gw xfrm policy show dir $dir | grep -q 'src 2001:db8:e77::/48 dst fd00:77:1::/64'"
done

# The LAN host's IPv6 flows reach the xfrm lookup translated; nothing leaves in cleartext.
acq=$(mktemp) leak=$(mktemp) lanseen=$(mktemp)
timeout 25 ip -n "$gw" xfrm monitor acquire >"$acq" &
T_PIDS+=("$!")
mon=$!
timeout 25 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode -Q in 'ip6 and not icmp6[0] >= 133' >"$leak" 2>"$leak.err" &
T_PIDS+=("$!")
timeout 25 ip netns exec "$lana" tcpdump -l -n -i a1 --immediate-mode -Q in \
  'ip6 and (udp port 40077 or tcp port 22 or (icmp6 and ip6[40] == 2))' >"$lanseen" 2>"$lanseen.err" &
T_PIDS+=("$!")
t_wait_subscribed "$mon"
t_wait_capturing "$leak.err"
t_wait_capturing "$lanseen.err"
t_in "$lana" ping -6 -c 1 -W 1 2001:db8:e77::1 >/dev/null 2>&1 || true
# One ACQUIRE per SA while its larval state lives: drop that state so the next flow asks again.
ip -n "$gw" xfrm state flush
t_in "$lana" timeout 5 python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('fd00:77:1::a', 40077))
s.sendto(b'x' * 64, ('2001:db8:e77::1', 7400))" || true
ip -n "$gw" xfrm state flush
# The LAN host's own port unreachable about a reply of that UDP flow (as the reply would reach it:
# the remote's port 7400 to the host's 40077; the kernel fills in the ICMPv6 checksum of a raw
# socket): translated in LWT xmit, it reaches the xfrm lookup from the policy's address.
t_icmp6_port_unreachable "$lana" fd00:77:1::a 2001:db8:e77::1
sleep 0.5
ip -n "$gw" xfrm state flush
# NPTv6 without --binat: not translated, and the leak guard drops the cleartext.
t_in "$lana" ping -6 -c 1 -W 1 2001:db8:b77::1 >/dev/null 2>&1 || true
sleep 1
flows=$(t_in "$gw" "$IPSNAT" flows 2>&1)
echo "$flows"
expect_ok "ipsnat flows shows the IPv6 UDP flow" \
  grep -Eq '^udp \[fd00:77:1::a\]:40077 -> \[2001:db8:e77::1\]:7400 as \[2001:db8:77::5\]:[0-9]+ nat66' <<<"$flows"
port=$( (grep -Eo 'as \[2001:db8:77::5\]:[0-9]+ nat66' <<<"$flows" || true) | head -1 | sed -E 's/.*\]:([0-9]+) nat66/\1/')
# A reply injected in cleartext on the uplink (the NAT66 address and port of the flow), a Packet
# Too Big quoting the flow's translated packet (the kernel fills in the ICMPv6 checksum of a raw
# socket), and an unsolicited connection from the policy's remote prefix straight at the LAN host
# (the kernel's fwd check of the companion refuses cleartext): none reaches it.
t_in "$wan" timeout 5 python3 -c "
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('2001:db8:e77::1', 7400))
s.sendto(b'reply', ('2001:db8:77::5', int('${port:-1}')))
vip, remote = socket.inet_pton(socket.AF_INET6, '2001:db8:77::5'), socket.inet_pton(socket.AF_INET6, '2001:db8:e77::1')
udp = struct.pack('!HHHH', int('${port:-1}'), 7400, 8 + 64, 0) + b'x' * 64
quote = struct.pack('!IHBB', 6 << 28, len(udp), 17, 64) + vip + remote + udp
ptb = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
ptb.bind(('2001:db8:e77::1', 0))
ptb.sendto(struct.pack('!BBHI', 2, 0, 0, 1280) + quote, ('2001:db8:77::5', 0))
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t.bind(('2001:db8:e77::1', 0))
t.settimeout(2)
try: t.connect(('fd00:77:1::a', 22))
except OSError: pass" || true
# The uplink's reverse hook has seen the reply and the Packet Too Big once pass-no-sa counts both
# (bounded: 10 s).
no_sa() { t_in "$gw" "$IPSNAT" status 2>&1 | grep -Eq 'pass-no-sa +([2-9]|[1-9][0-9])'; }
t_wait_for 10 no_sa || true
sleep 1
status=$(t_in "$gw" "$IPSNAT" status 2>&1)
echo "$status" | grep -E 'nat66|leak-guard-ipv6|no-sa|icmp-error' || true
for pid in "${T_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
cat "$acq"
expect_ok "an ACQUIRE for the translated ICMPv6 flow" grep -q 'sel src 2001:db8:77::5/128 dst 2001:db8:e77::1/128 proto ipv6-icmp' "$acq"
expect_ok "an ACQUIRE for the translated UDP flow" grep -q 'sel src 2001:db8:77::5/128 dst 2001:db8:e77::1/128 proto udp' "$acq"
# The reroute's flow carries no ICMPv6 type (the ACQUIRE says type 0 as for the ping): the error's
# ACQUIRE is the ICMPv6 one after the UDP flow's (the NPTv6 ping after it raises none).
expect_ok "an ACQUIRE for the LAN host's port unreachable about a reply, from the policy's address" \
  awk '/proto udp/ {udp = 1} udp && /sel src 2001:db8:77::5\/128 dst 2001:db8:e77::1\/128 proto ipv6-icmp/ {found = 1}
       END {exit !found}' "$acq"
expect_ok "no ACQUIRE names a LAN address" bash -c "! grep -q 'fd00:77:1' '$acq'"
expect_ok "nothing reached the WAN in cleartext" bash -c "! grep -Eq 'fd00:77:1|2001:db8:77::5|2001:db8:d77' '$leak'"
expect_ok "status counts xlate-nat66" grep -Eq 'xlate-nat66 +[1-9]' <<<"$status"
expect_ok "status counts the NPTv6 cleartext the guard dropped" grep -Eq 'drop-leak-guard-ipv6 +[1-9]' <<<"$status"
expect_ok "status counts the LAN host's error translated (xlate-icmp-error 1)" grep -Eq 'xlate-icmp-error +1( |$)' <<<"$status"
expect_ok "status counts the cleartext reply and Packet Too Big it did not translate (pass-no-sa 2)" \
  grep -Eq 'pass-no-sa +2( |$)' <<<"$status"
expect_ok "neither the cleartext reply, nor the cleartext Packet Too Big, nor the unsolicited packet reached the LAN host" \
  bash -c "! grep -q 'IP6' '$lanseen'"
((FAILS)) && cat "$leak" "$lanseen" >&2

# Too big for the SA's path: the route's PTB reaches the LAN host before the translation.
ptb=$(t_in "$lana" ping -6 -c 1 -W 2 -s 1400 -M do 2001:db8:e77::1 2>&1 || true)
expect_ok "Packet Too Big to the LAN host with the route's MTU ($ptb)" grep -Eqi 'too big.*mtu ?= ?1392' <<<"$ptb"

# With --binat the NPTv6 policy gets its route, and its flows reach the xfrm lookup mapped.
plan=$(t_in "$gw" "$IPSNAT" attach eth0 --binat 2>&1) || fail "attach --binat failed: $plan"
expect_ok "with --binat the plan names NPTv6" \
  grep -q '2001:db8:b77::/48: nptv6 fd00:77:1::/64 -> 2001:db8:d77:1::/64' <<<"$plan"
expect_ok "and its LWT route, in the main table" grep -q '^  route 2001:db8:b77::/48 table main .*encap bpf xmit lwt_snat_xmit$' <<<"$plan"
expect_ok "the kernel holds it in the main table" \
  bash -c "ip -n $gw -6 route show table main | grep -Eq '^2001:db8:b77::/48 +encap bpf .*lwt_snat_xmit.* via 2001:db8:ff77::2 dev eth0 proto 165'"
expect_ok "still no IPv6 rule" bash -c "! ip -n $gw -6 rule show | grep -q 'lookup 421'"
ip -n "$gw" xfrm state flush
timeout 10 ip -n "$gw" xfrm monitor acquire >"$acq" &
mon=$!
t_wait_subscribed "$mon"
t_in "$lana" ping -6 -c 1 -W 1 2001:db8:b77::1 >/dev/null 2>&1 || true
t_wait_acquire 0 "$acq" || true  # its ACQUIRE (at most 2 s)
kill "$mon" 2>/dev/null || true
wait "$mon" 2>/dev/null || true
cat "$acq"
expect_ok "an ACQUIRE for the NPTv6-mapped source" grep -Eq 'sel src 2001:db8:d77:1:[0-9a-f:]+/128 dst 2001:db8:b77::1/128' "$acq"
expect_ok "no ACQUIRE names a LAN address" bash -c "! grep -q 'fd00:77:1' '$acq'"
rm -f "$acq" "$leak" "$lanseen" "$leak.err" "$lanseen.err"

expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
after=$(snapshot)
expect_ok "detach removed the IPv6 routes, rule and companions" test "$before" == "$after"
[[ "$before" == "$after" ]] || diff <(echo "$before") <(echo "$after") >&2 || true
finish
