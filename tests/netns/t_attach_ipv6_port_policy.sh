#!/bin/bash
# Port-restricted IPv6 out-policies in policy mode. After the LWT reroute the kernel's xfrm lookup
# carries no ports (docs/datapath.md, "Kernel path"): a NAT66 rule taken from such a policy would
# translate a destination's flows to an address no policy then covers — a black hole. No SA; the
# kernel's ACQUIRE names the policy its lookup chose and the (translated) source:
# - 2001:db8:e7::/48: tcp/443 (priority 100) ahead of a port-less policy (priority 200) to the
#   same destination: a LAN flow, tcp/443 too, reaches the port-less policy as its address;
# - 2001:db8:e9:5::/64 udp/53 inside the port-less 2001:db8:e9::/48: the longer destination
#   takes no rule, its flows reach the /48's policy as its address;
# - 2001:db8:eb::/48 tcp/22 alone: no route, no ACQUIRE, the guard drops the cleartext;
# attach names each port-restricted policy in one line, `ipsnat explain` agrees with the kernel.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_tmpdir

t_ipv6_gateway fd00:73:1 2001:db8:ff73  # sets $lan, $gw, $wan

t_out6 1 200 2001:db8:b7::5/128 2001:db8:e7::/48
t_out6 2 100 2001:db8:b8::6/128 2001:db8:e7::/48 proto tcp dport 443
t_out6 3 200 2001:db8:b9::7/128 2001:db8:e9::/48
t_out6 4 300 2001:db8:ba::8/128 2001:db8:e9:5::/64 proto udp dport 53
t_out6 5 100 2001:db8:bb::9/128 2001:db8:eb::/48 proto tcp dport 22
t_wait_links_up "$lan" "$gw" "$wan"
t_in "$lan" ping -6 -c 1 -W 2 fd00:73:1::1 >/dev/null || true  # neighbours resolved

x=(--inside fd00:73:1::/64)
plan=$(t_in "$gw" "$IPSNAT" attach eth0 "${x[@]}" 2>&1) || fail "attach failed: $plan"
for s in "2001:db8:b8::6/128 -> 2001:db8:e7::/48 tcp dport 443" "2001:db8:ba::8/128 -> 2001:db8:e9:5::/64 udp dport 53" \
  "2001:db8:bb::9/128 -> 2001:db8:eb::/48 tcp dport 22"; do
  expect_ok "attach names policy ($s) in one line: not translated in policy mode, ports" \
    test "$(grep -c "^.*policy [0-9]* ($s) is not translated in policy mode: it restricts ports" <<<"$plan")" = 1
done
expect_ok "no LWT route for the tcp/22 policy's destination" \
  bash -c "! ip -n $gw -6 route show table all | grep -q '2001:db8:eb::/48'"

acq="$T_TMP/acquire"
timeout 600 ip -n "$gw" xfrm monitor acquire >>"$acq" &
T_PIDS+=("$!")
t_wait_subscribed "$!"
records() { awk '/^acquire/{if (r != "") print r; r = ""} {r = r " " $0} END{if (r != "") print r}' "$acq"; }
send() {  # send DST PROTO DPORT: one packet (a SYN for tcp) from the LAN host
  t_in "$lan" timeout 20 python3 - "$1" "$2" "$3" <<'EOF' >/dev/null 2>&1 || true
import socket, sys
dst, proto, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "udp":
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x" * 32, (dst, dport))
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(0.2)  # the SYN leaves within connect(); no answer comes (no SA)
    try: s.connect((dst, dport))
    except OSError: pass
EOF
}
# acquire_of DST PROTO DPORT [none]: "SOURCE POLICY-SRC POLICY-DST PRIORITY" of the ACQUIRE the
# flow raised, or nothing (up to three packets, each after a state flush). With "none" (no ACQUIRE
# expected) the three packets go first, then 2 s from the last one for an ACQUIRE of any of them.
acquire_of() {
  local key="sel src [^ ]+ dst $1/128 proto $2" rec= try
  if [[ ${4:-} == none ]]; then
    for try in 1 2 3; do
      ip -n "$gw" xfrm state flush
      send "$1" "$2" "$3"
    done
    t_wait_for 2 eval 'records | grep -Eq -- "$key"' || true
    rec=$(records | grep -E -- "$key" | head -1) || true
  else
    for try in 1 2 3; do
      ip -n "$gw" xfrm state flush
      send "$1" "$2" "$3"
      t_wait_for 2 eval 'records | grep -Eq -- "$key"' || true
      rec=$(records | grep -E -- "$key" | head -1) || true
      [[ -n $rec ]] && break
    done
  fi
  : >"$acq"
  [[ -z $rec ]] || sed -E 's/.*sel src ([^/]+)\/128 .*policy src ([^ ]+) dst ([^ ]+) .*priority ([0-9]+).*/\1 \2 \3 \4/' <<<"$rec"
}
# expect_flow DST PROTO DPORT WANT: the kernel's ACQUIRE is WANT, and explain says the same.
expect_flow() {
  local got ex expect=
  if [[ -z $4 ]]; then expect=none; fi
  got=$(acquire_of "$1" "$2" "$3" $expect)
  expect_ok "$2/$3 to $1: the ACQUIRE is [$4] ($got)" test "$got" = "$4"
  ex=$(t_in "$gw" "$IPSNAT" -j explain fd00:73:1::a "$1" "$2" 40000 "$3" "${x[@]}") || fail "explain $1 failed"
  expect_ok "$2/$3 to $1: explain translates to [${4%% *}] ($(jq -c .translation <<<"$ex"))" \
    test "$(jq -r '.translation.to // empty' <<<"$ex")" = "${4%% *}"
}
routed1="2001:db8:b7::5 2001:db8:b7::5/128 2001:db8:e7::/48 200"
routed3="2001:db8:b9::7 2001:db8:b9::7/128 2001:db8:e9::/48 200"
expect_flow 2001:db8:e7::1 udp 7001 "$routed1"
expect_flow 2001:db8:e7::1 tcp 443 "$routed1"
expect_flow 2001:db8:e9:5::1 udp 7002 "$routed3"
expect_flow 2001:db8:e9:5::1 udp 53 "$routed3"
expect_flow 2001:db8:e9:1::1 tcp 8080 "$routed3"
guard() { t_in "$gw" "$IPSNAT" -j status | jq '[.counters[] | select(.reason == "drop-leak-guard-ipv6") | .packets] | add // 0'; }
dropped=$(guard)
expect_flow 2001:db8:eb::1 tcp 22 ""
expect_ok "tcp/22 alone: its cleartext is dropped by the guard" test "$(guard)" -gt "$dropped"
((FAILS)) && { echo "$plan"; t_in "$gw" "$IPSNAT" status 2>&1 | grep -E '(xlate|drop|pass)-[a-z0-9-]+ +[1-9]' || true; } >&2
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
finish
