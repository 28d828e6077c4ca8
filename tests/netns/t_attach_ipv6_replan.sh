#!/bin/bash
# IPv6 in policy mode while attached: the host process (started by `ipsnat attach eth0`) follows
# the SPD and the host for IPv6 as for IPv4. An IKE daemon re-establishing the IPv6 CHILD_SA
# deletes the out-policy and adds it again with another reqid (the kernel gives it a new index):
# the companions take the new templates, the LWT route and the blackhole stay, and the next
# packet's ACQUIRE (the kernel's, the oracle) names the new policy (its reqid) with the policy's
# address. The policy is then replaced by one of another address while a UDP flow runs: the flow's
# next ACQUIRE names that address. Then the gateway's IPv6 default route moves to another router:
# the LWT route follows it. Last, a second IPv6 LAN prefix appears: NAT66 takes it too, so the
# re-plan adds its companions, the route stays, and its host's ACQUIRE names the (replaced)
# policy's address.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lana=$(t_netns lana) gw=$(t_netns gw) wan=$(t_netns wan)
t_ipv6_on "$lana" "$gw" "$wan"
ip link add a1 netns "$lana" type veth peer name lan0 netns "$gw"
ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
ip -n "$gw" addr add 172.16.79.1/24 dev lan0
ip -n "$gw" addr add fd00:79:1::1/64 dev lan0 nodad
ip -n "$lana" addr add 172.16.79.10/24 dev a1
ip -n "$lana" addr add fd00:79:1::a/64 dev a1 nodad
ip -n "$gw" addr add 198.18.79.1/24 dev eth0
ip -n "$gw" addr add 2001:db8:ff79::1/64 dev eth0 nodad
ip -n "$wan" addr add 198.18.79.2/24 dev eth1
ip -n "$wan" addr add 2001:db8:ff79::2/64 dev eth1 nodad
ip -n "$wan" addr add 2001:db8:ff79::3/64 dev eth1 nodad
t_links_up "$lana:a1" "$gw:lan0" "$gw:eth0" "$wan:eth1"
ip -n "$lana" route add default via 172.16.79.1
ip -n "$lana" -6 route add default via fd00:79:1::1
ip -n "$gw" route add default via 198.18.79.2
ip -n "$gw" -6 route add default via 2001:db8:ff79::2
t_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip -n "$gw" xfrm policy add src 10.79.0.2/32 dst 10.79.9.0/24 dir out \
  tmpl src 198.18.79.1 dst 198.18.79.2 proto esp reqid 1 mode tunnel
policy6() {  # policy6 REQID: the IPv6 out-policy as the IKE daemon installs it
  ip -n "$gw" xfrm policy add src 2001:db8:79::5/128 dst 2001:db8:e79::/48 dir out \
    tmpl src 2001:db8:ff79::1 dst 2001:db8:ff79::2 proto esp reqid "$1" mode tunnel
}
policy6 2
t_wait_links_up "$lana" "$gw" "$wan"

index6() { ip -s -n "$gw" xfrm policy get src 2001:db8:79::5/128 dst 2001:db8:e79::/48 dir out | grep -o 'index [0-9]*'; }
fwd_companion() { ip -n "$gw" xfrm policy get src 2001:db8:e79::/48 dst fd00:79:1::/64 dir fwd 2>/dev/null || true; }
# The host process runs and the namespace has no other rule: ipsnat's routes are in the main table.
lwt6() { ip -n "$gw" -6 route show proto 165 | grep '^2001:db8:e79::/48' || true; }
acquire_while() { t_acquires_while "$gw" "$lana" "$@"; }
# acquire_for DEST: the ACQUIRE of the LAN host's ping to DEST (no answer comes: no SA).
acquire_for() { acquire_while ping -6 -c 1 -W 0.2 "$1"; }

plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the plan names the NAT66 translation" grep -q 'nat66 fd00:79:1::/64 -> 2001:db8:79::5 (ports)$' <<<"$plan"
expect_ok "the LWT route is in the main table ($(lwt6))" grep -q 'via 2001:db8:ff79::2 dev eth0' <<<"$(lwt6)"
expect_ok "no IPv6 rule" bash -c "! ip -n $gw -6 rule show | grep -q 'lookup 421'"
expect_ok "the companion carries the first reqid" grep -q 'reqid 2 ' <<<"$(fwd_companion)"
acq=$(acquire_for 2001:db8:e79::1)
echo "$acq"
expect_ok "an ACQUIRE names the policy's address and reqid 2" \
  grep -Pzq 'sel src 2001:db8:79::5/128 dst 2001:db8:e79::1/128 proto ipv6-icmp(.|\n)*reqid 2 ' <<<"$acq"

# IKE re-establishes the CHILD_SA: same selector, another reqid, a new kernel index.
old=$(index6)
ip -n "$gw" xfrm policy del src 2001:db8:79::5/128 dst 2001:db8:e79::/48 dir out
policy6 7
expect_ok "the re-added out-policy got another index ($old)" test "$old" != "$(index6)"
companion_reqid7() { grep -q 'reqid 7 ' <<<"$(fwd_companion)"; }
# The re-plan writes the companion and the routes one after the other: both are awaited.
lwt_route() { grep -q 'via 2001:db8:ff79::2 dev eth0' <<<"$(lwt6)"; }
replanned() { companion_reqid7 && lwt_route; }
expect_ok "the host process re-plans: the companion takes reqid 7" t_wait_for 10 replanned
expect_ok "the LWT route stays" lwt_route
expect_ok "the blackhole stays" bash -c "ip -n $gw -6 route show table main | grep -q '^blackhole 2001:db8:79::5 dev lo proto 165'"
acq=$(acquire_for 2001:db8:e79::2)
echo "$acq"
expect_ok "the next ACQUIRE names the new policy (reqid 7) with the policy's address" \
  grep -Pzq 'sel src 2001:db8:79::5/128 dst 2001:db8:e79::2/128 proto ipv6-icmp(.|\n)*reqid 7 ' <<<"$acq"
expect_ok "no ACQUIRE names a LAN address" bash -c "! grep -q 'fd00:79:1' <<<\"\$1\"" _ "$acq"

# IKE replaces the policy with one of another virtual IP while a UDP flow runs: the flow's next
# packet is translated to the new address (its ct6 entry is checked again under the new SPD
# version, docs/datapath.md "Established flows and SPD changes"), never left with the old one.
acquire_udp() {  # the ACQUIRE of one datagram of the LAN host's flow [fd00:79:1::a]:40079 -> [2001:db8:e79::3]:53
  acquire_while timeout 5 python3 -c 'import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("fd00:79:1::a", 40079)); s.sendto(b"x" * 20, ("2001:db8:e79::3", 53))'
}
expect_ok "the UDP flow's ACQUIRE names the policy's address" \
  grep -q 'sel src 2001:db8:79::5/128 dst 2001:db8:e79::3/128 proto udp ' <<<"$(acquire_udp)"
ip -n "$gw" xfrm policy del src 2001:db8:79::5/128 dst 2001:db8:e79::/48 dir out
ip -n "$gw" xfrm policy add src 2001:db8:79::6/128 dst 2001:db8:e79::/48 dir out \
  tmpl src 2001:db8:ff79::1 dst 2001:db8:ff79::2 proto esp reqid 8 mode tunnel
blackhole6() { ip -n "$gw" -6 route show proto 165 | grep -q '^blackhole 2001:db8:79::6 '; }
expect_ok "the host process re-plans for the new address" t_wait_for 10 blackhole6
acq=$(acquire_udp)
echo "$acq"
expect_ok "the flow's next ACQUIRE names the new policy's address" \
  grep -q 'sel src 2001:db8:79::6/128 dst 2001:db8:e79::3/128 proto udp ' <<<"$acq"

# The IPv6 default route moves to another router: the re-plan takes it as the route's nexthop.
ip -n "$gw" -6 route replace default via 2001:db8:ff79::3
via3() { grep -q 'via 2001:db8:ff79::3 dev eth0' <<<"$(lwt6)"; }
expect_ok "a new IPv6 default gateway becomes the LWT route's nexthop" t_wait_for 10 via3
lwt6
# Its own routes (proto 165) never wake the host: idle, it stays idle (CPU ticks over 3 s).
host=$(jq -r .daemon_pid "$IPSNAT_STATE_DIR"/*@eth0.json)
ticks() { awk '{print $14 + $15}' "/proc/$host/stat"; }
t0=$(ticks)
sleep 3
expect_ok "the host process is idle after the re-plans ($(($(ticks) - t0)) ticks in 3 s)" test $(($(ticks) - t0)) -lt 100

ip -n "$gw" addr add fd00:79:2::1/64 dev lan0 nodad
ip -n "$lana" addr add fd00:79:2::a/64 dev a1 nodad
companion2() { ip -n "$gw" xfrm policy get src 2001:db8:e79::/48 dst fd00:79:2::/64 dir fwd >/dev/null 2>&1; }
expect_ok "a second IPv6 LAN prefix: the re-plan adds its fwd companion" t_wait_for 10 companion2
expect_ok "the NAT66 route stays" grep -q 'via 2001:db8:ff79::3 dev eth0' <<<"$(lwt6)"
# The host process's mirror takes the new inside set after the re-plan: a few tries.
second_lan_acquire() {
  acq=$(acquire_while ping -6 -c 1 -W 0.2 -I fd00:79:2::a 2001:db8:e79::3)
  grep -q 'sel src 2001:db8:79::6/128 dst 2001:db8:e79::3/128 proto ipv6-icmp' <<<"$acq"
}
expect_ok "the second prefix's host: the ACQUIRE names the policy's address" t_wait_for 15 second_lan_acquire
echo "$acq"
expect_ok "no ACQUIRE names the second LAN's address" bash -c "! grep -q 'fd00:79:2' <<<\"\$1\"" _ "$acq"
expect_ok "the host process warns of nothing about NAT66" bash -c "! grep -q 'NAT66' \"\$@\"" _ "$IPSNAT_STATE_DIR"/*.log
((FAILS)) && cat "$IPSNAT_STATE_DIR"/*.log >&2
expect_ok "still no IPv6 rule after the re-plans" bash -c "! ip -n $gw -6 rule show | grep -q 'lookup 421'"
expect_ok "still nothing in table 421" bash -c "[[ -z \$(ip -n $gw -6 route show table 421 2>/dev/null) ]]"
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "detach removed the IPv6 routes" test -z "$(ip -n "$gw" -6 route show table all proto 165)"
expect_ok "and left no IPv6 rule" bash -c "! ip -n $gw -6 rule show | grep -q 'lookup 421'"
finish
