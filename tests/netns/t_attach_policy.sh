#!/bin/bash
# Policy-based IPsec on this kernel (no ESP): `ipsnat attach eth0` installs the LWT route,
# blackhole and companion policies, the routes in the main table without a rule (the host process
# runs, the namespace has no other rule); a LAN flow then reaches the xfrm lookup already
# translated (the kernel's ACQUIRE names 10.20.30.2, not 192.168.1.10) and nothing leaves in cleartext;
# --dry-run changes nothing; detach restores every table exactly; bad invocations fail in one line.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway

t_wait_links_up "$lan" "$gw" "$wan"
before=$(t_snapshot "$gw")

plan=$(t_in "$gw" "$IPSNAT" attach eth0 --dry-run)
expect_ok "dry-run names the LWT route in the main table" grep -q 'route 10.0.0.0/8 table main via 200.2.2.1 .*encap bpf xmit lwt_snat_xmit' <<<"$plan"
expect_ok "dry-run names the blackhole in the main table" grep -q '^  route blackhole 10.20.30.2/32 table main metric 65535$' <<<"$plan"
expect_ok "dry-run names no rule" bash -c "! grep -q '^  rule ' <<<\"\$1\"" _ "$plan"
expect_ok "dry-run names the companion fwd policy" grep -q 'src 10.0.0.0/8 dst 192.168.1.0/24 dir fwd' <<<"$plan"
expect_ok "dry-run -j is JSON with the mode" \
  bash -c "t=\$(nsenter --net=/run/netns/$gw $IPSNAT -j attach eth0 --dry-run) && python3 -c 'import json,sys; assert json.loads(sys.argv[1])[\"mode\"]==\"policy\"' \"\$t\""
expect_ok "dry-run changed nothing" test "$before" == "$(t_snapshot "$gw")"
expect_ok "dry-run created no pins" test ! -e "$IPSNAT_PIN_ROOT"

expect_ok "attach succeeds" t_in "$gw" "$IPSNAT" attach eth0
expect_ok "LWT route in the main table" \
  bash -c "ip -n $gw route show table main | grep -q '^10.0.0.0/8 *encap bpf xmit lwt_snat_xmit.* via 200.2.2.1 dev eth0 proto 165 metric 65535 mtu 1412'"
expect_ok "blackhole for the non-local NAT address in the main table" \
  bash -c "ip -n $gw route show table main | grep -q '^blackhole 10.20.30.2 proto 165'"
expect_ok "nothing in table 421" bash -c "[[ -z \$(ip -n $gw route show table 421 2>/dev/null) ]]"
expect_ok "no rule: only the kernel's three" \
  bash -c "[[ \$(ip -n $gw rule | cut -d: -f1 | tr '\n' ' ') == '0 32766 32767 ' ]]"
expect_ok "companion fwd and in policies" \
  bash -c "[[ \$(ip -n $gw xfrm policy | grep -A1 'src 10.0.0.0/8 dst 192.168.1.0/24' | grep -c 'dir \(fwd\|in\)') == 2 ]]"
expect_ok "guard on eth0 egress" bash -c "tc -n $gw filter show dev eth0 egress | grep -q 'handle 0x1a5.*tc_guard_egress'"
expect_ok "reverse on eth0 ingress" bash -c "tc -n $gw filter show dev eth0 ingress | grep -q 'handle 0x1a5.*tc_rev_ingress'"
expect_ok "pin root is 0700" test "$(stat -c %a "$IPSNAT_PIN_ROOT")" == 700
expect_ok "pinned maps are 0600" bash -c "[[ -z \$(find $IPSNAT_PIN_ROOT -type f ! -perm 600) ]]"
expect_ok "programs pinned per device" bash -c "ls $IPSNAT_PIN_ROOT/dev/*@eth0/lwt_snat_xmit >/dev/null"
expect_ok "state file is 0600" bash -c "[[ \$(stat -c %a $IPSNAT_STATE_DIR/*@eth0.json) == 600 ]]"

# The LAN host's flows must reach the xfrm lookup translated: the ACQUIRE names 10.20.30.2.
acq=$(mktemp)
timeout 10 ip -n "$gw" xfrm monitor acquire >"$acq" &
mon=$!
T_PIDS+=("$mon")
leak=$(mktemp)
timeout 10 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode 'host 10.0.0.1' >"$leak" 2>"$leak.err" &
T_PIDS+=("$!")
t_wait_subscribed "$mon"
t_wait_capturing "$leak.err"
ip netns exec "$lan" ping -c 2 -W 1 10.0.0.1 >/dev/null 2>&1 || true
# One ACQUIRE per SA while its larval state lives: drop that state so the UDP flow asks again.
ip -n "$gw" xfrm state flush
# One datagram (no answer comes: no SA).
ECHO_PEER_TIMEOUT=0.2 ip netns exec "$lan" python3 "$IPSNAT_SRC/tests/netns/echo_peer.py" client udp 10.0.0.1 5000 64 >/dev/null 2>&1 || true
sleep 1
kill "$mon" 2>/dev/null || true
wait "$mon" 2>/dev/null || true
expect_ok "an ACQUIRE for the translated ICMP flow" grep -q 'sel src 10.20.30.2/32 dst 10.0.0.1/32 proto icmp' "$acq"
# The LWT reroute's flow carries no ports (docs/datapath.md, "Kernel path"): the selector says dport 0.
expect_ok "an ACQUIRE for the translated UDP flow" grep -q 'sel src 10.20.30.2/32 dst 10.0.0.1/32 proto udp' "$acq"
expect_ok "no ACQUIRE names the untranslated source" bash -c "! grep -q 'src 192.168.1.10' '$acq'"
expect_ok "nothing reached the WAN in cleartext" bash -c "! grep -q 'IP ' '$leak'"
((FAILS)) && cat "$acq" "$leak" >&2
rm -f "$acq" "$leak" "$leak.err"

# The host process started by attach (ipsnat run) keeps up with the SPD: a policy IKE adds later
# gets its route.
pid=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*@eth0.json")[0]))["daemon_pid"])' "$IPSNAT_STATE_DIR")
expect_ok "the host process runs: ipsnat run (pid $pid)" bash -c "tr '\0' ' ' </proc/$pid/cmdline | grep -q ' run --exit-when-detached'"
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 172.30.0.0/16 dir out priority 379519 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
for _ in $(seq 150); do ip -n "$gw" route show proto 165 | grep -q '^172.30.0.0/16' && break; sleep 0.1; done
expect_ok "a later out-policy gets its LWT route (main table)" \
  bash -c "ip -n $gw route show table main | grep -q '^172.30.0.0/16 *encap bpf xmit lwt_snat_xmit.* via 200.2.2.1 dev eth0 proto 165'"
expect_ok "still no rule" bash -c "! ip -n $gw rule | grep -q 'lookup 421'"
ip -n "$gw" xfrm policy del src 10.20.30.2/32 dst 172.30.0.0/16 dir out
for _ in $(seq 150); do ip -n "$gw" route show table all proto 165 | grep -q '^172.30.0.0/16' || break; sleep 0.1; done
expect_ok "and loses it with the policy" bash -c "! ip -n $gw route show table all proto 165 | grep -q '172.30.0.0/16'"

expect_ok "attach again (reconcile) succeeds" t_in "$gw" "$IPSNAT" attach eth0
expect_ok "still exactly two companions" \
  bash -c "[[ \$(ip -n $gw xfrm policy | grep -c 'src 10.0.0.0/8 dst 192.168.1.0/24') == 2 ]]"
expect_ok "still no rule" bash -c "! ip -n $gw rule | grep -q 'lookup 421'"
expect_ok "still one LWT route and one blackhole, in the main table" \
  bash -c "[[ \$(ip -n $gw route show table all proto 165 | grep -c '^10.0.0.0/8\\|^blackhole 10.20.30.2') == 2 &&
             \$(ip -n $gw route show proto 165 | grep -c '^10.0.0.0/8\\|^blackhole 10.20.30.2') == 2 ]]"

# Something ipsnat added disappeared meanwhile (an operator, a crash between record and apply):
# detach still removes the rest and succeeds.
ip -n "$gw" route del blackhole 10.20.30.2 table main proto 165
ip -n "$gw" xfrm policy del src 10.0.0.0/8 dst 192.168.1.0/24 dir in
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "the host process is gone" bash -c "! kill -0 $pid 2>/dev/null"
after=$(t_snapshot "$gw")
expect_ok "detach restored links, qdiscs, filters, routes, rules and policies" test "$before" == "$after"
[[ "$before" == "$after" ]] || diff <(echo "$before") <(echo "$after") >&2 || true
expect_ok "program pins removed" bash -c "[[ -z \$(ls $IPSNAT_PIN_ROOT/dev) ]]"

# Bad input: one line each.
one_line() { [[ $(wc -l <<<"$1") == 1 ]] && grep -q "$2" <<<"$1"; }
err=$(t_in "$gw" "$IPSNAT" detach eth0 2>&1) && fail "second detach should fail" || true
expect_ok "second detach: not attached" one_line "$err" 'not attached to "eth0"'
err=$(t_in "$gw" "$IPSNAT" attach nosuch0 2>&1) && fail "attach nosuch0 should fail" || true
expect_ok "unknown device" one_line "$err" 'cannot find device "nosuch0"'
ip -n "$gw" xfrm policy flush
flushed=$(t_snapshot "$gw")
err=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) && fail "attach without policies should fail" || true
expect_ok "device with no policies" one_line "$err" 'no IPsec out-policy concerns "eth0"'
err=$(t_in "$gw" setpriv --inh-caps=-all --bounding-set=-all "$IPSNAT" attach eth0 2>&1) && fail "attach without caps should fail" || true
expect_ok "no capabilities: names CAP_NET_ADMIN" one_line "$err" 'missing capability CAP_NET_ADMIN'
err=$(t_in "$gw" capsh --drop=cap_bpf,cap_sys_admin -- -c "$IPSNAT attach eth0 --allow-empty" 2>&1) && fail "attach without CAP_BPF should fail" || true
expect_ok "no CAP_BPF: named" one_line "$err" 'missing capability CAP_BPF'
err=$(ip netns exec "$gw" "$IPSNAT" attach eth0 --allow-empty 2>&1) && fail "attach under ip netns exec should fail" || true
expect_ok "ip netns exec: says why" one_line "$err" 'is not a BPF filesystem'
expect_ok "failed attaches changed nothing" test "$flushed" == "$(t_snapshot "$gw")"
finish
