#!/bin/bash
# Inside prefixes chosen by attach alone (no --inside): a route-mode tunnel device next to its
# uplink (which carries the SAs' outer address and the default route), a LAN on a bridge and a
# second LAN. Both LANs are translated to the policy's address; the uplink's prefix is not
# inside, so a host on the uplink's segment routed through the gateway reaches the far side with
# its own address. The far side's echo server is the oracle (it answers with the source it saw).
# This kernel has no xfrm interfaces: the tunnel device is a veth given --mode route (the kind
# only selects the mode).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

isp=$(t_netns isp) lan=$(t_netns lan) lan2=$(t_netns lan2) gw=$(t_netns gw) far=$(t_netns far)
for ns in "$isp" "$lan" "$lan2" "$gw" "$far"; do
  t_in "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
done
# The uplink first: the lowest ifindex, where the old "other devices' prefixes" took its LAN from.
ip link add eth0 netns "$gw" type veth peer name eth1 netns "$isp"
ip -n "$gw" addr add 200.2.2.2/24 dev eth0
ip -n "$isp" addr add 200.2.2.1/24 dev eth1
ip -n "$gw" link set eth0 up
ip -n "$isp" link set eth1 up
ip -n "$gw" route add default via 200.2.2.1
ip -n "$isp" route add 10.0.0.0/8 via 200.2.2.2
# LAN 1 on a bridge, LAN 2 on a plain device.
ip -n "$gw" link add br0 type bridge
ip link add lan1 netns "$lan" type veth peer name port1 netns "$gw"
ip -n "$gw" link set port1 master br0
ip -n "$gw" addr add 192.168.1.1/24 dev br0
for d in br0 port1; do ip -n "$gw" link set "$d" up; done
ip -n "$lan" addr add 192.168.1.10/24 dev lan1
ip -n "$lan" link set lan1 up
ip -n "$lan" route add default via 192.168.1.1
ip link add lan1 netns "$lan2" type veth peer name lan2 netns "$gw"
ip -n "$gw" addr add 172.16.9.1/20 dev lan2
ip -n "$gw" link set lan2 up
ip -n "$lan2" addr add 172.16.9.10/20 dev lan1
ip -n "$lan2" link set lan1 up
ip -n "$lan2" route add default via 172.16.9.1
# The tunnel device and the far side behind it (remote network on the far side's lo).
ip link add ipsec0 netns "$gw" type veth peer name tun1 netns "$far"
ip -n "$gw" addr add 198.18.0.1/30 dev ipsec0
ip -n "$far" addr add 198.18.0.2/30 dev tun1
ip -n "$gw" link set ipsec0 up
ip -n "$far" link set tun1 up
ip -n "$far" addr add 10.0.0.1/32 dev lo
ip -n "$gw" route add 10.0.0.0/8 via 198.18.0.2 dev ipsec0
for back in 10.20.30.2/32 200.2.2.0/24; do ip -n "$far" route add "$back" via 198.18.0.1; done
t_in "$gw" sysctl -qw net.ipv4.ip_forward=1
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel

plan=$(t_in "$gw" "$IPSNAT" attach ipsec0 --mode route 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the bridge's LAN is inside" grep -q '^  inside 192.168.1.0/24 (br0)$' <<<"$plan"
expect_ok "the second LAN is inside" grep -q '^  inside 172.16.0.0/20 (lan2)$' <<<"$plan"
expect_ok "the uplink's prefix is not inside, with its reason" \
  grep -q "^  not inside 200.2.2.0/24 (eth0): the uplink: carries the SAs' outer address 200.2.2.2$" <<<"$plan"
expect_ok "the tunnel device's prefix is not inside" grep -q '^  not inside 198.18.0.0/30 (ipsec0): the tunnel device$' <<<"$plan"
expect_ok "NAPT from both LANs" grep -q 'napt 192.168.1.0/24, 172.16.0.0/20 -> 10.20.30.2$' <<<"$plan"

peer=$IPSNAT_SRC/tests/netns/echo_peer.py
# One client at a time: each server answers one connection.
through() {  # through NS PROTO PORT: what the far side saw
  ip netns exec "$far" timeout 12 python3 "$peer" server "$2" 10.0.0.1 "$3" &
  local srv=$!
  t_wait_listening "$far" "$2" "$3"
  ip netns exec "$1" timeout 8 python3 "$peer" client "$2" 10.0.0.1 "$3" 2000 2>&1 || true
  kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null || true
}
out=$(through "$lan" tcp 7100)
expect_ok "TCP from the bridge's LAN arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"
out=$(through "$lan2" tcp 7101)
expect_ok "TCP from the second LAN arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"
out=$(through "$lan2" udp 7102)
expect_ok "UDP from the second LAN arrives as 10.20.30.2 ($out)" test "$out" == "10.20.30.2 intact"
out=$(through "$isp" udp 7103)
expect_ok "a host on the uplink's segment is not translated ($out)" test "$out" == "200.2.2.1 intact"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach ipsec0
finish
