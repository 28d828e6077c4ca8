#!/bin/bash
# NAT66 with ports in route mode, dual stack: the IPv6 out-policy's source is one address,
# 2001:db8:66::5 (strongSwan's virtual IPv6, local on the gateway as strongSwan installs it),
# towards 2001:db8:e66::/48; the LAN fd00:66:1::/64 (two hosts, lana and lanb, on a bridge) leaves
# as that address with ports, and the IPv4 LAN 172.16.66.0/24 still becomes 10.66.0.2 beside it.
# No --binat: NAT66 is stateful, only replies come back. The far side's echo server is the oracle:
# its kernel accepts only segments and datagrams with a right checksum, and it answers with the
# source it saw, to which the reply must find its way back. Before attach the same lab shows the
# LAN's own address (so the test cannot pass vacuously).
# This kernel has no xfrm interfaces: the tunnel device is a veth given --mode route; the xfrm
# lookup after TC egress is the VM tier's (docs/datapath.md).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lana=$(t_netns lana) lanb=$(t_netns lanb) gw=$(t_netns gw) far=$(t_netns far)
for ns in "$lana" "$lanb" "$gw" "$far"; do
  t_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
ip -n "$gw" link add br0 type bridge
ip link add a1 netns "$lana" type veth peer name a0 netns "$gw"
ip link add b1 netns "$lanb" type veth peer name b0 netns "$gw"
ip -n "$gw" link set a0 master br0
ip -n "$gw" link set b0 master br0
ip link add ipsec0 netns "$gw" type veth peer name tun1 netns "$far"
ip -n "$gw" addr add 172.16.66.1/24 dev br0
ip -n "$gw" addr add fd00:66:1::1/64 dev br0 nodad
ip -n "$lana" addr add 172.16.66.10/24 dev a1
ip -n "$lana" addr add fd00:66:1::a/64 dev a1 nodad
ip -n "$lanb" addr add fd00:66:1::b/64 dev b1 nodad
ip -n "$gw" addr add 198.18.66.1/30 dev ipsec0
ip -n "$gw" addr add 2001:db8:ff66::1/64 dev ipsec0 nodad
ip -n "$gw" addr add 2001:db8:66::5/128 dev lo
ip -n "$far" addr add 198.18.66.2/30 dev tun1
ip -n "$far" addr add 2001:db8:ff66::2/64 dev tun1 nodad
for l in "$lana a1" "$lanb b1" "$gw a0" "$gw b0" "$gw br0" "$gw ipsec0" "$far tun1"; do
  set -- $l
  ip -n "$1" link set "$2" up
done
ip -n "$lana" route add default via 172.16.66.1
ip -n "$lana" -6 route add default via fd00:66:1::1
ip -n "$lanb" -6 route add default via fd00:66:1::1
ip -n "$far" addr add 10.66.9.1/32 dev lo
ip -n "$far" addr add 2001:db8:e66::1/128 dev lo
ip -n "$gw" route add 10.66.9.0/24 via 198.18.66.2 dev ipsec0
ip -n "$gw" -6 route add 2001:db8:e66::/48 via 2001:db8:ff66::2 dev ipsec0
# The far side routes the policies' sources back, and the IPv6 LAN too (so an untranslated packet
# is answered and shows its source, until it is removed below).
ip -n "$far" route add 10.66.0.2/32 via 198.18.66.1
ip -n "$far" -6 route add 2001:db8:66::5/128 via 2001:db8:ff66::1 src 2001:db8:e66::1
ip -n "$far" -6 route add fd00:66:1::/64 via 2001:db8:ff66::1
t_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$gw" xfrm policy add src 10.66.0.2/32 dst 10.66.9.0/24 dir out \
  tmpl src 198.18.66.1 dst 198.18.66.2 proto esp reqid 1 mode tunnel
ip -n "$gw" xfrm policy add src 2001:db8:66::5/128 dst 2001:db8:e66::/48 dir out \
  tmpl src 2001:db8:ff66::1 dst 2001:db8:ff66::2 proto esp reqid 2 mode tunnel
t_wait_links_up "$lana" "$lanb" "$gw" "$far"

peer=$IPSNAT_SRC/tests/netns/echo_peer.py
vip=2001:db8:66::5 remote=2001:db8:e66::1
listening() { t_in "$1" ss -Hln"${2:0:1}" "sport = :$3" | grep -q .; }
# through NS PROTO ADDR PORT [SPORT]: what the far side saw of NS's client (bounded generously: a
# loaded machine takes seconds to start python). 1000 bytes: a datagram the sender fragments is
# not translated by NAT66 (docs/datapath.md).
through() {
  local ns=$1
  shift
  t_in "$far" timeout 60 python3 "$peer" server "$1" "$2" "$3" &
  local srv=$!
  t_wait_for 40 listening "$far" "$1" "$3" || echo "no server on $1 port $3" >&2
  t_in "$ns" timeout 40 python3 "$peer" client "$1" "$2" "$3" 1000 ${4:-} 2>&1 | tail -1 || true
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null || true
}
# inward PORT: what lana's TCP server saw when the far side connected to the NAT66 address at PORT.
inward() {
  t_in "$lana" timeout 60 python3 "$peer" server tcp fd00:66:1::a "$1" &
  local srv=$!
  t_wait_for 40 listening "$lana" tcp "$1" || echo "no server on tcp port $1" >&2
  t_in "$far" timeout 20 python3 "$peer" client tcp "$vip" "$1" 3000 2>&1 | tail -1 || true
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null || true
}

# Neighbour discovery on every hop first (bounded), so the first datagram is not the one that waits.
t_in "$lana" ping -6 -c 3 -i 0.3 -W 2 "$remote" >/dev/null || true
t_in "$lanb" ping -6 -c 3 -i 0.3 -W 2 "$remote" >/dev/null || true
out=$(through "$lana" udp "$remote" 7300)
expect_ok "before attach the far side sees the LAN's own address ($out)" test "$out" == "fd00:66:1::a intact"

plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the plan names the NAT66 translation" \
  grep -Eq "^  translate policy [0-9]+ 2001:db8:66::5(/128)? -> 2001:db8:e66::/48: nat66 fd00:66:1::/64 -> $vip \(ports\)$" <<<"$plan"
expect_ok "the plan names the IPv4 translation" grep -q 'napt 172.16.66.0/24 -> 10.66.0.2$' <<<"$plan"

# From here until detach only the NAT66 address is answered.
ip -n "$far" -6 route del fd00:66:1::/64
out=$(through "$lana" udp "$remote" 7301)
expect_ok "UDP over IPv6 arrives as $vip, checksum intact, and its answer comes back ($out)" test "$out" == "$vip intact"
out=$(through "$lanb" tcp "$remote" 7302)
expect_ok "TCP over IPv6 from the other host arrives as $vip, intact, answered ($out)" test "$out" == "$vip intact"
expect_ok "ping over IPv6 is answered through the translation" t_in "$lana" ping -6 -c 2 -i 0.2 -W 2 "$remote"
# Both LAN hosts with one source port towards one server: two NAT ports, each answer to its host.
outa=$(through "$lana" udp "$remote" 7303 40066)
outb=$(through "$lanb" udp "$remote" 7303 40066)
expect_ok "host a's datagram from port 40066 is answered ($outa)" test "$outa" == "$vip intact"
expect_ok "host b's datagram from port 40066 is answered ($outb)" test "$outb" == "$vip intact"
flows=$(t_in "$gw" "$IPSNAT" flows --proto udp --port 40066 2>&1)
echo "$flows"
expect_ok "ipsnat flows shows host a's IPv6 flow" \
  grep -Eq "^udp \[fd00:66:1::a\]:40066 -> \[$remote\]:7303 as \[$vip\]:[0-9]+ nat66 replied" <<<"$flows"
expect_ok "ipsnat flows shows host b's IPv6 flow" \
  grep -Eq "^udp \[fd00:66:1::b\]:40066 -> \[$remote\]:7303 as \[$vip\]:[0-9]+ nat66 replied" <<<"$flows"
ports=$( (grep -Eo "as \[$vip\]:[0-9]+" <<<"$flows" || true) | sort -u | wc -l)
expect_ok "the two flows have two NAT ports ($ports)" test "$ports" -eq 2

# ipsnat status counts the NAT66 flows (JSON and text): the NAT66 address with its bindings and its
# busiest remote endpoint (the two datagrams from port 40066 to one server: two bindings toward
# it), ipsnat_ct6's flows by protocol. The oracle is the kernel's ipsnat_ct6 as bpftool dumps it:
# REPLY entries (dir 1) by their destination (the NAT address) and by remote endpoint. Read side
# by side; a flow expiring between the two reads is read again (at most 3 times).
ct6_oracle() {
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_ct6" | python3 -c '
import collections, ipaddress, json, sys
bindings, endpoints, flows = collections.Counter(), collections.Counter(), collections.Counter()
for e in json.load(sys.stdin):
    k = bytes(int(b, 16) for b in e["key"])
    if k[37] == 0:
        flows[{6: "tcp", 17: "udp", 58: "icmpv6"}.get(k[36], "other")] += 1
        continue
    nat = ipaddress.IPv6Address(k[16:32]).compressed
    bindings[nat] += 1
    endpoints[(nat, k[0:16], k[32:34], k[36])] += 1
busiest = {n: max(c for (a, *_), c in endpoints.items() if a == n) for n in bindings}
print(" ".join(sorted("%s=%d/%d" % (n, bindings[n], busiest[n]) for n in bindings)), sorted(flows.items()))'
}
status_v6() {
  t_in "$gw" "$IPSNAT" -j status | t_json '" ".join(sorted("%s=%d/%d" % (a["nat_address"], a["bindings"], a["busiest_endpoint"]) for a in s["limits"]["nat_ports"]["by_address"] if ":" in a["nat_address"])), sorted(s["limits"].get("conntrack6", {}).get("flows_by_proto", {}).items())'
}
for _ in 1 2 3; do
  want=$(ct6_oracle) got=$(status_v6 2>&1)
  [[ $got == "$want" ]] && break
done
echo "status: $got; ipsnat_ct6: $want"
expect_ok "status -j: the NAT66 address's bindings/busiest endpoint and the IPv6 flows by protocol are ipsnat_ct6's ($got == $want)" \
  test "$got" == "$want"
expect_ok "status -j: $vip holds the two bindings toward [$remote]:7303 as its busiest endpoint ($got)" \
  grep -Eq "^$vip=[0-9]+/2 " <<<"$got"
text=$(t_in "$gw" "$IPSNAT" status 2>&1)
expect_ok "status: a line for $vip with its busiest remote endpoint" \
  grep -Eq "^    $vip: [0-9]+ bindings, busiest remote endpoint 2/64512 ports$" <<<"$text"
expect_ok "status: the IPv6 table's line counts the UDP flows" \
  grep -Eq "^  conntrack6: [0-9]+/65536 entries \([0-9]+ of 32768 flows: .*[0-9]+ udp" <<<"$text"
out=$(through "$lana" udp 10.66.9.1 7304)
expect_ok "IPv4 beside it arrives as 10.66.0.2 ($out)" test "$out" == "10.66.0.2 intact"

# The far side cannot open a connection to the LAN host through the NAT66 address (the peers
# give up after 2 s: where the path is open the answer takes milliseconds).
out=$(ECHO_PEER_TIMEOUT=2 inward 7305)
expect_ok "the far side's connection to $vip port 7305 reaches no LAN host ($out)" test "$out" != "$remote intact"

# GC: a connection the far side refuses (RST) expires after the reset timeout (10 s by default).
t_in "$lana" timeout 10 python3 -c "
import socket
try: socket.create_connection(('$remote', 7399), timeout=5)
except OSError: pass" || true
refused=$(t_in "$gw" "$IPSNAT" flows --port 7399 2>&1)
echo "$refused"
expect_ok "the refused IPv6 connection is tracked as reset" \
  grep -Eq "^tcp \[fd00:66:1::a\]:[0-9]+ -> \[$remote\]:7399 as \[$vip\]:[0-9]+ nat66 reset" <<<"$refused"
sleep 11
# The host process sweeps too (in every mode), so it may have expired the flow before flows --gc.
swept=$(t_in "$gw" "$IPSNAT" flows --port 7399 2>&1)
gc=$(t_in "$gw" "$IPSNAT" flows --gc --port 7399 2>&1)
echo "$gc"
expect_ok "the GC expires it (the host's sweep or flows --gc)" \
  bash -c 'grep -Eq "^gc: [1-9][0-9]* of [0-9]+ flows expired" <<<"$2" || ! grep -q 7399 <<<"$1"' _ "$swept" "$gc"
expect_ok "and it is gone" bash -c '! grep -q "7399" <<<"$(sed 1d <<<"$1")"' _ "$gc"
live=$(t_in "$gw" "$IPSNAT" flows --port 40066 2>&1)
echo "$live"
expect_ok "live flows stay" grep -q "nat66 replied" <<<"$live"

status=$(t_in "$gw" "$IPSNAT" status 2>&1)
expect_ok "status counts xlate-nat66" grep -Eq 'xlate-nat66 +[1-9]' <<<"$status"
expect_ok "status counts xlate-nat66-reverse" grep -Eq 'xlate-nat66-reverse +[1-9]' <<<"$status"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach ipsec0
ip -n "$far" -6 route add fd00:66:1::/64 via 2001:db8:ff66::1
out=$(through "$lana" udp "$remote" 7306)
expect_ok "after detach the far side sees the LAN's own address again ($out)" test "$out" == "fd00:66:1::a intact"
finish
