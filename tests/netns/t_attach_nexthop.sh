#!/bin/bash
# The nexthop of ipsnat's LWT route is the main table's, never its own table's through its own
# rule: after the default gateway changes (DHCP, failover), attaching again (what every re-plan
# does) moves the route to the new gateway.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
ip -n "$wan" addr add 200.2.2.3/24 dev eth1
lwt_via() { ip -n "$gw" route show table 421 proto 165 | grep '^10.0.0.0/8' | grep -o 'via [0-9.]*' || true; }

expect_ok "attach" t_in "$gw" "$IPSNAT" attach eth0 -q --no-daemon
expect_ok "the LWT route goes via the default gateway ($(lwt_via))" test "$(lwt_via)" == "via 200.2.2.1"
ip -n "$gw" route replace default via 200.2.2.3
expect_ok "attach again" t_in "$gw" "$IPSNAT" attach eth0 -q --no-daemon
expect_ok "the LWT route follows the new default gateway ($(lwt_via))" test "$(lwt_via)" == "via 200.2.2.3"
expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0
finish
