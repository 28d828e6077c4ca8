#!/bin/bash
# Where policy mode's routes go (docs/attach.md): with a host process re-planning the device and no
# other routing rule in the namespace, `ipsnat attach eth0` puts the LWT route and the blackhole in
# the main table without a rule; another tool's rule (strongSwan's `priority 220 lookup 220`) or a
# main route inside the policy's destination moves them to table 421 behind rule 210, and they come
# back when it goes. The oracle that the LAN's flows are still translated after each move is the
# kernel's own ACQUIRE: only a packet the LWT route translated matches the out-policy
# 10.20.30.2/32 -> 10.0.0.0/8 (no SA), so an ACQUIRE naming 10.20.30.2 proves the LWT route won the
# lookup. With ipsnat's routes left in main, table 220's route (rule 220 comes before main) or
# the main route 10.9.0.0/16 (longer prefix) would win, and no ACQUIRE would come: the controls
# show it, the host process stopped (SIGSTOP) so that it cannot move them yet. In the main table
# ipsnat's routes carry metric 65535, so an operator can add a route for the same prefix (the routes
# then move too), and a route or rule of ipsnat's that someone deletes is put back. Then:
# detach restores everything; --no-daemon, --table and a pre-existing foreign rule keep table + rule;
# IPv6 is placed on its own (an IPv6 rule moves only the IPv6 routes).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
t_wait_links_up "$lan" "$gw" "$wan"
before=$(t_snapshot "$gw")

# ---- helpers ----------------------------------------------------------------------------------
rt() { ip -n "$gw" "$@"; }
# IPv4 routes of ipsnat (proto 165) in a table, and in all tables. (No `CMD | grep -q` below:
# under pipefail grep's early exit may fail CMD with SIGPIPE.)
own4() { rt -4 route show table "$1" proto 165; }
own4_all() { rt -4 route show table all proto 165; }
own6() { rt -6 route show table "$1" proto 165 2>/dev/null || true; }
own6_all() { rt -6 route show table all proto 165; }
lwt_in() { grep -q '^10.0.0.0/8 *encap bpf xmit lwt_snat_xmit.* via 200.2.2.1 dev eth0' <<<"$(own4 "$1")"; }
bh_in() { grep -q '^blackhole 10.20.30.2 ' <<<"$(own4 "$1")"; }
count4() { grep -c . <<<"$(own4_all)" || true; }
# The IPv4 rule priorities, one line ("0: 32766: 32767:" is the kernel's three).
rules4() { rt -4 rule show | awk '{printf "%s ", $1}' | sed 's/ $//'; }
rules6() { rt -6 rule show | awk '{printf "%s ", $1}' | sed 's/ $//'; }
kernel3() { test "$(rules4)" == "0: 32766: 32767:"; }
rule210() { grep -q "^210:.*lookup $1 proto 165" <<<"$(rt -4 rule show)"; }
# Placement predicates for t_wait_for: both routes in table T (only there), rule 210 -> T.
in_main4() { lwt_in main && bh_in main && [[ $(count4) == 2 ]] && kernel3; }
in_table4() { lwt_in "$1" && bh_in "$1" && [[ $(count4) == 2 ]] && [[ -z $(own4 main) ]] && rule210 "$1"; }
host_pid() {
  python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*@eth0.json")[0])).get("daemon_pid", 0))' \
    "$IPSNAT_STATE_DIR"
}
dump() {  # what the kernel holds and what the host process said, for a failed expectation
  {
    echo "--- ip route show table all proto 165"; own4_all
    echo "--- ip -6 route show table all proto 165"; own6_all
    echo "--- ip rule"; rt -4 rule show
    echo "--- ip -6 rule"; rt -6 rule show 2>/dev/null || true
    for f in "$IPSNAT_STATE_DIR"/*.log; do [[ -f $f ]] && { echo "--- $f"; tail -n 40 "$f"; }; done
  } >&2
}
_dumped=0
checkpoint() {  # dump once after new failures
  if ((FAILS > _dumped)); then dump; _dumped=$FAILS; fi
}
acquire_while() { t_acquires_while "$gw" "$lan" "$@"; }
# translated WHEN DST [SRC6 LANSRC]: the LAN host's ICMP and UDP flows to DST reach the xfrm lookup
# from the policy's address (IPv4: 10.20.30.2; IPv6: SRC6), never from a LAN address.
translated() {
  local when=$1 dst=$2 src=${3:-10.20.30.2} lansrc=${4:-192.168.1.} ping=ping icmp=icmp fam=AF_INET plen=32 a u
  local fails=$FAILS
  if [[ $dst == *:* ]]; then ping="ping -6" icmp=ipv6-icmp fam=AF_INET6 plen=128; fi
  # shellcheck disable=SC2086 # ping -6 is two words
  a=$(acquire_while $ping -c 1 -W 0.2 "$dst")
  u=$(acquire_while python3 -c "import socket; socket.socket(socket.$fam, socket.SOCK_DGRAM).sendto(b'x' * 64, ('$dst', 5000))")
  expect_ok "$when: an ACQUIRE for the LAN's ICMP flow to $dst names $src" \
    grep -q "sel src $src/$plen dst $dst/$plen proto $icmp" <<<"$a"
  expect_ok "$when: an ACQUIRE for the LAN's UDP flow to $dst names $src" \
    grep -q "sel src $src/$plen dst $dst/$plen proto udp" <<<"$u"
  expect_ok "$when: no ACQUIRE names a LAN address ($lansrc)" bash -c '! grep -qF "src $1" <<<"$2"' _ "$lansrc" "$a$u"
  ((FAILS > fails)) && printf '%s\n%s\n' "$a" "$u" >&2
  return 0
}

# not_translated WHEN DST: the control: the LAN host's ICMP flow to DST raises no ACQUIRE (it missed
# the LWT route: not translated, it matches no out-policy).
# at_wan DST CMD...: the ACQUIREs while the LAN host runs CMD (acquire_while), and into file
# $T_TMP/wan what of it the WAN side captured (IPv4 to or from DST on its eth1).
at_wan() {
  local dst=$1 cap
  shift
  timeout 10 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode "host $dst" >"$T_TMP/wan" 2>"$T_TMP/wan.err" &
  cap=$!
  T_PIDS+=("$cap")
  t_wait_capturing "$T_TMP/wan.err" || true
  acquire_while "$@"
  sleep 0.3
  kill "$cap" 2>/dev/null || true
  wait "$cap" 2>/dev/null || true
}
# The untranslated packet meets no policy, but the leak guard knows its translation is missing:
# nothing of it may reach the WAN in cleartext.
not_translated() {
  local a
  a=$(at_wan "$2" ping -c 1 -W 0.2 "$2")
  expect_ok "$1: no ACQUIRE for the LAN's flow to $2 (the control: the oracle can fail)" test -z "$a"
  [[ -z $a ]] || echo "$a" >&2
  expect_ok "$1: nothing of it reached the WAN in cleartext (the leak guard dropped it)" bash -c "! grep -q 'IP ' '$T_TMP/wan'"
}
# moved_in_order LOG FROM TO: in `ip monitor route rule` output LOG, ipsnat's first route added to
# table TO comes before its first route deleted from table FROM: the routes are in their new place
# before they leave the old one, so no packet meets neither (main-table routes name no table).
moved_in_order() {
  python3 - "$@" <<'PY'
import re, sys
log, frm, to = sys.argv[1:]
first_add = first_del = None
for i, line in enumerate(open(log)):
    deleted = line.startswith("Deleted ")
    body = line[len("Deleted "):] if deleted else line
    if "proto 165" not in body or re.match(r"\d+:", body):  # not ipsnat's, or a rule
        continue
    m = re.search(r" table (\S+)", body)
    table = m.group(1) if m else "main"
    if deleted and table == frm and first_del is None:
        first_del = i
    if not deleted and table == to and first_add is None:
        first_add = i
print(f"first add to {to}: line {first_add}, first delete from {frm}: line {first_del}")
sys.exit(0 if first_add is not None and first_del is not None and first_add < first_del else 1)
PY
}
# monitor_start LOG / monitor_stop: `ip monitor route rule` of the gateway into LOG.
monitor_start() {
  ip -n "$gw" monitor route rule >"$1" 2>/dev/null &
  mon_pid=$!
  T_PIDS+=("$mon_pid")
  sleep 0.2
}
monitor_stop() { sleep 0.3; kill "$mon_pid" 2>/dev/null || true; wait "$mon_pid" 2>/dev/null || true; }

# frozen CMD...: CMD while the host process is stopped (SIGSTOP; it re-plans once continued).
frozen() {
  kill -STOP "$pid"
  "$@" || true
  kill -CONT "$pid"
}

# ---- 1. a fresh gateway, attach with its host process: main table, no rule --------------------
t_tmpdir
# The WAN capture's own control: before attach the LAN's ping leaves in cleartext (no policy has
# its source), and the capture sees it.
at_wan 10.1.2.3 ping -c 1 -W 0.2 10.1.2.3 >/dev/null
expect_ok "before attach: the LAN's ping to 10.1.2.3 reaches the WAN in cleartext (the capture works)" \
  grep -q 'IP 192.168.1.10 > 10.1.2.3' "$T_TMP/wan"
step "1. attach eth0 (host process) on a namespace without rules"
dry=$(t_in "$gw" "$IPSNAT" attach eth0 --dry-run)
expect_ok "dry-run (host process) plans the LWT route in the main table" \
  grep -q '^  route 10.0.0.0/8 table main via 200.2.2.1 dev eth0 .*encap bpf xmit lwt_snat_xmit$' <<<"$dry"
plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the plan puts the LWT route in table main" \
  grep -q '^  route 10.0.0.0/8 table main via 200.2.2.1 dev eth0 .*encap bpf xmit lwt_snat_xmit$' <<<"$plan"
expect_ok "the plan puts the blackhole in table main" grep -q '^  route blackhole 10.20.30.2/32 table main metric 65535$' <<<"$plan"
expect_ok "the plan has no rule line" bash -c '! grep -q "^  rule" <<<"$1"' _ "$plan"
pid=$(host_pid)
expect_ok "the host process runs (pid $pid)" bash -c "tr '\0' ' ' </proc/$pid/cmdline | grep -q ' run --exit-when-detached'"
expect_ok "the kernel holds the LWT route in main (proto 165)" \
  bash -c "ip -n $gw route show table main proto 165 | grep -q '^10.0.0.0/8 *encap bpf xmit lwt_snat_xmit.* via 200.2.2.1 dev eth0 .*mtu 1412'"
expect_ok "and the blackhole 10.20.30.2 in main" bh_in main
expect_ok "nothing in table 421" test -z "$(own4 421)"
expect_eq "ipsnat's IPv4 routes in all tables" "$(count4)" 2
expect_eq "ip rule: exactly the kernel's three" "$(rules4)" "0: 32766: 32767:"
translated "routes in main" 10.1.2.3
checkpoint

# ---- 2. another tool's rule (strongSwan's table 220): routes move to 421 + rule 210 ------------
step "2. a foreign rule 220 and its table"
# The route first (a route event, no rule yet: the routes stay), then the rule: the rule event alone
# must move them.
rt route add 10.0.0.0/8 via 200.2.2.1 dev eth0 table 220
sleep 1
expect_ok "a route in table 220 without a rule leaves them in main" in_main4
# The control, the host process stopped: with the routes still in main, rule 220 sends the LAN's
# flow through table 220's plain route, untranslated. Continued, it re-plans on the queued event.
phase2_control() {
  rt rule add priority 220 table 220
  expect_ok "host process stopped: the routes are still in main behind rule 220" \
    bash -c "[[ -n \$(ip -n $gw route show table main proto 165) && -z \$(ip -n $gw route show table 421 2>/dev/null) ]]"
  not_translated "routes in main behind rule 220" 10.1.2.3
}
monitor_start "$T_TMP/move-to-421.log"
frozen phase2_control
expect_ok "within 10 s the host process moves them to table 421 behind rule 210" t_wait_for 10 in_table4 421
monitor_stop
expect_ok "added to table 421 before deleted from main" moved_in_order "$T_TMP/move-to-421.log" main 421
expect_ok "LWT route in table 421" lwt_in 421
expect_ok "blackhole in table 421" bh_in 421
expect_ok "no proto-165 route left in main" test -z "$(own4 main)"
expect_eq "ip rule: the kernel's three, ipsnat's 210 and the foreign 220" "$(rules4)" "0: 210: 220: 32766: 32767:"
expect_ok "the host process still runs" kill -0 "$pid"
translated "with rule 220 -> table 220" 10.1.2.3
# Rule 210 deleted by someone else (`ip rule del priority 210`): the host process puts it back.
rt rule del priority 210
expect_ok "rule 210 deleted: within 10 s the host process has put it back" t_wait_for 10 in_table4 421
translated "rule 210 put back" 10.1.2.3
checkpoint

# ---- 3. the foreign rule goes: back to main, rule 210 removed ----------------------------------
step "3. the foreign rule and its route removed"
rt route del 10.0.0.0/8 via 200.2.2.1 dev eth0 table 220
sleep 1
expect_ok "while rule 220 stays they stay in 421" in_table4 421
monitor_start "$T_TMP/move-to-main.log"
rt rule del priority 220 table 220
expect_ok "within 10 s they are back in main, rule 210 gone" t_wait_for 10 in_main4
monitor_stop
expect_ok "added to main before deleted from table 421" moved_in_order "$T_TMP/move-to-main.log" 421 main
expect_ok "nothing in table 421" test -z "$(own4 421)"
expect_eq "ip rule: exactly the kernel's three" "$(rules4)" "0: 32766: 32767:"
translated "back in main" 10.1.2.3
checkpoint

# ---- 4. a main route inside the policy's destination: 421 + rule, and back ---------------------
step "4. a foreign main route 10.9.0.0/16 inside 10.0.0.0/8"
translated "before 10.9.0.0/16 (routes in main)" 10.9.1.1
phase4_control() {
  rt route add 10.9.0.0/16 via 200.2.2.1 dev eth0
  not_translated "host process stopped, routes in main beside 10.9.0.0/16" 10.9.1.1
}
frozen phase4_control
expect_ok "within 10 s they move to table 421 behind rule 210" t_wait_for 10 in_table4 421
expect_ok "no proto-165 route left in main" test -z "$(own4 main)"
# In main, 10.9.0.0/16 (longer) would beat the LWT route for 10.9.1.1: translated only behind rule 210.
translated "with 10.9.0.0/16 in main" 10.9.1.1
translated "with 10.9.0.0/16 in main" 10.1.2.3
rt route del 10.9.0.0/16 via 200.2.2.1 dev eth0
expect_ok "removed: within 10 s they are back in main, rule 210 gone" t_wait_for 10 in_main4
expect_eq "ip rule: exactly the kernel's three" "$(rules4)" "0: 32766: 32767:"
rt route add blackhole 10.9.0.0/16
expect_ok "a foreign blackhole 10.9.0.0/16 moves them too" t_wait_for 10 in_table4 421
rt route del blackhole 10.9.0.0/16
expect_ok "removed: back in main" t_wait_for 10 in_main4
translated "after the foreign routes went" 10.1.2.3
checkpoint

# ---- 4b. an operator's route for the policy's own prefix; an operator deleting ipsnat's --------
step "4b. an operator adds and deletes routes for 10.0.0.0/8 itself"
# ipsnat's main-table routes carry metric 65535: an operator's route for the same prefix is another
# route (at metric 0 it would be "File exists"), and the host process moves ipsnat's behind rule 210.
expect_ok "the LWT route and the blackhole in main carry metric 65535" \
  bash -c "[[ \$(ip -n $gw route show table main proto 165 | grep -c ' metric 65535 ') == 2 ]]"
expect_ok "an operator's ip route add 10.0.0.0/8 via 200.2.2.1 dev eth0 succeeds" \
  rt route add 10.0.0.0/8 via 200.2.2.1 dev eth0
expect_ok "within 10 s the host process moves ipsnat's routes behind rule 210" t_wait_for 10 in_table4 421
translated "beside the operator's 10.0.0.0/8 in main" 10.1.2.3
expect_ok "the operator deletes their route" rt route del 10.0.0.0/8 via 200.2.2.1 dev eth0 proto boot
expect_ok "within 10 s ipsnat's routes are back in main" t_wait_for 10 in_main4
# `ip route del 10.0.0.0/8` with no other route of that prefix deletes ipsnat's LWT route: the
# control (host process stopped) shows the flow untranslated; continued, it puts the route back.
phase4b_control() {
  rt route del 10.0.0.0/8
  not_translated "host process stopped, ipsnat's LWT route deleted" 10.1.2.3
}
frozen phase4b_control
expect_ok "within 10 s the host process has put the LWT route back in main" t_wait_for 10 in_main4
translated "the LWT route put back" 10.1.2.3
checkpoint

# ---- 4c. the uplink goes down and comes back ----------------------------------------------------
step "4c. eth0 down, then up with its default route re-added (as DHCP would)"
default_gw() { rt route show default | awk '/^default via/ {print $3; exit}'; }
gw_addr=$(default_gw)
rt link set eth0 down
expect_ok "eth0 down: the kernel flushed ipsnat's LWT route (through eth0) with the default route" \
  t_wait_for 5 bash -c "! ip -n $gw route show table main proto 165 | grep -q '^10.0.0.0/8'"
rt link set eth0 up
t_wait_links_up "$gw"
rt route add default via "$gw_addr" dev eth0
expect_ok "eth0 up, its default route back: within 10 s ipsnat's routes are in main as before" t_wait_for 10 in_main4
translated "after the uplink came back" 10.1.2.3
checkpoint

# ---- 5. detach: everything as before ----------------------------------------------------------
step "5. detach"
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "the host process is gone (at most 10 s)" t_wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
expect_ok "no proto-165 route in any table" test -z "$(own4_all)"
expect_ok "no rule 210" bash -c "! ip -n $gw rule | grep -q '^210:'"
after=$(t_snapshot "$gw")
expect_ok "detach restored links, qdiscs, filters, routes, rules and policies" test "$before" == "$after"
[[ "$before" == "$after" ]] || diff <(echo "$before") <(echo "$after") >&2 || true

# ---- 6. no host process, --table, a pre-existing rule: table + rule ----------------------------
step "6. --no-daemon, --table 430, a pre-existing foreign rule"
plan=$(t_in "$gw" "$IPSNAT" attach eth0 --no-daemon 2>&1) || fail "attach --no-daemon failed: $plan"
expect_ok "--no-daemon: the plan names table 421" grep -q '^  route 10.0.0.0/8 table 421 via' <<<"$plan"
expect_ok "--no-daemon: the plan names rule 210" grep -q '^  rule priority 210 lookup 421$' <<<"$plan"
expect_ok "--no-daemon: routes in table 421 behind rule 210, nothing in main" in_table4 421
expect_eq "--no-daemon: no host process recorded" "$(host_pid)" 0
translated "--no-daemon (table 421)" 10.1.2.3
# Attached again with another table: the rule follows it (one rule 210, looking up the new table).
expect_ok "re-attach --no-daemon --table 430" t_in "$gw" "$IPSNAT" attach eth0 --no-daemon --table 430 -q
expect_ok "re-attach: routes in table 430 behind rule 210 lookup 430" in_table4 430
expect_eq "re-attach: one rule 210 (the one for table 430)" "$(rt rule show | grep '^210:' | sed 's/\s\+/ /g')" \
  "210: from all lookup 430 proto 165"
expect_ok "re-attach: nothing left in table 421" test -z "$(own4 421)"
translated "--no-daemon, re-attached with table 430" 10.1.2.3
expect_ok "detach (--no-daemon)" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "nothing left" bash -c "[[ -z \$(ip -n $gw route show table all proto 165) ]] && ! ip -n $gw rule | grep -q '^210:'"

plan=$(t_in "$gw" "$IPSNAT" attach eth0 --table 430 2>&1) || fail "attach --table 430 failed: $plan"
expect_ok "--table 430: the plan names table 430" grep -q '^  route 10.0.0.0/8 table 430 via' <<<"$plan"
expect_ok "--table 430: routes in table 430 behind rule 210 lookup 430, nothing in main" in_table4 430
pid=$(host_pid)
expect_ok "--table 430: the host process runs (pid $pid)" kill -0 "$pid"
# The host process re-plans (a later out-policy gets its route) and keeps table 430.
rt xfrm policy add src 10.20.30.2/32 dst 172.30.0.0/16 dir out priority 379519 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
has430() { grep -q '^172.30.0.0/16 *encap bpf' <<<"$(own4 430)"; }
expect_ok "--table 430: a re-plan puts a later policy's route in table 430" t_wait_for 10 has430
expect_ok "--table 430: still nothing in main, still rule 210 lookup 430" \
  bash -c "[[ -z \$(ip -n $gw route show table main proto 165) ]] && ip -n $gw rule | grep -q '^210:.*lookup 430 proto 165'"
rt xfrm policy del src 10.20.30.2/32 dst 172.30.0.0/16 dir out
expect_ok "--table 430: the later policy's route goes with it" t_wait_for 10 bash -c "! ip -n $gw route show table 430 | grep -q 172.30"
translated "--table 430" 10.1.2.3
expect_ok "detach (--table 430)" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "the host process is gone" t_wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
expect_ok "nothing left" bash -c "[[ -z \$(ip -n $gw route show table all proto 165) ]] && ! ip -n $gw rule | grep -q '^210:'"

rt rule add priority 300 fwmark 7 table 300
plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach with a foreign rule failed: $plan"
expect_ok "a pre-existing foreign rule: the plan names table 421 and rule 210" \
  bash -c 'grep -q "^  route 10.0.0.0/8 table 421 via" <<<"$1" && grep -q "^  rule priority 210 lookup 421$" <<<"$1"' _ "$plan"
expect_ok "a pre-existing foreign rule: routes in table 421 behind rule 210, nothing in main" in_table4 421
pid=$(host_pid)
translated "a pre-existing fwmark rule" 10.1.2.3
expect_ok "detach (foreign rule)" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "the host process is gone" t_wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
rt rule del priority 300 fwmark 7 table 300
expect_ok "everything as before phase 1" test "$before" == "$(t_snapshot "$gw")"
checkpoint

# ---- 7. IPv6 is placed on its own -------------------------------------------------------------
step "7. dual stack: an IPv6 rule moves only the IPv6 routes"
for ns in "$lan" "$gw" "$wan"; do
  t_in "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
    net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
done
t_in "$lan" sysctl -qw net.ipv6.conf.lan1.disable_ipv6=0
t_in "$gw" sysctl -qw net.ipv6.conf.lo.disable_ipv6=0 net.ipv6.conf.lan0.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 net.ipv6.conf.all.forwarding=1
t_in "$wan" sysctl -qw net.ipv6.conf.eth1.disable_ipv6=0
ip -n "$lan" addr add fd00:61:1::a/64 dev lan1 nodad
ip -n "$gw" addr add fd00:61:1::1/64 dev lan0 nodad
ip -n "$gw" addr add 2001:db8:ff61::1/64 dev eth0 nodad
ip -n "$wan" addr add 2001:db8:ff61::2/64 dev eth1 nodad
ip -n "$lan" -6 route add default via fd00:61:1::1
ip -n "$gw" -6 route add default via 2001:db8:ff61::2
T_WAN6=2001:db8:ff61
t_out6 2 379519 2001:db8:61::5/128 2001:db8:e61::/48
lwt6_in() { grep -q '^2001:db8:e61::/48 .*encap bpf xmit lwt_snat_xmit.* via 2001:db8:ff61::2 dev eth0' <<<"$(own6 "$1")"; }
bh6_in() { grep -q '^blackhole 2001:db8:61::5 ' <<<"$(own6 "$1")"; }
count6() { grep -c . <<<"$(own6_all)" || true; }
rule6_210() { grep -q "^210:.*lookup 421 proto 165" <<<"$(rt -6 rule show)"; }
in_main6() { lwt6_in main && bh6_in main && [[ $(count6) == 2 ]] && [[ $(rules6) == "0: 32766:" ]]; }
in_table6() { lwt6_in 421 && bh6_in 421 && [[ $(count6) == 2 ]] && [[ -z $(own6 main) ]] && rule6_210; }
t_in "$lan" ping -6 -c 1 -W 2 fd00:61:1::1 >/dev/null 2>&1 || true  # neighbours resolved
plan=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1) || fail "attach (dual stack) failed: $plan"
echo "$plan"
expect_ok "dual stack: the plan puts the IPv6 LWT route in table main" \
  grep -q '^  route 2001:db8:e61::/48 table main via 2001:db8:ff61::2 dev eth0 .*encap bpf xmit lwt_snat_xmit$' <<<"$plan"
expect_ok "dual stack: the plan has no rule line" bash -c '! grep -q "^  rule" <<<"$1"' _ "$plan"
pid=$(host_pid)
expect_ok "dual stack: IPv4 routes in main, only the kernel's rules" in_main4
expect_ok "dual stack: IPv6 routes in main, only the kernel's IPv6 rules" in_main6
translated "dual stack, IPv6 in main" 2001:db8:e61::1 2001:db8:61::5 fd00:61:1:
rt -6 route add 2001:db8:e61::/48 via 2001:db8:ff61::2 dev eth0 table 220
rt -6 rule add priority 220 table 220
expect_ok "an IPv6 rule: within 10 s the IPv6 routes move to table 421 behind ip -6 rule 210" t_wait_for 10 in_table6
expect_eq "ip -6 rule: the kernel's two, ipsnat's 210, the foreign 220" "$(rules6)" "0: 210: 220: 32766:"
expect_ok "the IPv4 routes stay in main, ip rule only the kernel's three" in_main4
checkpoint
expect_ok "nothing IPv4 in table 421" test -z "$(own4 421)"
translated "IPv6 behind rule 220 -> table 220" 2001:db8:e61::1 2001:db8:61::5 fd00:61:1:
translated "IPv4 still in main" 10.1.2.3
rt -6 rule del priority 220 table 220
rt -6 route del 2001:db8:e61::/48 via 2001:db8:ff61::2 dev eth0 table 220
expect_ok "the IPv6 rule gone: within 10 s the IPv6 routes are back in main, ip -6 rule 210 gone" t_wait_for 10 in_main6
expect_ok "and the IPv4 routes are still in main" in_main4
# An operator's IPv6 route for the same prefix: at ipsnat's metric it would be "File exists".
expect_ok "an operator's ip -6 route add 2001:db8:e61::/48 via 2001:db8:ff61::2 succeeds" \
  rt -6 route add 2001:db8:e61::/48 via 2001:db8:ff61::2 dev eth0
expect_ok "within 10 s the IPv6 routes move to table 421 behind ip -6 rule 210" t_wait_for 10 in_table6
translated "IPv6 beside the operator's route" 2001:db8:e61::1 2001:db8:61::5 fd00:61:1:
rt -6 route del 2001:db8:e61::/48 via 2001:db8:ff61::2 dev eth0 proto boot
expect_ok "the operator's IPv6 route deleted: back in main" t_wait_for 10 in_main6
# And the other way: an IPv4 rule moves only the IPv4 routes.
rt rule add priority 220 table 220
expect_ok "an IPv4 rule: within 10 s the IPv4 routes move to table 421 behind rule 210" t_wait_for 10 in_table4 421
expect_ok "the IPv6 routes stay in main" in_main6
rt rule del priority 220 table 220
expect_ok "the IPv4 rule gone: back in main" t_wait_for 10 in_main4
expect_ok "detach (dual stack)" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "the host process is gone" t_wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
expect_ok "no proto-165 route of either family, no rule 210" \
  bash -c "[[ -z \$(ip -n $gw -4 route show table all proto 165) && -z \$(ip -n $gw -6 route show table all proto 165) ]] && ! ip -n $gw -4 rule | grep -q '^210:' && ! ip -n $gw -6 rule | grep -q '^210:'"
checkpoint
finish
