#!/bin/bash
# Port-restricted out-policies. In policy mode the LWT reroute's xfrm lookup carries no ports
# (docs/datapath.md, "Kernel path"), so a LAN flow translated for `proto tcp dport 443` would miss
# that policy after the translation (or meet another one). The kernel's ACQUIRE is the oracle:
# - 172.31.5.0/24 tcp/443 alone: attach names the policy as not translated in one line and adds
#   no route for its destination; a LAN flow to it gets no ACQUIRE, exactly as without ipsnat,
#   is not counted as translated, and its cleartext never reaches the WAN (the guard drops it);
# - 172.31.6.0/24: tcp/22 (priority 100) ahead of a port-less policy (priority 200): port 22 is
#   not translated (after the reroute it would meet the port-less policy: another SA); port 80 is,
#   and its ACQUIRE names the port-less policy;
# - 172.31.9.0/24 without ports keeps working: its ACQUIRE names the translated source;
# - `ipsnat policies` says which policy policy mode leaves untranslated, and why.
# Route mode: the translating device's egress comes before the device's own lookup, which carries
# the ports: the tcp/443 flow leaves translated.
# Addresses: LAN 10.77.1.0/24, virtual IP 10.99.0.2, uplink 203.0.113.2, no SA anywhere.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario

t_gateway "$lan" "$gw" "$wan" uplink=eth0 host=10.77.1.10/24 gw_lan=10.77.1.1 gw_wan=203.0.113.2/24 \
  wan=203.0.113.1 remote=172.31.5.7 remote_net=default
ip -n "$wan" addr add 172.31.6.7/32 dev lo
ip -n "$wan" addr add 172.31.9.7/32 dev lo
# out_policy DST PRIORITY REQID [SELECTOR...]: an out-policy from the virtual IP, no SA.
out_policy() {
  ip -n "$gw" xfrm policy add src 10.99.0.2/32 dst "$1" "${@:4}" dir out priority "$2" \
    tmpl src 203.0.113.2 dst 198.51.100.9 proto esp reqid "$3" mode tunnel
}
out_policy 172.31.5.0/24 100 7 proto tcp dport 443
out_policy 172.31.6.0/24 100 9 proto tcp dport 22
out_policy 172.31.6.0/24 200 10
out_policy 172.31.9.0/24 100 8
t_wait_links_up "$lan" "$gw" "$wan"

# syn DST PORT: one connection attempt from the LAN host (one SYN: it leaves within connect(),
# the first retransmission would come 1 s later).
syn() {
  ip netns exec "$lan" timeout 3 python3 -c '
import socket, sys
s = socket.socket()
s.settimeout(0.2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    pass
' "$1" "$2" || true
}
# probe NAME DST PORT: syn with the gateway's ACQUIREs in $tmp/NAME.acq and the WAN's view of
# DST in $tmp/NAME.wan (each larval state from an earlier probe flushed first).
probe() {
  local mon cap
  ip -n "$gw" xfrm state flush
  timeout 10 ip -n "$gw" xfrm monitor acquire >"$tmp/$1.acq" &
  mon=$!
  timeout 10 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode "host $2" >"$tmp/$1.wan" 2>"$tmp/$1.wan.err" &
  cap=$!
  T_PIDS+=("$mon" "$cap")
  t_wait_subscribed "$mon"
  t_wait_capturing "$tmp/$1.wan.err"
  syn "$2" "$3"
  sleep 0.5
  kill "$mon" "$cap" 2>/dev/null || true
  wait "$mon" "$cap" 2>/dev/null || true
}
acquires() { grep -c '^acquire' "$tmp/$1.acq" || true; }
counter() {
  t_in "$gw" "$IPSNAT" -j status |
    t_json "sum(c['packets'] for c in s['counters'] if c['reason'] == '$1')"
}

# Without ipsnat: the LAN's source matches no policy, so no ACQUIRE, and the flow leaves as it is.
probe plain-443 172.31.5.7 443
expect_ok "without ipsnat: no ACQUIRE for the tcp/443 flow" test "$(acquires plain-443)" == 0
expect_ok "without ipsnat: the tcp/443 flow leaves in cleartext" grep -q '10.77.1.10.[0-9]* > 172.31.5.7.443' "$tmp/plain-443.wan"

out=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1)
# The host process runs and the namespace has no other rule: the routes go to the main table.
expect_ok "attach succeeds: its routes in the main table, no rule" \
  bash -c "ip -n $gw route show proto 165 | grep -q 'lwt_snat_xmit' && ! ip -n $gw rule | grep -q 'lookup 421'"
refusal=$(grep 'policy [0-9]* (10.99.0.2/32 -> 172.31.5.0/24' <<<"$out" || true)
one_refusal() { [[ $(wc -l <<<"$refusal") == 1 ]] && grep -q 'not translated in policy mode.*ports' <<<"$refusal"; }
expect_ok "attach names the tcp/443 policy in one line: not translated, ports ($refusal)" one_refusal
expect_ok "and the tcp/22 policy" grep -q 'policy [0-9]* (10.99.0.2/32 -> 172.31.6.0/24 tcp dport 22) .*not translated' <<<"$out"
expect_ok "no LWT route for the tcp/443 policy's destination (in any table)" \
  bash -c "! ip -n $gw route show table all proto 165 | grep -q '172.31.5.0/24'"
expect_ok "no companion policy for it" bash -c "! ip -n $gw xfrm policy | grep -q 'src 172.31.5.0/24'"
expect_ok "the port-less policies keep their routes" \
  bash -c "ip -n $gw route show proto 165 | grep -q '^172.31.6.0/24 .*lwt_snat_xmit.* via 203.0.113.1 dev eth0' &&
           ip -n $gw route show proto 165 | grep -q '^172.31.9.0/24 .*lwt_snat_xmit.* via 203.0.113.1 dev eth0'"
pol=$(t_in "$gw" "$IPSNAT" policies)
policies_say_why() { grep -A2 'src 10.99.0.2/32 dst 172.31.5.0/24 proto tcp' <<<"$pol" | grep -q 'policy mode: not translated.*ports'; }
expect_ok "ipsnat policies: the tcp/443 policy is not translated in policy mode, and why" policies_say_why

probe port-443 172.31.5.7 443
expect_ok "tcp/443: no ACQUIRE, as without ipsnat" test "$(acquires port-443)" == 0
expect_ok "tcp/443: not counted as translated" test "$(counter xlate-snat)" == 0
expect_ok "tcp/443: no cleartext on the WAN (the guard drops it)" bash -c "! grep -q 'IP ' '$tmp/port-443.wan'"
expect_ok "tcp/443: counted drop-leak-guard" test "$(counter drop-leak-guard)" -ge 1

probe port-22 172.31.6.7 22
expect_ok "tcp/22 ahead of a port-less policy: no ACQUIRE (the port-less policy's SA is not its)" \
  test "$(acquires port-22)" == 0
expect_ok "tcp/22: not counted as translated" test "$(counter xlate-snat)" == 0
expect_ok "tcp/22: counted pass-reroute-ports at the LWT hook" test "$(counter pass-reroute-ports)" -ge 1
expect_ok "tcp/22: no cleartext on the WAN" bash -c "! grep -q 'IP ' '$tmp/port-22.wan'"

probe port-80 172.31.6.7 80
expect_ok "tcp/80 to the same destination: the ACQUIRE names the translated source and the port-less policy" \
  bash -c "grep -q 'sel src 10.99.0.2/32 dst 172.31.6.7/32 proto tcp' '$tmp/port-80.acq' && grep -q 'priority 200' '$tmp/port-80.acq'"
probe other 172.31.9.7 443
expect_ok "another destination's port-less policy keeps working (ACQUIRE for 10.99.0.2)" \
  grep -q 'sel src 10.99.0.2/32 dst 172.31.9.7/32 proto tcp' "$tmp/other.acq"
expect_ok "nothing names the untranslated source" bash -c "! cat $tmp/*.acq | grep -q 'src 10.77.1.10'"
expect_ok "the two translated flows are counted" test "$(counter xlate-snat)" -ge 2
((FAILS)) && { echo "$out"; echo "$pol"; for f in "$tmp"/*; do echo "== $f"; head -20 "$f"; done; } >&2

expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0

# Route mode: the device kind only selects the mode, so eth0 is given --mode route; the tcp/443
# policy is translated at its egress (an xfrm interface's own lookup then carries the ports).
out=$(t_in "$gw" "$IPSNAT" attach eth0 --mode route 2>&1)
expect_ok "route mode: no refusal" test -z "$(grep 'not translated in policy mode' <<<"$out" || true)"
probe route-443 172.31.5.7 443
expect_ok "route mode: the tcp/443 flow leaves translated" grep -q '10.99.0.2.[0-9]* > 172.31.5.7.443' "$tmp/route-443.wan"
probe route-80 172.31.5.7 80
expect_ok "route mode: tcp/80 to it is not the policy's: untranslated" grep -q '10.77.1.10.[0-9]* > 172.31.5.7.80' "$tmp/route-80.wan"
((FAILS)) && { echo "$out"; cat "$tmp"/route-*; } >&2
expect_ok "detach (route mode)" t_in "$gw" "$IPSNAT" detach eth0
finish
