#!/bin/bash
# The gateway's own masquerade/SNAT rule for everything else (`oifname eth0 masquerade`) beside
# `ipsnat attach eth0` in policy mode: netfilter rewrites the LAN packet to the uplink address in
# POSTROUTING before the LWT hook, and ipsnat still translates it to the policy's address. The
# oracle is the kernel's ACQUIRE (no ESP here): it names the flow the xfrm lookup saw. Native nft,
# iptables-nft and iptables-legacy rules, each present before attach and added after. Nothing may
# reach the next hop in cleartext to the covered prefix; other destinations still leave
# masqueraded as the uplink address (the echo server reports the source it saw).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
ip -n "$wan" addr add 198.51.100.7/32 dev lo  # an "internet" host no policy covers
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

add_rule() {
  case $1 in
    nft)
      ip netns exec "$gw" nft add table ip tmasq
      ip netns exec "$gw" nft add chain ip tmasq post '{ type nat hook postrouting priority srcnat; }'
      ip netns exec "$gw" nft add rule ip tmasq post oifname eth0 masquerade ;;
    iptables-nft) ip netns exec "$gw" iptables-nft -t nat -A POSTROUTING -o eth0 -j MASQUERADE ;;
    iptables-legacy) ip netns exec "$gw" iptables-legacy -t nat -A POSTROUTING -o eth0 -j SNAT --to-source 200.2.2.2 ;;
  esac
}
del_rule() {
  case $1 in
    nft) ip netns exec "$gw" nft delete table ip tmasq ;;
    iptables-nft) ip netns exec "$gw" iptables-nft -t nat -D POSTROUTING -o eth0 -j MASQUERADE ;;
    iptables-legacy) ip netns exec "$gw" iptables-legacy -t nat -D POSTROUTING -o eth0 -j SNAT --to-source 200.2.2.2 ;;
  esac
}

check() {  # check LABEL: LAN flows to the covered prefix reach the xfrm lookup translated
  local what=$1 acq leak out
  acq=$(mktemp) leak=$(mktemp)
  timeout 12 ip -n "$gw" xfrm monitor acquire >"$acq" &
  local mon=$!
  timeout 12 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode 'net 10.0.0.0/8' >"$leak" 2>"$leak.err" &
  local dump=$!
  t_wait_subscribed "$mon"
  t_wait_capturing "$leak.err"
  # One ACQUIRE per SA while its larval state lives: flush it before each protocol.
  ip -n "$gw" xfrm state flush
  # Each packet only has to reach the xfrm lookup: nothing waits for an answer that cannot come.
  ip netns exec "$lan" bash -c 'echo x > /dev/udp/10.0.0.1/5000' 2>/dev/null || true
  ip -n "$gw" xfrm state flush
  ip netns exec "$lan" timeout 0.5 bash -c 'echo > /dev/tcp/10.0.0.1/7000' 2>/dev/null || true
  ip -n "$gw" xfrm state flush
  ip netns exec "$lan" ping -c 1 -W 0.5 10.0.0.1 >/dev/null 2>&1 || true
  # The monitor prints the three flows' ACQUIREs (at most 2 s).
  t_wait_acquire 2 "$acq" || true
  kill "$mon" "$dump" 2>/dev/null || true
  wait "$mon" "$dump" 2>/dev/null || true
  for proto in udp tcp icmp; do
    expect_ok "$what: the ACQUIRE for the $proto flow names the NAT address" \
      grep -q "sel src 10.20.30.2/32 dst 10.0.0.1/32 proto $proto" "$acq"
  done
  expect_ok "$what: no ACQUIRE names the LAN host or the uplink address" \
    bash -c "! grep -q 'sel src \(192.168.1.10\|200.2.2.2\)' '$acq'"
  expect_ok "$what: nothing reached the next hop in cleartext to 10.0.0.0/8" bash -c "! grep -q 'IP ' '$leak'"
  ((FAILS)) && cat "$acq" "$leak" >&2
  rm -f "$acq" "$leak" "$leak.err"
  ip netns exec "$wan" timeout 10 python3 "$peer" server udp 198.51.100.7 5001 &
  local srv=$!
  t_wait_listening "$wan" udp 5001
  out=$(ip netns exec "$lan" timeout 8 python3 "$peer" client udp 198.51.100.7 5001 64 2>&1 || true)
  wait "$srv" 2>/dev/null || true
  expect_ok "$what: traffic to an uncovered address still leaves masqueraded ($out)" test "$out" == "200.2.2.2 intact"
}

flavours=(nft iptables-nft)
if ip netns exec "$gw" iptables-legacy -t nat -L >/dev/null 2>&1; then flavours+=(iptables-legacy); else echo "skip: no iptables-legacy"; fi
for f in "${flavours[@]}"; do
  add_rule "$f"
  expect_ok "$f: attach with the rule present" t_in "$gw" "$IPSNAT" attach eth0 -q
  check "$f, rule before attach"
  expect_ok "$f: detach" t_in "$gw" "$IPSNAT" detach eth0
  del_rule "$f"
  ip netns exec "$gw" conntrack -F >/dev/null 2>&1 || true

  expect_ok "$f: attach without the rule" t_in "$gw" "$IPSNAT" attach eth0 -q
  add_rule "$f"
  check "$f, rule added after attach"
  expect_ok "$f: detach" t_in "$gw" "$IPSNAT" detach eth0
  del_rule "$f"
  ip netns exec "$gw" conntrack -F >/dev/null 2>&1 || true
done
finish
