#!/bin/bash
# The seed's whole gateway in one command: `ipsnat attach eth0 --masquerade` in policy mode and
# no netfilter rule at all (`nft list ruleset` is empty). The "internet" host sees only the
# uplink's address for UDP, TCP and ping, and its replies reach the LAN host (it has no route to
# the LAN); the company flow's ACQUIRE (no ESP here: the kernel's oracle) names the NAT address;
# the gateway's own IKE-port and other traffic leave untouched; an unsolicited SYN to the
# uplink's address never reaches the LAN; `ipsnat flows` shows the masqueraded flows; a new
# uplink address is followed; detach ends the masquerade.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_tmpdir

t_policy_gateway
ip -n "$wan" addr add 198.51.100.7/32 dev lo  # an "internet" host no policy covers
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

expect_ok "no netfilter rule in the gateway" test -z "$(ip netns exec "$gw" nft list ruleset 2>&1)"
plan=$(t_in "$gw" "$IPSNAT" attach eth0 --masquerade 2>&1) || true
echo "$plan"
expect_ok "attach --masquerade prints the masquerade" \
  grep -qE "^  masquerade 192.168.1.0/24 -> 200.2.2.2 \(the address of eth0\) ports [0-9]+-65535$" <<<"$plan"
expect_ok "still no netfilter rule after attach" test -z "$(ip netns exec "$gw" nft list ruleset 2>&1)"

# Everything the internet side receives from the gateway, for the first part.
wire=$T_TMP/wire
timeout 120 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode 'ip and not arp' >"$wire" 2>"$wire.err" &
dump=$!
T_PIDS+=("$dump")
t_wait_capturing "$wire.err"

listening() {  # PROTO PORT: the internet host's echo server is bound
  [[ -n $(ip netns exec "$wan" ss -Hln"${1:0:1}" "sport = :$2") ]]
}
echo_client() {  # PROTO PORT SIZE [NS]: the source the internet host saw, and whether the data was intact
  ip netns exec "$wan" timeout 15 python3 "$peer" server "$1" 198.51.100.7 "$2" &
  local srv=$!
  t_wait_for 5 listening "$1" "$2" || true
  ip netns exec "${4:-$lan}" timeout 8 python3 "$peer" client "$1" 198.51.100.7 "$2" "$3" 2>&1 || true
  wait "$srv" 2>/dev/null || true
}
out=$(echo_client udp 5001 1200)
expect_ok "UDP: the internet host saw the uplink address, the reply came back ($out)" test "$out" == "200.2.2.2 intact"
out=$(echo_client tcp 5002 200000)
expect_ok "TCP: the internet host saw the uplink address, 200 kB both ways ($out)" test "$out" == "200.2.2.2 intact"
expect_ok "ping: echo replies reach the LAN host" ip netns exec "$lan" ping -c 2 -W 2 198.51.100.7

# The gateway's own traffic: IKE from port 500 and an ordinary TCP connection of its own.
ip netns exec "$gw" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("200.2.2.2", 500))
s.sendto(b"ike", ("198.51.100.7", 500))
s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s2.bind(("200.2.2.2", 4500))
s2.sendto(b"natt", ("198.51.100.7", 4500))'
out=$(echo_client tcp 5003 1000 "$gw")
expect_ok "the gateway's own TCP connection works as itself ($out)" test "$out" == "200.2.2.2 intact"
sleep 1
kill "$dump" 2>/dev/null || true
wait "$dump" 2>/dev/null || true
expect_ok "the internet side saw no LAN address" bash -c "! grep -q '192\.168\.1\.' '$wire'"
expect_ok "the internet side saw UDP, TCP and ICMP from 200.2.2.2" bash -c \
  "grep -q '200.2.2.2.[0-9]* > 198.51.100.7.5001: UDP' '$wire' && grep -q '200.2.2.2.[0-9]* > 198.51.100.7.5002: Flags \[S\]' '$wire' &&
   grep -q '200.2.2.2 > 198.51.100.7: ICMP echo request' '$wire'"
expect_ok "the gateway's IKE left from ports 500 and 4500, untouched" bash -c \
  "grep -q '200.2.2.2.500 > 198.51.100.7.500: ' '$wire' && grep -q '200.2.2.2.4500 > 198.51.100.7.4500: ' '$wire'"
((FAILS)) && cat "$wire" >&2

flows=$(t_in "$gw" "$IPSNAT" flows 2>&1 || true)
expect_ok "ipsnat flows shows the masqueraded flows" \
  grep -qE "^tcp 192.168.1.10:[0-9]+ -> 198.51.100.7:5002 as 200.2.2.2:[0-9]+ masquerade " <<<"$flows"
status=$(t_in "$gw" "$IPSNAT" status 2>&1 || true)
expect_ok "ipsnat status counts xlate-masquerade" grep -qE "^  xlate-masquerade +[1-9]" <<<"$status"
((FAILS)) && echo "$flows" "$status" >&2

# The company flow: translated to the policy's address before the xfrm lookup (not masqueraded).
acq=$T_TMP/acq
timeout 6 ip -n "$gw" xfrm monitor acquire >"$acq" &
mon=$!
t_wait_subscribed "$mon"
# One datagram (no answer comes: no SA), then its ACQUIRE (at most 2 s).
ECHO_PEER_TIMEOUT=0.2 ip netns exec "$lan" python3 "$peer" client udp 10.0.0.1 5000 64 >/dev/null 2>&1 || true
t_wait_acquire 0 "$acq" || true
kill "$mon" 2>/dev/null || true
wait "$mon" 2>/dev/null || true
expect_ok "the company flow's ACQUIRE names the NAT address" grep -q "sel src 10.20.30.2/32 dst 10.0.0.1/32 proto udp" "$acq"
expect_ok "no ACQUIRE names the LAN host or the uplink address" bash -c "! grep -q 'sel src \(192.168.1.10\|200.2.2.2\)' '$acq'"

# No door: unsolicited SYNs to the uplink address (a masquerade port and another) stay out of the LAN.
port=$(grep -oE "as 200.2.2.2:[0-9]+ masquerade" <<<"$flows" | head -1 | grep -oE "[0-9]+ masquerade" | cut -d' ' -f1 || true)
lanseen=$T_TMP/lan
# SYNs and this probe's UDP only: late segments of the flows above are replies, not unsolicited.
timeout 8 ip netns exec "$lan" tcpdump -l -n -i lan1 --immediate-mode \
  'src host 198.51.100.7 and ((tcp[tcpflags] & (tcp-syn|tcp-ack)) == tcp-syn or (udp and src port 4242))' >"$lanseen" 2>"$lanseen.err" &
ldump=$!
t_wait_capturing "$lanseen.err"
for p in "${port:-62000}" 22 5002; do
  ip netns exec "$wan" timeout 2 bash -c "echo > /dev/tcp/200.2.2.2/$p" 2>/dev/null || true
done
ip netns exec "$wan" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.7", 4242))
for port in (5001, 61000, 65535):
    s.sendto(b"x", ("200.2.2.2", port))' || true
sleep 1
kill "$ldump" 2>/dev/null || true
wait "$ldump" 2>/dev/null || true
expect_ok "unsolicited packets to the uplink address never reached the LAN" bash -c "! grep -q 'IP ' '$lanseen'"
((FAILS)) && cat -A "$lanseen" >&2

# A new uplink address (the old one removed): followed on the host process's re-plan.
t_in "$gw" sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
ip -n "$gw" addr add 200.2.2.3/24 dev eth0
ip -n "$gw" addr del 200.2.2.2/24 dev eth0
ip -n "$gw" route replace default via 200.2.2.1

followed() { [[ $(echo_client udp $((5100 + RANDOM % 800)) 100) == "200.2.2.3 intact" ]]; }
expect_ok "a new flow leaves as the uplink's new address" t_wait_for 10 followed

expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0
# (The peers give up after 2 s: where the path is open the answer takes milliseconds.)
out=$(ECHO_PEER_TIMEOUT=2 echo_client udp 5005 100)
expect_ok "after detach nothing is masqueraded: no reply reaches the LAN ($out)" test "$out" != "200.2.2.3 intact"
expect_ok "no netfilter rule after detach" test -z "$(ip netns exec "$gw" nft list ruleset 2>&1)"
finish
