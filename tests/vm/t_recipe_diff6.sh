#!/bin/bash
# vm-cost: 90
# shellcheck source-path=SCRIPTDIR
# Differential test of IPv6 against the netfilter recipe, an oracle we did not write: the IPv6
# twin of t_recipe_diff. The dual-stack lab of t_nat_policy_inet (one SA pair over the IPv4
# peers carries both families, out-policies NAT_IP/32 and NAT_IP6/128 to the company's networks,
# as strongSwan installs them for two virtual IPs) runs the same seeded random workload
# (difftool6.py) of both LAN hosts at once, three times:
#   R  the recipe of both families in one nftables `table inet`, no ipsnat: `snat ip6 to NAT_IP6`
#      for LAN6 -> COMPANY6 (and `snat ip to NAT_IP` for IPv4), then `oifname eth0 masquerade`;
#   I  the masquerade rule only, plus `ipsnat attach eth0` (NAT66 takes the company's flows,
#      from the LAN address or, for what the rule rewrote first, from the uplink's);
#   S  `snat ip to` / `snat ip6 to` the uplink's addresses instead of the masquerade rule, plus
#      `ipsnat attach eth0`: the company's IPv6 flows leave netfilter from the uplink's address,
#      which NAT66 takes (I's masquerade picks the policy's address itself: strongSwan's virtual
#      IPv6 is the LWT route's `src`);
#   P  no netfilter rule, `ipsnat attach eth0`: the company's flows only (nothing masquerades
#      the internet's).
# The workload: UDP echo and TCP to the company host (through ESP) and to the internet host
# (transit's address), pairs of both hosts from the same source port to the same far end at once
# (NAPT collisions), pings of up to 3000 bytes, a datagram to a closed port on each far host (the
# port unreachable must come back: ECONNREFUSED), datagrams of 1500-4000 bytes (fragmented by the
# LAN host; a Packet Too Big from the gateway is followed as an application would, by sending
# again at the new path MTU, and the echo compared byte for byte), and a probe with hop limit 2
# to the company host whose time exceeded comes from cgw through the tunnel.
# For every flow, I, S and P must end as in R (answered or refused, the echo intact, the same ICMPv6
# error from the same router); the far side sees NAT_IP6 (company) or the uplink's IPv6 address
# (internet); the source port is kept wherever R kept it outside a pair, and each pair gets both
# answers as distinct tuples, one keeping its port. Where the Packet Too Big comes from and the
# MTU it names are the gateway's to choose: under ipsnat its LWT route's locked MTU, from the
# gateway's LAN address (docs/attach.md "IPv6 in policy mode"), under the recipe the xfrm path
# MTU, from the translated address. Per phase: no
# IPv6 cleartext of the company or the LAN on transit, ESP both ways, the company host sees no
# LAN address; afterwards the gateway is as before.
# IPSNAT_DIFF_SEED=N repeats a run, =random draws a seed. The seed also picks the address profile
# (odd alt, even seed) and where the LAN is: on a bridge on gw (seed % 4 < 2; br-lan, lan0 its
# port, as on a router whose LAN ports are bridged) or on lan0 itself.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

DIFF_TOOL=$VM_TESTS_DIR/difftool6.py
SEED=${IPSNAT_DIFF_SEED:-1}
[[ $SEED == random ]] && SEED=$(((RANDOM << 15 | RANDOM) % 1000000))
PORTBASE=7200     # difftool6.py: UDP echo on PORTBASE, TCP on +1, +9 closed
PROFILE=seed
((SEED % 2)) && PROFILE=alt
BRIDGE=0
((SEED % 4 < 2)) && BRIDGE=1

# diff_phase PHASE [co]: both LAN hosts' clients at once (co: the company's flows only), with
# captures on transit and on chost's LAN, and the per-phase checks.
diff_phase() {
  local ph=$1 only=${2:-} c1 c2 h
  lab_capture_start "transit-$ph"
  lab_capture_start "chost-$ph" lan0 chost
  lab_exec lanhost timeout 150 python3 -S "$DIFF_TOOL" client "$SEED" 1 "$ph" "$LAB_CHOST_IP6" \
    "$LAB_TRANSIT_GW6_IP" "$PORTBASE" "$only" >"$D/$ph.1.out" 2>"$D/$ph.1.err" & c1=$!
  lab_exec lanhost2 timeout 150 python3 -S "$DIFF_TOOL" client "$SEED" 2 "$ph" "$LAB_CHOST_IP6" \
    "$LAB_TRANSIT_GW6_IP" "$PORTBASE" "$only" >"$D/$ph.2.out" 2>"$D/$ph.2.err" & c2=$!
  wait "$c1" || true
  wait "$c2" || true
  lab_capture_stop "chost-$ph" >/dev/null
  lab_capture_stop "transit-$ph" >/dev/null
  for h in 1 2; do
    [[ -s $D/$ph.$h.err ]] && sed "s/^/      host $h: /" "$D/$ph.$h.err" | head -5
    ok "phase $ph: host $h flows answered: $(grep -c '"reply": true\|"err": "refused"\|"icmp": ' "$D/$ph.$h.out" || true)/$(grep -c . "$D/$ph.$h.out" || true)"
  done
  expect_no_leak6 "phase $ph: no IPv6 cleartext of the company or the LAN on transit" "transit-$ph"
  expect_esp_both_ways "phase $ph" "transit-$ph"
  expect_gt "phase $ph: chost saw packets from $LAB_NAT_IP6" \
    "$(lab_capture_seen "chost-$ph" "ip6 and src host $LAB_NAT_IP6")" 0
  expect_eq "phase $ph: chost saw no LAN source address" \
    "$(lab_capture_count "chost-$ph" "ip6 and src net $LAB_LAN6_NET")" 0
}

# diff_reset DESC: gw's netfilter conntrack flushed, every host's learned path MTUs forgotten
# (a phase must meet each Packet Too Big itself: a 3000-byte ping needs two, the gateway's and
# cgw's to chost, and a phase that found them learned would answer where R could not), and gw's
# configuration as before.
diff_reset() {
  local ns
  expect_ok "$1: gw's netfilter conntrack flushed" lab_exec gw python3 -S "$VM_TESTS_DIR/difftool.py" ct-flush
  for ns in lanhost lanhost2 gw cgw chost transit; do _lab_ip "$ns" -6 route flush cache; done
  nat_expect_restored "$1: gateway as before" "$before"
}

lab_profile "$PROFILE"
step "seed $SEED (IPSNAT_DIFF_SEED=$SEED repeats it), profile $PROFILE: LAN $LAB_LAN6_NET$( ((BRIDGE)) && echo " on a bridge") -> $LAB_COMPANY6_NET as $LAB_NAT_IP6, internet $LAB_TRANSIT_GW6_IP as $LAB_GW_WAN6_IP"
lab_up
((BRIDGE)) && lab_gw_lan_bridge
lab_ipv6_up
lab_ipv6_lanhost2_up
lab_ipv6_company_up
LAB_SA_FLAGS=af-unspec lab_esp_policy_tunnel
lab_esp_policy6
# cgw's side of the IPv6 policies, and strongSwan's route for its remote selector: cgw's own
# time exceeded to NAT_IP6 then leaves from its company address, through the tunnel.
{ _lab_policies "$LAB_COMPANY6_NET" "$LAB_NAT_IP6/128" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
  echo "route add $LAB_NAT_IP6/128 dev eth0"; } | _lab_batch cgw
# Every error goes to one address: the per-peer ICMPv6 rate limit must not decide an outcome.
for ns in gw cgw chost transit; do lab_exec "$ns" sysctl -qw net.ipv6.icmp.ratelimit=0; done
D=$LAB_STATE/diff6
mkdir -p "$D"
before=$LAB_STATE/snap.before
nat_gw_snapshot >"$before"

lab_exec chost timeout 600 python3 -S "$DIFF_TOOL" server :: "$PORTBASE" "$D/stop" 580 >"$D/co.log" 2>&1 & srv_co=$!
lab_exec transit timeout 600 python3 -S "$DIFF_TOOL" server :: "$PORTBASE" "$D/stop" 580 >"$D/in.log" 2>&1 & srv_in=$!
nat_wait_listen "$((PORTBASE + 1))" t chost
nat_wait_listen "$((PORTBASE + 1))" t transit

step "phase R: the recipe (nft table inet: snat ip6 to $LAB_NAT_IP6 for $LAB_COMPANY6_NET, masquerade on eth0), no ipsnat"
lab_exec gw nft -f - <<EOF
table inet recipe_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $LAB_LAN_NET ip daddr $LAB_COMPANY_NET snat ip to $LAB_NAT_IP
    ip6 saddr $LAB_LAN6_NET ip6 daddr $LAB_COMPANY6_NET snat ip6 to $LAB_NAT_IP6
    oifname "eth0" masquerade
  }
}
EOF
diff_phase R
lab_exec gw nft delete table inet recipe_nat
diff_reset "after R"

# rule_phase PHASE DESC RULES: nft table inet seed_nat with RULES in postrouting, ipsnat attached
# beside it, the phase run, both removed.
rule_phase() {
  step "phase $1: $2 + ipsnat attach eth0"
  FAILS_BEFORE=$FAILS
  lab_exec gw nft -f - <<EOF
table inet seed_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
$3
  }
}
EOF
  expect_ok "ipsnat attach eth0" ipsnat_gw attach eth0 -q
  diff_phase "$1"
  ((FAILS == FAILS_BEFORE)) || nat_diag
  nat_flush_detach
  # S: NAT66 took the flows netfilter had rewritten (I: the masquerade picked the policy's
  # address, ipsnat had nothing to do).
  [[ $1 == S ]] && expect_gt "phase S: ipsnat translated flows" "$NAT_FLUSHED" 0
  lab_exec gw nft delete table inet seed_nat
  diff_reset "after $1"
}

rule_phase I "nft masquerade of both families on eth0 (table inet)" '    oifname "eth0" masquerade'
rule_phase S "nft snat of both families to the uplink's addresses (table inet)" \
  "    oifname \"eth0\" meta nfproto ipv4 snat ip to $LAB_GW_WAN_IP
    oifname \"eth0\" meta nfproto ipv6 snat ip6 to $LAB_GW_WAN6_IP"

step "phase P: ipsnat attach eth0, no netfilter rule (the company's flows)"
FAILS_BEFORE=$FAILS
expect_ok "ipsnat attach eth0" ipsnat_gw attach eth0 -q
diff_phase P co
((FAILS == FAILS_BEFORE)) || nat_diag
nat_flush_detach
expect_gt "phase P: ipsnat translated flows" "$NAT_FLUSHED" 0
diff_reset "after P"

: >"$D/stop"
wait "$srv_co" || true
wait "$srv_in" || true

step "every flow of I, S and P against R (seed $SEED)"
python3 -S "$DIFF_TOOL" compare "$SEED" "$D" "$LAB_NAT_IP6" "$LAB_GW_WAN6_IP" "$LAB_CGW_LAN_IP6" I S P \
  >"$D/compare.out" 2>&1 || true
while IFS= read -r line; do
  case $line in
    "ok "*) ok "${line#ok }" ;;
    "FAIL "*) fail "${line#FAIL }" ;;
    "note "*) echo "   ${line#note }" ;;
    *) echo "   $line" ;;
  esac
done <"$D/compare.out"
expect_gt "the comparison ran (checks printed)" "$(grep -c '^ok \|^FAIL ' "$D/compare.out" || true)" 0
finish
