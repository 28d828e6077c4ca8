#!/bin/bash
# Port-forwards (ipsnat attach --forward) end to end in route mode: a host on the tunnel side
# opens a TCP connection to NAT_ADDR:PORT and reaches a server on a LAN host, which sees the
# remote's own address; the answers leave from NAT_ADDR:PORT; the flow is listed as "forward";
# `--pin-root` names the root `flows` reads, before or after the verb; detach removes the rule.
# Run for the seed addresses and for other prefixes (nothing in the product may know the seed). The tunnel device is a veth given --mode route, as in
# t_attach_route_xlate.sh (this kernel has no ESP).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

# forward_case NAME LAN_NET_PLEN LANHOST GW_LAN GW_WAN WAN REMOTE REMOTE_NET NAT
forward_case() {
  local name=$1 plen=$2 host=$3 gwl=$4 gww=$5 wanip=$6 remote=$7 rnet=$8 nat=$9
  local lan gw wan out
  lan=$(t_netns "$name-lan") gw=$(t_netns "$name-gw") wan=$(t_netns "$name-wan")
  t_gateway "$lan" "$gw" "$wan" host="$host/$plen" gw_lan="$gwl" gw_wan="$gww/24" wan="$wanip" \
    remote="$remote" remote_net="$rnet" nat="$nat"
  ip -n "$gw" xfrm policy add src "$nat/32" dst "$rnet" dir out \
    tmpl src "$gww" dst "$wanip" proto esp reqid 1 mode tunnel
  t_wait_links_up "$lan" "$gw" "$wan"

  expect_ok "$name: dry-run names the forward on the NAPT address" \
    bash -c "t() { nsenter --net=/run/netns/$gw \"\$@\"; }; t $IPSNAT attach tun0 --mode route --forward tcp:8080=$host:8000 --dry-run | grep -q 'forward tcp $nat:8080 -> $host:8000'"
  out=$(t_in "$gw" "$IPSNAT" attach tun0 --mode route --forward "tcp:8080=$host:9" --forward "tcp:8080=$host:8000" 2>&1) &&
    fail "$name: two forwards of one port accepted" || ok "$name: two forwards of one port refused ($out)"
  expect_ok "$name: attach --forward tcp:8080=$host:8000" \
    t_in "$gw" "$IPSNAT" attach tun0 --mode route --no-daemon --forward "tcp:8080=$host:8000"

  ip netns exec "$lan" timeout 15 python3 "$peer" server tcp "$host" 8000 &
  T_PIDS+=("$!")
  t_wait_listening "$lan" tcp 8000
  out=$(ip netns exec "$wan" timeout 10 python3 "$peer" client tcp "$nat" 8080 200000 2>&1 || true)
  expect_ok "$name: $remote -> $nat:8080 reaches $host:8000, which sees $remote; 200 kB intact ($out)" \
    test "$out" == "$remote intact"
  expect_ok "$name: the flow is tracked as a forward" \
    bash -c "nsenter --net=/run/netns/$gw $IPSNAT -j flows | grep -q '\"kind\":\"forward\"'"
  # The pin root given as an option, before or after the verb, is the one read (no environment).
  expect_ok "$name: ipsnat --pin-root ROOT flows lists the forward (env unset)" \
    bash -c "nsenter --net=/run/netns/$gw env -u IPSNAT_PIN_ROOT $IPSNAT --pin-root $IPSNAT_PIN_ROOT -j flows | grep -q '\"kind\":\"forward\"'"
  expect_ok "$name: ipsnat flows --pin-root ROOT lists the forward (env unset)" \
    bash -c "nsenter --net=/run/netns/$gw env -u IPSNAT_PIN_ROOT $IPSNAT -j flows --pin-root $IPSNAT_PIN_ROOT | grep -q '\"kind\":\"forward\"'"
  # A port without a rule is not forwarded (nothing listens on the NAT address: refused or
  # silently dropped, never delivered to the LAN host). The client gives up after 2 s: where the
  # path is open the answer takes milliseconds.
  ip netns exec "$lan" timeout 6 python3 "$peer" server tcp "$host" 8001 &
  T_PIDS+=("$!")
  t_wait_listening "$lan" tcp 8001
  out=$(ECHO_PEER_TIMEOUT=2 ip netns exec "$wan" timeout 4 python3 "$peer" client tcp "$nat" 8001 100 2>&1 | tail -n1 || true)
  expect_ok "$name: no rule, no forward ($out)" test "$out" != "$remote intact"

  expect_ok "$name: detach" t_in "$gw" "$IPSNAT" detach tun0
  expect_ok "$name: detach removed the forward from ipsnat_fwd" \
    bash -c "[[ \$(bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_fwd) == '[]' ]]"
}

forward_case seed 24 192.168.1.10 192.168.1.1 200.2.2.2 200.2.2.1 10.0.0.1 10.0.0.0/8 10.20.30.2
forward_case alt 24 172.16.5.10 172.16.5.1 198.51.100.2 198.51.100.1 10.64.1.1 10.64.0.0/10 10.99.0.7
finish
