#!/bin/bash
# A policy whose source is the LAN itself (site-to-site without NAT) beside a translating one:
# attach translates nothing for it, adds no route for the LAN's block to its table, and the LAN
# stays reachable from the uplink's side (a 1:1 map of the LAN onto itself would blackhole it).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
ip -n "$wan" route add 192.168.1.0/24 via 200.2.2.2
ip -n "$gw" xfrm policy add src 192.168.1.0/24 dst 10.9.0.0/16 dir out priority 2000 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 7 mode tunnel
reachable() { t_in "$wan" ping -c 2 -i 0.2 -W 1 -q 192.168.1.10 >/dev/null 2>&1; }
expect_ok "before attach the WAN side reaches the LAN host" reachable

out=$(t_in "$gw" "$IPSNAT" attach eth0 --no-daemon 2>&1) || fail "attach: $out"
echo "$out" | sed 's/^/  attach: /'
expect_ok "attach says the LAN's own policy is sent as it is" grep -q "overlaps the inside prefix" <<<"$out"
expect_ok "the seed's policy is still translated" grep -q "napt .* -> 10.20.30.2" <<<"$out"
routes=$(ip -n "$gw" route show table 421)
expect_ok "no route of ipsnat's table holds the LAN's block ($(tr '\n' ';' <<<"$routes"))" \
  bash -c "! grep -q '192.168.1' <<<'$routes'"
expect_ok "after attach the WAN side still reaches the LAN host" reachable
expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0
finish
