#!/bin/bash
# BINAT (ipsnat attach --binat) end to end in route mode: an out-policy whose source is a block
# (NATBLOCK/24 -> REMOTE_NET) maps the LAN 1:1 onto it. Without --binat a connection the far
# side opens to a mapped address reaches nobody; with it, it reaches the LAN host mapped to that
# address, which sees the remote's own address, and the answers come back from the mapped
# address; the flow is listed as "binat"; a sender outside the policy's remote selector still
# reaches nobody. The tunnel device is a veth given --mode route, as in t_attach_forward.sh (this
# kernel has no ESP: everything arriving on a route-mode device counts as decrypted, as on an
# xfrm interface; the policy-mode uplink's SA check is the bpf tier's, tests/bpf/binat_test.cpp).
# Run for two sets of prefixes (nothing in the product may know the seed).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

# client WAN ADDR PORT SIZE: "SOURCE intact" when a TCP client in WAN reached the server (the
# client gives up after 5 s; the bound leaves room for a slow start on a loaded machine).
client() { ip netns exec "$1" timeout 15 python3 "$peer" client tcp "$2" "$3" "$4" 2>&1 | tail -n1 || true; }
# nobody_client WAN ADDR PORT SIZE: client where the connection must fail: it gives up after 2 s
# (the SYN and one retransmission; where the path is open the answer takes milliseconds).
nobody_client() { ECHO_PEER_TIMEOUT=2 client "$@"; }

# binat_case NAME LANHOST GW_LAN GW_WAN WAN REMOTE REMOTE_NET BLOCK MAPPED
binat_case() {
  local name=$1 host=$2 gwl=$3 gww=$4 wanip=$5 remote=$6 rnet=$7 block=$8 mapped=$9
  local lan gw wan out
  lan=$(t_netns "$name-lan") gw=$(t_netns "$name-gw") wan=$(t_netns "$name-wan")
  t_gateway "$lan" "$gw" "$wan" host="$host/24" gw_lan="$gwl" gw_wan="$gww/24" wan="$wanip" \
    remote="$remote" remote_net="$rnet"
  ip -n "$wan" route add "$block" via "$gww" src "$remote"
  ip -n "$gw" xfrm policy add src "$block" dst "$rnet" dir out \
    tmpl src "$gww" dst "$wanip" proto esp reqid 1 mode tunnel
  t_wait_links_up "$lan" "$gw" "$wan"

  # One server per port: a connection the test expects to fail leaves its server listening.
  ip netns exec "$lan" timeout 20 python3 "$peer" server tcp "$host" 8000 2>/dev/null &
  T_PIDS+=("$!")
  expect_ok "$name: attach without --binat" t_in "$gw" "$IPSNAT" attach tun0 --mode route --no-daemon -q
  t_wait_listening "$lan" tcp 8000
  out=$(nobody_client "$wan" "$mapped" 8000 100)
  expect_ok "$name: without --binat $remote -> $mapped:8000 reaches nobody ($out)" test "$out" != "$remote intact"
  expect_ok "$name: detach" t_in "$gw" "$IPSNAT" detach tun0

  expect_ok "$name: dry-run names the 1:1 map the far side reaches" \
    bash -c "nsenter --net=/run/netns/$gw $IPSNAT attach tun0 --mode route --binat --dry-run | grep -q '^  binat $block = ${host%.*}.0/24 from $rnet (policy '"
  expect_ok "$name: attach --binat" t_in "$gw" "$IPSNAT" attach tun0 --mode route --no-daemon -q --binat
  expect_ok "$name: the device's ipsnat_dev entry has the binat flag" \
    bash -c "bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_dev | grep -q '\"flags\":1'"
  ip netns exec "$lan" timeout 25 python3 "$peer" server tcp "$host" 8001 2>/dev/null &
  T_PIDS+=("$!")
  t_wait_listening "$lan" tcp 8001
  out=$(client "$wan" "$mapped" 8001 20000)
  expect_ok "$name: $remote -> $mapped:8001 reaches $host:8001, which sees $remote; 20 kB intact ($out)" \
    test "$out" == "$remote intact"
  expect_ok "$name: the flow is tracked as binat" \
    bash -c "nsenter --net=/run/netns/$gw $IPSNAT -j flows | grep -q '\"kind\":\"binat\"'"

  # From the WAN's own address, outside the policy's remote selector: nobody.
  ip -n "$wan" route replace "$block" via "$gww" src "$wanip"
  ip netns exec "$lan" timeout 20 python3 "$peer" server tcp "$host" 8002 2>/dev/null &
  T_PIDS+=("$!")
  t_wait_listening "$lan" tcp 8002
  out=$(nobody_client "$wan" "$mapped" 8002 100)
  expect_ok "$name: $wanip (not in $rnet) -> $mapped:8002 reaches nobody ($out)" test "$out" != "$wanip intact"
  expect_ok "$name: detach" t_in "$gw" "$IPSNAT" detach tun0
}

binat_case alt 172.16.5.10 172.16.5.1 198.51.100.2 198.51.100.1 10.64.1.1 10.64.0.0/10 10.99.7.0/24 10.99.7.10
binat_case seed 192.168.1.10 192.168.1.1 200.2.2.2 200.2.2.1 10.0.0.1 10.0.0.0/8 10.20.40.0/24 10.20.40.10
finish
