#!/bin/bash
# The leak guard on this kernel after `ipsnat attach eth0` (policy mode), captured on the next hop:
# - dual stack: an IPv6 out-policy from a prefix covers 2001:db8:10::/48; its translation would be
#   NPTv6, which needs --binat, so without it ipsnat translates none of its IPv6 and the LAN's
#   cleartext IPv6 to it is dropped (drop-leak-guard-ipv6 in `ipsnat status`) while uncovered IPv6
#   still flows (a one-address source is NAT66 in policy mode: t_attach_ipv6_policy.sh);
# - IKE ports are exempt only for the gateway's own packets: a routed host's UDP from port 500 to
#   a covered destination is dropped, the gateway's own UDP 500 and its IKE-over-TCP (RFC 8229,
#   ephemeral source port to 4500) leave.
# - the follower keeps the IPv6 coverage current (a policy added and deleted after attach).
# Before attach the same lab leaks (checked first), so the test cannot pass vacuously.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_tmpdir

t_gateway_netns
t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default
for ns in "$lan" "$gw" "$wan"; do
  t_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
t_in "$lan" sysctl -qw net.ipv6.conf.lan1.disable_ipv6=0
t_in "$gw" sysctl -qw net.ipv6.conf.lan0.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 net.ipv6.conf.all.forwarding=1
t_in "$wan" sysctl -qw net.ipv6.conf.eth1.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0
ip -n "$lan" addr add fd00:71::10/64 dev lan1 nodad
ip -n "$lan" -6 route add default via fd00:71::1
ip -n "$gw" addr add fd00:71::1/64 dev lan0 nodad
ip -n "$gw" addr add 2001:db8:ff::2/64 dev eth0 nodad
ip -n "$gw" -6 route add default via 2001:db8:ff::1
ip -n "$wan" addr add 2001:db8:ff::1/64 dev eth1 nodad
ip -n "$wan" addr add 2001:db8:10::1/128 dev lo
ip -n "$wan" addr add 2001:db8:77::1/128 dev lo
ip -n "$wan" -6 route add fd00:71::/64 via 2001:db8:ff::2
# A subnet routed behind the LAN host: not on any of the gateway's devices, so never translated.
ip -n "$lan" addr add 172.16.5.9/32 dev lo
ip -n "$gw" route add 172.16.5.0/24 via 192.168.1.10
ip -n "$wan" route add 172.16.5.0/24 via 200.2.2.2

t_seed_out_policy "$gw"
ip -n "$gw" xfrm policy add src fd00:72::/64 dst 2001:db8:10::/48 dir out priority 379519 \
  tmpl src 2001:db8:ff::2 dst 2001:db8:ff::1 proto esp reqid 2 mode tunnel
t_wait_links_up "$lan" "$gw" "$wan"

# udp NS SRC SPORT DST DPORT: three datagrams with that source port (bounded: no answer awaited).
udp() {
  t_in "$1" python3 -c '
import socket, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, sport))
for i in range(3):
    s.sendto(b"guard-probe", (dst, dport))
' "$2" "$3" "$4" "$5"
}
# tcp_syn NS DST DPORT: one connection attempt from an ephemeral port (SYNs for 2 s; the outer
# bound leaves python room to start on a loaded machine).
tcp_syn() {
  t_in "$1" timeout 10 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    pass
' "$2" "$3" || true
}
# capture NAME FILTER: tcpdump on the WAN side of the uplink into $T_TMP/NAME (for 60 s at most),
# capturing when this returns.
capture() {
  timeout 60 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode "$2" >"$T_TMP/$1" 2>"$T_TMP/$1.err" &
  T_PIDS+=("$!")
  t_wait_capturing "$T_TMP/$1.err"
}
# traffic: everything the guard is asked about, from the LAN and from the gateway itself.
traffic() {
  ip netns exec "$lan" ping -6 -c 3 -i 0.2 -W 1 2001:db8:10::1 >/dev/null 2>&1 || true
  udp "$lan" fd00:71::10 40000 2001:db8:10::1 53
  udp "$lan" 172.16.5.9 500 10.0.0.1 500
  udp "$gw" 200.2.2.2 500 10.0.0.1 500
  tcp_syn "$gw" 10.0.0.1 4500
}
stop_captures() {
  sleep 1
  t_stop_background
}
count() { grep -c "$2" "$T_TMP/$1" || true; }

capture before-v6 'ip6 and dst net 2001:db8:10::/48'
capture before-v4 'ip and dst host 10.0.0.1'
traffic
stop_captures
expect_ok "without ipsnat the lab leaks IPv6 to the covered prefix" test "$(count before-v6 'IP6')" -ge 6
expect_ok "without ipsnat the routed host's UDP from port 500 leaks" test "$(count before-v4 '172.16.5.9.500 >')" -ge 3

expect_ok "attach succeeds" t_in "$gw" "$IPSNAT" attach eth0

capture after-v6 'ip6 and dst net 2001:db8:10::/48'
capture after-v4 'ip and dst host 10.0.0.1'
capture after-other 'ip6 and host 2001:db8:77::1'
traffic
expect_ok "uncovered IPv6 still flows (ping answered)" \
  ip netns exec "$lan" ping -6 -c 2 -i 0.2 -W 2 2001:db8:77::1
stop_captures
expect_ok "no cleartext IPv6 to the covered prefix" test "$(count after-v6 'IP6')" == 0
expect_ok "the routed host's UDP from port 500 is dropped" test "$(count after-v4 '172.16.5.9.500 >')" == 0
expect_ok "the gateway's own UDP 500 leaves" test "$(count after-v4 '200.2.2.2.500 > 10.0.0.1.500')" -ge 3
expect_ok "the gateway's own IKE over TCP (ephemeral port to 4500) leaves" \
  test "$(grep -c '200.2.2.2.[0-9]* > 10.0.0.1.4500: Flags \[S\]' "$T_TMP/after-v4" || true)" -ge 1
status=$(t_in "$gw" "$IPSNAT" status)
expect_ok "status names drop-leak-guard-ipv6" grep -Eq 'drop-leak-guard-ipv6 +[1-9]' <<<"$status"
((FAILS)) && { for f in "$T_TMP"/*; do echo "== $f"; head -20 "$f"; done; echo "$status"; } >&2

# The follower started by attach keeps spd_cover6 current: an IPv6 policy added later covers its
# prefix, and its deletion uncovers it again.
cover6_entries() { bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/spd_cover6" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
wait_entries() { for _ in $(seq 100); do [[ $(cover6_entries) == "$1" ]] && return 0; sleep 0.1; done; return 1; }
ip -n "$wan" addr add 2001:db8:30::1/128 dev lo
expect_ok "before the policy, 2001:db8:30::1 answers" ip netns exec "$lan" ping -6 -c 1 -W 2 2001:db8:30::1
ip -n "$gw" xfrm policy add src fd00:72::/64 dst 2001:db8:30::/48 dir out priority 379519 \
  tmpl src 2001:db8:ff::2 dst 2001:db8:ff::1 proto esp reqid 3 mode tunnel
expect_ok "the follower adds the later IPv6 policy's prefix" wait_entries 2
capture later-v6 'ip6 and dst net 2001:db8:30::/48'
ip netns exec "$lan" ping -6 -c 3 -i 0.2 -W 1 2001:db8:30::1 >/dev/null 2>&1 || true
stop_captures
expect_ok "no cleartext IPv6 to the later policy's prefix" test "$(count later-v6 'IP6')" == 0
ip -n "$gw" xfrm policy del src fd00:72::/64 dst 2001:db8:30::/48 dir out
expect_ok "the follower removes it with the policy" wait_entries 1
expect_ok "and 2001:db8:30::1 answers again" ip netns exec "$lan" ping -6 -c 1 -W 2 2001:db8:30::1

expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
finish
