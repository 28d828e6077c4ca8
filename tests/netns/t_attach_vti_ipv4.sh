#!/bin/bash
# IPv4 through a VTI next to an uplink in policy mode: the VTI's marked out-policy (mark 42, the
# VTI's okey) is the VTI's alone. The uplink's attach (`ipsnat attach eth0`: the host process runs
# and the namespace has no other rule, so its LWT routes go to the main table, without a rule)
# puts no route for the VTI's destination, so the main table's own route takes the VTI's traffic
# into the VTI; the uplink's unmarked policy beside it keeps its LWT route.
#
# This kernel has no VTI (CONFIG_NET_IPVTI unset): as in t_attach_vti_ipv6.sh the VTI is a veth
# attached in route mode whose ipsnat_dev record is given the okey (mark 42), and the lookup ip_vti
# makes after TC egress (flow mark = okey) is made by namespace `tun` at the veth's far end: it holds
# the same out-policies, marks what arrives from the VTI with 42, and forwards it. Oracles: the
# kernel's route lookup (`ip route get`) and its ACQUIREs (tun's: what the VTI's lookup sees; gw's:
# what the uplink's LWT reroute sees). The destination is routed to the VTI by the main table only.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lan=$(t_netns lan) gw=$(t_netns gw) wan=$(t_netns wan) tun=$(t_netns tun)
ip link add l1 netns "$lan" type veth peer name l0 netns "$gw"
ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
ip link add vti0 netns "$gw" type veth peer name t1 netns "$tun"
ip -n "$tun" link add t2 type veth peer name t3
ip -n "$lan" addr add 172.16.120.10/24 dev l1
ip -n "$gw" addr add 172.16.120.1/24 dev l0
ip -n "$gw" addr add 198.18.120.1/30 dev eth0
ip -n "$wan" addr add 198.18.120.2/30 dev eth1
ip -n "$gw" addr add 198.18.121.1/30 dev vti0
ip -n "$tun" addr add 198.18.121.2/30 dev t1
ip -n "$tun" addr add 198.18.122.1/30 dev t2
t_links_up "$lan:l1" "$gw:l0" "$gw:eth0" "$wan:eth1" "$gw:vti0" "$tun:t1" "$tun:t2" "$tun:t3"
ip -n "$lan" route add default via 172.16.120.1
ip -n "$gw" route add default via 198.18.120.2
# The VTI's destination: the main table's route into the VTI, nothing else.
ip -n "$gw" route add 10.120.9.0/24 via 198.18.121.2 dev vti0
ip -n "$tun" route add default via 198.18.122.2 dev t2
ip -n "$tun" neigh add 198.18.122.2 lladdr 02:00:00:00:78:02 dev t2 nud permanent
t_mark_arrivals "$tun" t1 42
for ns in "$gw" "$tun"; do t_in "$ns" sysctl -qw net.ipv4.ip_forward=1; done

# The same SPD in gw and tun (no SA: a packet a policy covers raises an ACQUIRE naming it): the
# VTI's marked policy, and the uplink's unmarked one to another destination.
for ns in "$gw" "$tun"; do
  ip -n "$ns" xfrm policy add src 10.120.0.2/32 dst 10.120.9.0/24 dir out priority 300 mark 42 mask 0xffffffff \
    tmpl src 198.18.121.1 dst 198.18.121.3 proto esp reqid 5 mode tunnel
  ip -n "$ns" xfrm policy add src 10.120.0.5/32 dst 10.120.8.0/24 dir out priority 300 \
    tmpl src 198.18.120.1 dst 198.18.120.3 proto esp reqid 6 mode tunnel
done
# A port-restricted one of the VTI's: policy mode would refuse it (its reroute's lookup carries no
# ports), but it is not the uplink's to refuse.
ip -n "$gw" xfrm policy add src 10.120.0.7/32 dst 10.120.7.0/24 proto tcp dport 443 dir out priority 300 \
  mark 42 mask 0xffffffff tmpl src 198.18.121.1 dst 198.18.121.3 proto esp reqid 7 mode tunnel


t_wait_links_up "$lan" "$gw" "$wan" "$tun"
t_in "$lan" ping -c 2 -i 0.3 -W 1 172.16.120.1 >/dev/null || true
t_in "$gw" ping -c 2 -i 0.3 -W 1 198.18.121.2 >/dev/null || true
t_in "$gw" ping -c 2 -i 0.3 -W 1 198.18.120.2 >/dev/null || true

uplink_plan=$(t_in "$gw" "$IPSNAT" attach eth0 --inside 172.16.120.0/24 2>&1) || fail "attach eth0 failed: $uplink_plan"
echo "$uplink_plan"
vti_plan=$(t_in "$gw" "$IPSNAT" attach vti0 --mode route --inside 172.16.120.0/24 2>&1) || fail "attach vti0 failed: $vti_plan"
echo "$vti_plan"
t_set_dev_mark "$gw" vti0 42

table=$(ip -n "$gw" route show proto 165)
echo "== ipsnat's routes in gw's main table"; echo "$table"
others=$(ip -n "$gw" route show table all proto 165 | grep ' table ' || true)  # any outside main
rules=$(ip -n "$gw" rule show)
route_vti=$(ip -n "$gw" route get 10.120.9.1 from 172.16.120.10 iif l0)
echo "== route get 10.120.9.1 (the VTI's)"; echo "$route_vti"
route_uplink=$(ip -n "$gw" route get 10.120.8.1 from 172.16.120.10 iif l0)
echo "== route get 10.120.8.1 (the uplink's)"; echo "$route_uplink"
expect_ok "the uplink's plan names no route or companion for the VTI's marked policy" \
  bash -c '! grep -q "10\.120\.9\." <<<"$1"' _ "$uplink_plan"
expect_ok "ipsnat's routes are all in the main table ($others), no rule" \
  bash -c '[[ -z $1 ]] && ! grep -q "lookup 421" <<<"$2"' _ "$others" "$rules"
expect_ok "ipsnat put no route for the VTI's destination" bash -c '! grep -q "10\.120\.9\." <<<"$1"' _ "$table"
expect_ok "the main table holds the uplink's LWT route beside the VTI's" \
  bash -c 'grep -q "^10\.120\.8\.0/24 .*lwt_snat_xmit .*dev eth0" <<<"$1"' _ "$table"
expect_ok "the kernel routes the VTI's destination into the VTI by the main table's own route" \
  bash -c 'grep -q " via 198.18.121.2 dev vti0 " <<<"$1" && ! grep -q "table 421\|lwt\|encap" <<<"$1"' _ "$route_vti"
expect_ok "the kernel routes the uplink's destination out the uplink" grep -q " dev eth0 " <<<"$route_uplink"

# The ACQUIREs of gw and tun while the LAN host pings each destination (bounded by timeout).
fg=$(mktemp) ft=$(mktemp)
timeout 20 ip -n "$gw" xfrm monitor acquire >"$fg" &
T_PIDS+=("$!")
t_wait_subscribed "$!"
timeout 20 ip -n "$tun" xfrm monitor acquire >"$ft" &
T_PIDS+=("$!")
t_wait_subscribed "$!"
for dst in 10.120.9.1 10.120.8.1; do
  for ns in "$gw" "$tun"; do ip -n "$ns" xfrm state flush; done
  n=$(t_acquire_count "$fg" "$ft")
  t_in "$lan" ping -c 1 -W 0.2 "$dst" >/dev/null 2>&1 || true  # no answer comes: no SA
  # Each ping raises an ACQUIRE in gw or tun: the next once it came (at most 2 s).
  t_wait_acquire "$n" "$fg" "$ft" || true
done
sleep 0.5  # any later ACQUIRE (the negative checks') is printed
t_stop_background
acq_gw=$(cat "$fg") acq_tun=$(cat "$ft")
rm -f "$fg" "$ft"
echo "== gw's ACQUIREs"; echo "$acq_gw"; echo "== tun's ACQUIREs (the VTI's lookup)"; echo "$acq_tun"
expect_ok "the VTI's ping reaches the VTI's lookup as 10.120.0.2" \
  grep -q "sel src 10.120.0.2/32 dst 10.120.9.1/" <<<"$acq_tun"
expect_ok "the VTI's ping never reaches the uplink's lookup" bash -c '! grep -q "dst 10.120.9.1/" <<<"$1"' _ "$acq_gw"
expect_ok "the uplink's ping reaches its lookup as 10.120.0.5" grep -q "sel src 10.120.0.5/32 dst 10.120.8.1/" <<<"$acq_gw"
expect_ok "no ACQUIRE names a LAN address" bash -c '! grep -q "sel src 172\.16\.120\." <<<"$1$2"' _ "$acq_gw" "$acq_tun"

policies_json=$(t_in "$gw" "$IPSNAT" policies -j --inside 172.16.120.0/24)
refusals=$(t_json '" ".join(p["src"] for p in s["policies"] if p["dir"] == "out" and p["nat"].get("policy_mode_refusal"))' \
  <<<"$policies_json" 2>/dev/null) || refusals="(unreadable)"
expect_ok "policies -j gives the VTI's port-restricted policy no policy-mode refusal ($refusals)" test -z "$refusals"
expect_ok "the uplink's plan does not refuse the VTI's port-restricted policy" \
  bash -c '! grep -q "10\.120\.7\." <<<"$1"' _ "$uplink_plan"

t_in "$gw" "$IPSNAT" detach vti0
t_in "$gw" "$IPSNAT" detach eth0
finish
