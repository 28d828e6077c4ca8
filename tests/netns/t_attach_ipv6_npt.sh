#!/bin/bash
# NPTv6 (RFC 6296) in route mode, dual stack: the LAN fd00:9:9:9::/64 is the IPv6 out-policy's
# 2001:db8:b:7::/64 towards 2001:db8:f00::/40 (then, with a /56 policy source, the /56's first
# /64; with a /120 policy source, smaller than the LAN, NAT66 with ports over its pool), and
# the IPv4 LAN 192.168.1.0/24 still becomes 10.20.30.2 beside it. The far side's echo server is the oracle: its kernel accepts only
# segments and datagrams whose TCP/UDP checksum is right, and it answers with the source it
# saw, to which the reply must find its way back (the reverse translation). The expected
# address is computed here from RFC 6296's arithmetic, not by ipsnat. Before attach and after
# detach the same lab shows the LAN's own address (so the test cannot pass vacuously).
# NPTv6 is stateless, so its reverse rule also lets the far side open connections to the LAN host
# at its translated address: only `attach --binat` translates IPv6. Without it the plan says so,
# the far side sees the LAN's own address as before attach (the kernel decides as it did), and a
# connection the far side opens to the translated address reaches nobody; with it, it reaches the
# LAN host.
# This kernel has no xfrm interfaces: the tunnel device is a veth given --mode route (the kind
# only selects the mode); the xfrm lookup after TC egress is the VM tier's (docs/datapath.md).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lan=$(t_netns lan) gw=$(t_netns gw) far=$(t_netns far)
for ns in "$lan" "$gw" "$far"; do
  t_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
ip link add lan1 netns "$lan" type veth peer name lan0 netns "$gw"
ip link add ipsec0 netns "$gw" type veth peer name tun1 netns "$far"
ip -n "$gw" addr add 192.168.1.1/24 dev lan0
ip -n "$gw" addr add fd00:9:9:9::1/64 dev lan0 nodad
ip -n "$lan" addr add 192.168.1.10/24 dev lan1
ip -n "$lan" addr add fd00:9:9:9::10/64 dev lan1 nodad
ip -n "$gw" addr add 198.18.0.1/30 dev ipsec0
ip -n "$gw" addr add 2001:db8:ff::1/64 dev ipsec0 nodad
ip -n "$far" addr add 198.18.0.2/30 dev tun1
ip -n "$far" addr add 2001:db8:ff::2/64 dev tun1 nodad
for l in "$lan lan1" "$gw lan0" "$gw ipsec0" "$far tun1"; do set -- $l; ip -n "$1" link set "$2" up; done
ip -n "$lan" route add default via 192.168.1.1
ip -n "$lan" -6 route add default via fd00:9:9:9::1
ip -n "$far" addr add 10.0.0.1/32 dev lo
ip -n "$far" addr add 2001:db8:f00::1/128 dev lo
ip -n "$gw" route add 10.0.0.0/8 via 198.18.0.2 dev ipsec0
ip -n "$gw" -6 route add 2001:db8:f00::/40 via 2001:db8:ff::2 dev ipsec0
# The far side routes the policies' sources back, and the IPv6 LAN too (so an untranslated
# packet is answered and shows its source).
ip -n "$far" route add 10.20.30.2/32 via 198.18.0.1
ip -n "$far" -6 route add 2001:db8:b:7::/64 via 2001:db8:ff::1 src 2001:db8:f00::1
ip -n "$far" -6 route add fd00:9:9:9::/64 via 2001:db8:ff::1
t_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out \
  tmpl src 198.18.0.1 dst 198.18.0.2 proto esp reqid 1 mode tunnel
ip -n "$gw" xfrm policy add src 2001:db8:b:7::/64 dst 2001:db8:f00::/40 dir out \
  tmpl src 2001:db8:ff::1 dst 2001:db8:ff::2 proto esp reqid 2 mode tunnel
t_wait_links_up "$lan" "$gw" "$far"

peer=$IPSNAT_SRC/tests/netns/echo_peer.py
# listening NS PROTO PORT: the server in NS is bound.
listening() { t_in "$1" ss -Hln"${2:0:1}" "sport = :$3" | grep -q .; }
# through PROTO ADDR PORT: what the far side saw (one client per server, started once it listens;
# bounded generously: a loaded machine takes seconds to start python).
through() {
  t_in "$far" timeout 60 python3 "$peer" server "$1" "$2" "$3" &
  local srv=$!
  t_wait_for 40 listening "$far" "$1" "$3" || echo "no server on $1 port $3" >&2
  t_in "$lan" timeout 40 python3 "$peer" client "$1" "$2" "$3" 3000 2>&1 | tail -1 || true
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null || true
}
# inward PORT: what the LAN host's TCP server saw when the far side (from 2001:db8:f00::1, inside
# the policy's remote selector) connected to the LAN host's translated address $want.
# nobody_inward PORT: inward where the connection must fail: the client gives up after 2 s and
# the server after 4 s (5 s and 10 s; where the path is open the answer takes milliseconds).
inward() {
  t_in "$lan" timeout 60 python3 "$peer" server tcp fd00:9:9:9::10 "$1" &
  local srv=$!
  t_wait_for 40 listening "$lan" tcp "$1" || echo "no server on tcp port $1" >&2
  t_in "$far" timeout 20 python3 "$peer" client tcp "$want" "$1" 3000 2>&1 | tail -1 || true
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null || true
}
nobody_inward() { ECHO_PEER_TIMEOUT=2 inward "$@"; }
# The LAN host's address as NPTv6 writes it: prefix replaced, the first interface-identifier word
# (0 here) plus sum(inside prefix) - sum(outside prefix) in one's complement (RFC 6296 3.2, 3.7).
# translated OUTSIDE_WORD3: the LAN host's address in the /64 2001:db8:b:OUTSIDE_WORD3::/64.
translated() {
  python3 -c '
import sys
def fold(s):
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return s
word3 = int(sys.argv[1], 16)
inside, outside = [0xfd00, 9, 9, 9], [0x2001, 0xdb8, 0xb, word3]
w = fold(0 + fold(sum(inside)) + (0xffff - fold(sum(outside))))
print("2001:db8:b:%x:%x::10" % (word3, 0 if w == 0xffff else w))' "$1"
}
want=$(translated 7)

# Neighbour discovery on every hop first (bounded), so the first datagram is not the one that waits.
t_in "$lan" ping -6 -c 3 -i 0.3 -W 2 2001:db8:f00::1 >/dev/null || true
out=$(through udp 2001:db8:f00::1 7200)
expect_ok "before attach the far side sees the LAN's own address ($out)" test "$out" == "fd00:9:9:9::10 intact"

plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "without --binat the plan says why IPv6 is not translated" \
  grep -q '^  translate policy [0-9]* 2001:db8:b:7::/64 -> 2001:db8:f00::/40: none (nptv6 is stateless both ways: --binat allows it)$' <<<"$plan"
out=$(through udp 2001:db8:f00::1 7210)
expect_ok "without --binat the far side sees the LAN's own address, as before attach ($out)" \
  test "$out" == "fd00:9:9:9::10 intact"
out=$(through udp 10.0.0.1 7211)
expect_ok "without --binat IPv4 beside it still arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"
out=$(nobody_inward 7212)
expect_ok "without --binat the far side's connection to $want reaches nobody ($out)" \
  test "$out" != "2001:db8:f00::1 intact"
status=$(t_in "$gw" "$IPSNAT" status 2>&1)
expect_ok "without --binat nothing is counted as xlate-npt6" bash -c '! grep -Eq "xlate-npt6(-reverse)? +[1-9]" <<<"$1"' _ "$status"
expect_ok "detach (without --binat)" t_in "$gw" "$IPSNAT" detach ipsec0

plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route --binat 2>&1) || fail "attach --binat failed: $plan"
echo "$plan"
expect_ok "the IPv6 LAN is inside" grep -q '^  inside fd00:9:9:9::/64 (lan0)$' <<<"$plan"
expect_ok "the plan names the IPv6 translation" \
  grep -q '^  translate policy [0-9]* 2001:db8:b:7::/64 -> 2001:db8:f00::/40: nptv6 fd00:9:9:9::/64 -> 2001:db8:b:7::/64$' <<<"$plan"
expect_ok "the plan names what the far side reaches" \
  grep -q '^  binat 2001:db8:b:7::/64 = fd00:9:9:9::/64 from 2001:db8:f00::/40 (policy [0-9]*)$' <<<"$plan"
expect_ok "the plan names the IPv4 translation" grep -q 'napt 192.168.1.0/24 -> 10.20.30.2$' <<<"$plan"

# From here until detach only the translated address is answered, so a ping answer proves it too.
ip -n "$far" -6 route del fd00:9:9:9::/64
out=$(through udp 2001:db8:f00::1 7201)
expect_ok "UDP over IPv6 arrives as $want, checksum intact, and its answer comes back ($out)" test "$out" == "$want intact"
out=$(through tcp 2001:db8:f00::1 7202)
expect_ok "TCP over IPv6 arrives as $want, checksum intact, and its answer comes back ($out)" test "$out" == "$want intact"
expect_ok "ping over IPv6 is answered through the translation" \
  t_in "$lan" ping -6 -c 2 -i 0.2 -W 2 2001:db8:f00::1
out=$(inward 7206)
expect_ok "with --binat the far side's connection to $want reaches the LAN host, which sees 2001:db8:f00::1 ($out)" \
  test "$out" == "2001:db8:f00::1 intact"
out=$(through udp 10.0.0.1 7203)
expect_ok "IPv4 beside it arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"
out=$(through tcp 10.0.0.1 7204)
expect_ok "IPv4 TCP beside it arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"

status=$(t_in "$gw" "$IPSNAT" status 2>&1)
expect_ok "status counts xlate-npt6" grep -Eq 'xlate-npt6 +[1-9]' <<<"$status"
expect_ok "status counts xlate-npt6-reverse" grep -Eq 'xlate-npt6-reverse +[1-9]' <<<"$status"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach ipsec0
ip -n "$far" -6 route add fd00:9:9:9::/64 via 2001:db8:ff::1
out=$(through udp 2001:db8:f00::1 7205)
expect_ok "after detach the far side sees the LAN's own address again ($out)" test "$out" == "fd00:9:9:9::10 intact"

# A policy source larger than the LAN (/56 for a /64): the LAN maps 1:1 onto the selector's first
# /64, 2001:db8:b:700::/64, and the far side reaches that block only.
ip -n "$gw" xfrm policy delete src 2001:db8:b:7::/64 dst 2001:db8:f00::/40 dir out
ip -n "$gw" xfrm policy add src 2001:db8:b:700::/56 dst 2001:db8:f00::/40 dir out \
  tmpl src 2001:db8:ff::1 dst 2001:db8:ff::2 proto esp reqid 2 mode tunnel
ip -n "$far" -6 route add 2001:db8:b:700::/56 via 2001:db8:ff::1 src 2001:db8:f00::1
plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route --binat 2>&1) || fail "attach --binat (/56 policy) failed: $plan"
echo "$plan"
expect_ok "the plan maps the /64 LAN onto the /56 selector's first /64" \
  grep -q '^  translate policy [0-9]* 2001:db8:b:700::/56 -> 2001:db8:f00::/40: nptv6 fd00:9:9:9::/64 -> 2001:db8:b:700::/64$' <<<"$plan"
ip -n "$far" -6 route del fd00:9:9:9::/64
want=$(translated 700)
out=$(through udp 2001:db8:f00::1 7220)
expect_ok "UDP over IPv6 arrives as $want, checksum intact, and its answer comes back ($out)" test "$out" == "$want intact"
out=$(through tcp 2001:db8:f00::1 7221)
expect_ok "TCP over IPv6 arrives as $want, checksum intact, and its answer comes back ($out)" test "$out" == "$want intact"
out=$(inward 7222)
expect_ok "the far side's connection to $want reaches the LAN host ($out)" test "$out" == "2001:db8:f00::1 intact"
want=${want/2001:db8:b:700:/2001:db8:b:701:}
out=$(nobody_inward 7223)
expect_ok "a connection to $want, in the selector's second /64, reaches nobody ($out)" \
  test "$out" != "2001:db8:f00::1 intact"
expect_ok "detach (/56 policy)" t_in "$gw" "$IPSNAT" detach ipsec0

# A policy source smaller than the LAN (/120 for a /64): no 1:1 map holds the LAN, so it takes the
# selector's pool after the Subnet-Router anycast one, 2001:db8:b:7::101-2001:db8:b:7::1ff, with
# ports (NAT66, stateful): plain attach, no --binat; the host keeps one address of the pool for its
# flows, answers come back, the far side opens nothing.
ip -n "$gw" xfrm policy delete src 2001:db8:b:700::/56 dst 2001:db8:f00::/40 dir out
ip -n "$gw" xfrm policy add src 2001:db8:b:7::100/120 dst 2001:db8:f00::/40 dir out \
  tmpl src 2001:db8:ff::1 dst 2001:db8:ff::2 proto esp reqid 2 mode tunnel
plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route 2>&1) || fail "attach (/120 policy) failed: $plan"
echo "$plan"
expect_ok "the plan takes the /64 LAN over the /120 selector's pool with ports" \
  grep -q '^  translate policy [0-9]* 2001:db8:b:7::100/120 -> 2001:db8:f00::/40: nat66 fd00:9:9:9::/64 -> 2001:db8:b:7::101-2001:db8:b:7::1ff (ports)$' <<<"$plan"
out=$(through udp 2001:db8:f00::1 7230)
want=${out% intact}
expect_ok "UDP over IPv6 arrives from an address of the pool, checksum intact, and its answer comes back ($out)" \
  bash -c '[[ $1 =~ ^2001:db8:b:7::1[0-9a-f]{2}\ intact$ && $1 != "2001:db8:b:7::100 intact" ]]' _ "$out"
out=$(through tcp 2001:db8:f00::1 7231)
expect_ok "TCP over IPv6 arrives as $want, checksum intact, and its answer comes back ($out)" test "$out" == "$want intact"
out=$(nobody_inward 7232)
expect_ok "the far side's connection to $want reaches nobody ($out)" test "$out" != "2001:db8:f00::1 intact"
status=$(t_in "$gw" "$IPSNAT" status 2>&1)
expect_ok "status counts xlate-nat66" grep -Eq 'xlate-nat66 +[1-9]' <<<"$status"
expect_ok "detach (/120 policy)" t_in "$gw" "$IPSNAT" detach ipsec0
finish
