#!/bin/bash
# IPv6 (and IPv4 beside it) through a VTI next to an uplink in policy mode, with one IPv6
# destination, 2001:db8:e6e::/48, both the VTI's marked policy (mark 42, the VTI's okey: NAT66 to
# 2001:db8:6e::5) and the uplink's unmarked one (NAT66 to 2001:db8:6f::5) cover. NAT66/NPTv6 rules
# are kept per if_id and mark (maps/npt6.h): the VTI's packets take the marked policy's address,
# the uplink's the unmarked one's, whichever of the two the kernel holds first; a port-restricted
# IPv6 policy of the VTI is translated (ip_vti's lookup carries the ports).
#
# This kernel has no VTI (CONFIG_NET_IPVTI, CONFIG_IPV6_VTI unset): the VTI is a veth attached in
# route mode whose ipsnat_dev record is given the okey a VTI's attach writes there (unit
# AttachPlan.DeviceConfigTakesTheVtiOkeyAsTheFlowMark), and the lookup ip_vti makes after TC egress
# (vti_xmit: the packet, flow mark = okey) is made by namespace `tun` at the veth's far end: it
# holds the same out-policies, marks what arrives from the VTI with 42, and forwards it. The
# oracles are the kernel's ACQUIREs: tun's names the policy and the translated source a VTI's
# lookup sees, the gateway's those of the uplink's LWT reroute. The LAN host's source address
# picks the device (ip rule): fd00:6e:1::a and 172.16.110.10 the VTI, fd00:6e:1::b the uplink.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lan=$(t_netns lan) gw=$(t_netns gw) wan=$(t_netns wan) tun=$(t_netns tun)
t_ipv6_on "$lan" "$gw" "$wan" "$tun"
ip link add l1 netns "$lan" type veth peer name l0 netns "$gw"
ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
ip link add vti0 netns "$gw" type veth peer name t1 netns "$tun"
ip -n "$tun" link add t2 type veth peer name t3
ip -n "$lan" addr add fd00:6e:1::a/64 dev l1 nodad
ip -n "$lan" addr add fd00:6e:1::b/64 dev l1 nodad
ip -n "$lan" addr add 172.16.110.10/24 dev l1
ip -n "$gw" addr add fd00:6e:1::1/64 dev l0 nodad
ip -n "$gw" addr add 172.16.110.1/24 dev l0
ip -n "$gw" addr add 2001:db8:ff6e::1/64 dev eth0 nodad
ip -n "$wan" addr add 2001:db8:ff6e::2/64 dev eth1 nodad
ip -n "$gw" addr add fd6e:ff::1/64 dev vti0 nodad
ip -n "$gw" addr add 198.18.110.1/30 dev vti0
ip -n "$tun" addr add fd6e:ff::2/64 dev t1 nodad
ip -n "$tun" addr add 198.18.110.2/30 dev t1
ip -n "$tun" addr add fd6e:fe::1/64 dev t2 nodad
ip -n "$tun" addr add 198.18.111.1/30 dev t2
t_links_up "$lan:l1" "$gw:l0" "$gw:eth0" "$wan:eth1" "$gw:vti0" "$tun:t1" "$tun:t2" "$tun:t3"
ip -n "$lan" -6 route add default via fd00:6e:1::1
ip -n "$lan" route add default via 172.16.110.1
ip -n "$gw" -6 route add default via 2001:db8:ff6e::2
# The VTI's LAN sources reach the destinations through vti0, before the uplink's LWT table (rule 210).
ip -n "$gw" -6 route add 2001:db8:e6e::/48 via fd6e:ff::2 dev vti0 table 100
ip -n "$gw" -6 route add 2001:db8:e6f::/48 via fd6e:ff::2 dev vti0 table 100
ip -n "$gw" route add 10.110.9.0/24 via 198.18.110.2 dev vti0 table 100
ip -n "$gw" -6 rule add from fd00:6e:1::a/128 lookup 100 priority 100
ip -n "$gw" rule add from 172.16.110.10/32 lookup 100 priority 100
# tun forwards what the VTI sends (its forward path makes the xfrm lookup) with ip_vti's flow mark.
ip -n "$tun" -6 route add default via fd6e:fe::2 dev t2
ip -n "$tun" route add default via 198.18.111.2 dev t2
ip -n "$tun" neigh add fd6e:fe::2 lladdr 02:00:00:00:6e:02 dev t2 nud permanent
ip -n "$tun" neigh add 198.18.111.2 lladdr 02:00:00:00:6e:02 dev t2 nud permanent
t_mark_arrivals "$tun" t1 42
for ns in "$gw" "$tun"; do t_in "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; done

# policies PRIO_VTI PRIO_UPLINK: the same SPD in gw and tun (tunnel endpoints as the SAs' would be;
# no SA: a packet a policy covers raises an ACQUIRE naming it).
policies() {
  local ns
  for ns in "$gw" "$tun"; do
    ip -n "$ns" xfrm policy flush
    ip -n "$ns" xfrm policy add src 2001:db8:6e::5/128 dst 2001:db8:e6e::/48 dir out priority "$1" mark 42 mask 0xffffffff \
      tmpl src 2001:db8:ff6e::1 dst 2001:db8:ff6e::3 proto esp reqid 2 mode tunnel
    ip -n "$ns" xfrm policy add src 2001:db8:6f::5/128 dst 2001:db8:e6e::/48 dir out priority "$2" \
      tmpl src 2001:db8:ff6e::1 dst 2001:db8:ff6e::2 proto esp reqid 3 mode tunnel
    ip -n "$ns" xfrm policy add src 2001:db8:6e::7/128 dst 2001:db8:e6f::/48 proto tcp dport 443 dir out priority 300 \
      mark 42 mask 0xffffffff tmpl src 2001:db8:ff6e::1 dst 2001:db8:ff6e::3 proto esp reqid 4 mode tunnel
    ip -n "$ns" xfrm policy add src 10.110.0.2/32 dst 10.110.9.0/24 dir out priority 300 mark 42 mask 0xffffffff \
      tmpl src 198.18.110.1 dst 198.18.110.3 proto esp reqid 5 mode tunnel
  done
}


inside=(--inside fd00:6e:1::/64 --inside 172.16.110.0/24)
attach_both() {
  uplink_plan=$(t_in "$gw" "$IPSNAT" attach eth0 "${inside[@]}" 2>&1) || fail "attach eth0 failed: $uplink_plan"
  echo "$uplink_plan"
  vti_plan=$(t_in "$gw" "$IPSNAT" attach vti0 --mode route "${inside[@]}" 2>&1) || fail "attach vti0 failed: $vti_plan"
  echo "$vti_plan"
  t_set_dev_mark "$gw" vti0 42
}
detach_both() {
  t_in "$gw" "$IPSNAT" detach vti0
  t_in "$gw" "$IPSNAT" detach eth0
}

# TCP to port 443 from fd00:6e:1::a (the VTI's source): one SYN, no answer awaited.
# (The SYN leaves within connect(); no answer comes, as to the pings: no SA.)
tcp_from_a="python3 -c \"import socket; s = socket.socket(socket.AF_INET6); s.settimeout(0.2); s.bind(('fd00:6e:1::a', 0)); s.connect_ex(('2001:db8:e6f::1', 443))\""
# acquires: the ACQUIREs of gw ($acq_gw) and tun ($acq_tun) while the LAN host sends from each
# source (states flushed before each flow: one ACQUIRE per SA while its larval state lives).
acquires() {
  local fg ft ns pid n
  fg=$(mktemp) ft=$(mktemp)
  timeout 20 ip -n "$gw" xfrm monitor acquire >"$fg" &
  T_PIDS+=("$!")
  t_wait_subscribed "$!"
  timeout 20 ip -n "$tun" xfrm monitor acquire >"$ft" &
  T_PIDS+=("$!")
  t_wait_subscribed "$!"
  for flow in "ping -6 -c 1 -W 0.2 -I fd00:6e:1::a 2001:db8:e6e::1" \
              "ping -6 -c 1 -W 0.2 -I fd00:6e:1::b 2001:db8:e6e::2" \
              "$tcp_from_a" \
              "ping -c 1 -W 0.2 -I 172.16.110.10 10.110.9.1"; do
    for ns in "$gw" "$tun"; do ip -n "$ns" xfrm state flush; done
    n=$(t_acquire_count "$fg" "$ft")
    t_in "$lan" bash -c "$flow" >/dev/null 2>&1 || true
    # Each flow raises an ACQUIRE in gw or tun: the next flow once it came (at most 2 s).
    t_wait_acquire "$n" "$fg" "$ft" || true
  done
  sleep 0.5  # any later ACQUIRE (the negative checks') is printed
  t_stop_background
  acq_gw=$(cat "$fg") acq_tun=$(cat "$ft")
  rm -f "$fg" "$ft"
  echo "== gw's ACQUIREs"; echo "$acq_gw"; echo "== tun's ACQUIREs (the VTI's lookup)"; echo "$acq_tun"
}

# has ACQ SRC DST PRIORITY: an ACQUIRE with that selector, from the policy of that priority.
has() {
  python3 - "$@" <<'EOF'
import re, sys
acq, src, dst, prio = sys.argv[1:]
for block in re.split(r"(?m)^acquire ", acq):
    if re.search(r"sel src %s/\d+ dst %s/\d+" % (re.escape(src), re.escape(dst)), block) and \
       re.search(r"dir out priority %s\b" % prio, block):
        sys.exit(0)
sys.exit(1)
EOF
}
no_lan_source() { ! grep -Eq 'sel src (fd00:6e:|172\.16\.110\.)' <<<"$1"; }

# check PRIO_VTI PRIO_UPLINK: each device's flows reach the kernel with its own policy's address.
check() {
  local v=$1 u=$2
  expect_ok "the VTI's IPv6 ping reaches its lookup as 2001:db8:6e::5, under the VTI's policy (priority $v)" \
    has "$acq_tun" 2001:db8:6e::5 2001:db8:e6e::1 "$v"
  expect_ok "the uplink's IPv6 ping reaches its lookup as 2001:db8:6f::5, under the uplink's policy (priority $u)" \
    has "$acq_gw" 2001:db8:6f::5 2001:db8:e6e::2 "$u"
  expect_ok "the VTI's port-restricted IPv6 policy takes its TCP as 2001:db8:6e::7" \
    has "$acq_tun" 2001:db8:6e::7 2001:db8:e6f::1 300
  expect_ok "the VTI's IPv4 beside it reaches its lookup as 10.110.0.2" has "$acq_tun" 10.110.0.2 10.110.9.1 300
  expect_ok "no ACQUIRE names a LAN address (gw)" no_lan_source "$acq_gw"
  expect_ok "no ACQUIRE names a LAN address (tun)" no_lan_source "$acq_tun"
  expect_ok "the uplink's ping never reaches the VTI" bash -c '! grep -q "dst 2001:db8:e6e::2/" <<<"$1"' _ "$acq_tun"
}

t_wait_links_up "$lan" "$gw" "$wan" "$tun"
# Neighbour discovery on every hop first (bounded), so the first packet is not the one that waits.
t_in "$lan" ping -6 -c 2 -i 0.3 -W 1 fd00:6e:1::1 >/dev/null || true
t_in "$gw" ping -6 -c 2 -i 0.3 -W 1 fd6e:ff::2 >/dev/null || true
t_in "$gw" ping -6 -c 2 -i 0.3 -W 1 2001:db8:ff6e::2 >/dev/null || true
t_in "$gw" ping -c 2 -i 0.3 -W 1 198.18.110.2 >/dev/null || true

# The VTI's policy first by priority, then the uplink's: either way each device keeps its own.
for prios in "100 200" "200 100"; do
  read -r prio_vti prio_uplink <<<"$prios"
  policies "$prio_vti" "$prio_uplink"
  attach_both
  expect_ok "the uplink's plan translates its own IPv6 policy" \
    grep -q "2001:db8:6f::5/128 -> 2001:db8:e6e::/48: nat66 fd00:6e:1::/64 -> 2001:db8:6f::5 (ports)$" <<<"$uplink_plan"
  expect_ok "the uplink's plan leaves the VTI's marked IPv6 policies to the VTI" \
    bash -c '! grep -q "2001:db8:6e::" <<<"$1"' _ "$uplink_plan"
  acquires
  check "$prio_vti" "$prio_uplink"
  policies_json=$(t_in "$gw" "$IPSNAT" policies -j --inside fd00:6e:1::/64)
  marks=$(t_json '" ".join(sorted("%s:%s" % (p["src"], p["nat"]["rule_mark"]) for p in s["policies"]
                                   if p["dir"] == "out" and ":" in p["src"]))' <<<"$policies_json" 2>/dev/null) \
    || marks="(no rule_mark)"
  expect_ok "policies -j keeps the VTI's IPv6 rules for mark 42, the uplink's for mark 0 ($marks)" \
    test "$marks" == "2001:db8:6e::5/128:42 2001:db8:6e::7/128:42 2001:db8:6f::5/128:0"
  detach_both
done
finish
