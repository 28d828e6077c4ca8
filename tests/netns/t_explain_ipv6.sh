#!/bin/bash
# `ipsnat explain` for IPv6 flows against the kernel. A gateway with IPv6 out-policies of several
# priorities and selectors (a more specific destination with a worse priority, a port-restricted
# policy, an any-source policy and a one-address one of equal priority, an NPTv6 prefix), no SA:
# the kernel's ACQUIRE for a real packet names the policy its xfrm lookup chose (this kernel has
# no ESP). Before attach, for chosen and random flows, the policy ACQUIRE names is the one
# `explain --json` calls `before` (none: no ACQUIRE at all). Attached (policy mode, --binat), a
# LAN host's packet reaches the lookup translated: ACQUIRE names explain's `after` policy and its
# selector's source is explain's `translation.to` (NAT66 to the policy's address, NPTv6 mapped).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_tmpdir

t_ipv6_gateway fd00:61:1 2001:db8:ff61  # sets $lan, $gw, $wan

# The policies (reqid = the letter's place); sources of the one-address policies are local
# addresses of the gateway only while the flows before attach are sent from it.
t_out6 1 200 2001:db8:a1::5/128 2001:db8:e1::/48                 # NAT66
t_out6 2 250 2001:db8:a2::6/128 2001:db8:e1:5::/64               # more specific, worse priority
t_out6 3 50 2001:db8:a3::7/128 2001:db8:e4::/48 proto tcp dport 443  # port-restricted: not in policy mode
t_out6 4 300 ::/0 2001:db8:e2::/48                               # any source ...
t_out6 5 300 2001:db8:a5::9/128 2001:db8:e2::/48                 # ... and, equal priority, younger
t_out6 6 150 2001:db8:a6::/64 2001:db8:e3::/48                   # NPTv6 with --binat
own=(2001:db8:a1::5 2001:db8:a2::6 2001:db8:a3::7 2001:db8:a5::9 2001:db8:a6::1)
for a in "${own[@]}"; do ip -n "$gw" addr add "$a/128" dev lo nodad; done
t_wait_links_up "$lan" "$gw" "$wan"
t_in "$lan" ping -6 -c 1 -W 2 fd00:61:1::1 >/dev/null || true  # neighbours resolved

policies=$(t_in "$gw" "$IPSNAT" -j policies)
# The selector and priority of policy INDEX as ip-xfrm's ACQUIRE prints them.
selector_of() {
  jq -r --argjson i "$1" '.policies[] | select(.index == $i) | "\(.src) \(.dst) \(.priority)"' <<<"$policies"
}

acq="$T_TMP/acquire"
timeout 280 ip -n "$gw" xfrm monitor acquire >>"$acq" &  # appends: emptied per flow
T_PIDS+=("$!")
t_wait_subscribed "$!"
# One record per ACQUIRE: "sel src S dst D ... policy src A dst B ... priority N".
records() { awk '/^acquire/{if (r != "") print r; r = ""} {r = r " " $0} END{if (r != "") print r}' "$acq"; }

# send NS SRC DST PROTO SPORT DPORT: one packet of the flow from NS (bound to SRC).
send() {
  t_in "$1" timeout 3 python3 - "$2" "$3" "$4" "$5" "$6" <<'EOF' >/dev/null 2>&1 || true
import socket, sys
src, dst, proto, sport, dport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
if proto == "ipv6-icmp":
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.bind((src, 0))
    s.sendto(bytes([128, 0, 0, 0, 0x12, 0x34, 0, 1]) + b"x" * 16, (dst, 0))
elif proto == "udp":
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, sport))
    s.sendto(b"x" * 32, (dst, dport))
else:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind((src, sport))
    s.settimeout(0.2)  # the SYN leaves within connect(); no answer comes (no SA)
    try: s.connect((dst, dport))
    except OSError: pass
EOF
}

# check PHASE NS SRC DST PROTO SPORT DPORT [explain options]: explain's answer against the ACQUIRE
# of one real packet of the flow.
check() {
  local phase=$1 ns=$2 src=$3 dst=$4 proto=$5 sport=$6 dport=$7
  shift 7
  local args=("$src" "$dst" "$proto")
  [[ $proto != ipv6-icmp ]] && args+=("$sport" "$dport")
  local ex want_pol want_src
  ex=$(t_in "$gw" "$IPSNAT" -j explain "${args[@]}" "$@") || { fail "explain ${args[*]} failed"; return; }
  if [[ $phase == before ]]; then
    want_pol=$(jq -r '.before.policy // empty' <<<"$ex")
    want_src=$src
  else
    want_pol=$(jq -r 'if .translation then (.after.policy // empty) else (.before.policy // empty) end' <<<"$ex")
    want_src=$(jq -r '.translation.to // empty' <<<"$ex")
    want_src=${want_src:-$src}
  fi
  # One ACQUIRE per SA while its larval state lives, and the kernel does not raise one for every
  # packet even after a flush: up to three packets, each after a flush, until one is seen.
  # The lookup after the LWT reroute carries no ports (docs/datapath.md): ports only before.
  local key="sel src [^ ]+ dst $dst/128 proto $proto"
  [[ $proto != ipv6-icmp && $phase == before ]] && key+=" sport $sport dport $dport "
  local try rec=
  if [[ -z $want_pol ]]; then
    # None expected: the same three packets, each after a flush, then 2 s from the last one for
    # an ACQUIRE that any of them raises.
    for try in 1 2 3; do
      ip -n "$gw" xfrm state flush
      send "$ns" "$src" "$dst" "$proto" "$sport" "$dport"
    done
    t_wait_for 2 eval 'records | grep -Eq -- "$key"' || true
    rec=$(records | grep -E -- "$key" | head -1) || true
    expect_ok "$phase: ${args[*]}: explain names no policy, and no ACQUIRE came" test -z "$rec"
    return
  fi
  for try in 1 2 3; do
    ip -n "$gw" xfrm state flush
    send "$ns" "$src" "$dst" "$proto" "$sport" "$dport"
    t_wait_for 2 eval 'records | grep -Eq -- "$key"' || true
    rec=$(records | grep -E -- "$key" | head -1) || true
    [[ -n $rec ]] && break
  done
  [[ -n $rec ]] || { echo "no ACQUIRE for it; the monitor has:"; cat "$acq"; t_in "$gw" "$IPSNAT" status 2>&1 | grep -E '(xlate|drop|pass)-[a-z0-9-]+ +[1-9]' || true; } >&2
  local sel pol
  sel=$(sed -E 's/.*sel src ([^ ]+) dst ([^ ]+).*/\1 \2/' <<<"$rec")
  pol=$(sed -E 's/.*policy src ([^ ]+) dst ([^ ]+) .*priority ([0-9]+).*/\1 \2 \3/' <<<"$rec")
  expect_ok "$phase: ${args[*]}: explain names policy $want_pol ($(selector_of "$want_pol")), the ACQUIRE [$pol] from [$sel]" \
    test "$pol" = "$(selector_of "$want_pol")" -a "$sel" = "$want_src/128 $dst/128"
  : >"$acq"  # the next flow's records only (the monitor appends)
}

lanhost=fd00:61:1::a
# Before attach: chosen flows, then random ones (sources the gateway's own or the LAN host).
check before "$lan" $lanhost 2001:db8:e2::7 udp 40001 7001      # the any-source policy
check before "$gw" 2001:db8:a1::5 2001:db8:e1::1 udp 40002 7002
check before "$gw" 2001:db8:a1::5 2001:db8:e1:5::1 udp 40003 7003  # not the /64: its source is another
check before "$gw" 2001:db8:a2::6 2001:db8:e1:5::1 udp 40004 7004
check before "$gw" 2001:db8:a3::7 2001:db8:e4::1 tcp 40005 443
check before "$gw" 2001:db8:a3::7 2001:db8:e4::1 tcp 40006 80   # the port: no policy
check before "$gw" 2001:db8:a5::9 2001:db8:e2::1 udp 40007 7007  # equal priority: the older
check before "$gw" 2001:db8:a6::1 2001:db8:e3::1 ipv6-icmp 0 0
check before "$lan" $lanhost 2001:db8:e1::1 udp 40008 7008      # no policy for the LAN's source
srcs=("${own[@]}" $lanhost)
dsts=(2001:db8:e1::1 2001:db8:e1:5::9 2001:db8:e2::2 2001:db8:e3::3 2001:db8:e4::4)
for i in 1 2 3 4 5 6; do
  s=${srcs[RANDOM % ${#srcs[@]}]} d=${dsts[RANDOM % ${#dsts[@]}]} p=udp dp=$((7100 + RANDOM % 100))
  ((RANDOM % 2)) && p=tcp
  ((RANDOM % 3 == 0)) && dp=443
  ns=$gw
  [[ $s == "$lanhost" ]] && ns=$lan
  check before "$ns" "$s" "$d" "$p" $((41000 + i)) "$dp"
done

# Attached: the gateway's own addresses go (NAT66 addresses are blackholed, not local).
for a in "${own[@]}"; do ip -n "$gw" addr del "$a/128" dev lo; done
plan=$(t_in "$gw" "$IPSNAT" attach eth0 --binat --inside fd00:61:1::/64 2>&1) || fail "attach failed: $plan"
echo "$plan"
expect_ok "the port-restricted policy is not translated in policy mode" \
  grep -q '2001:db8:e4::/48: none (not translated in policy mode: restricts ports' <<<"$plan"
expect_ok "policies says so too" grep -q 'policy mode: not translated: restricts ports (tcp dport 443)' \
  <<<"$(t_in "$gw" "$IPSNAT" policies --inside fd00:61:1::/64)"
x=(--binat --inside fd00:61:1::/64)
check after "$lan" $lanhost 2001:db8:e1::1 udp 40011 7011 "${x[@]}"       # nat66 policy 1
check after "$lan" $lanhost 2001:db8:e1:5::1 udp 40012 7012 "${x[@]}"     # the /64's rule: policy 2
check after "$lan" $lanhost 2001:db8:e2::7 udp 40013 7013 "${x[@]}"       # 4 takes it before the LWT route
check after "$lan" $lanhost 2001:db8:e3::1 udp 40014 7014 "${x[@]}"       # nptv6
check after "$lan" $lanhost 2001:db8:e1::1 ipv6-icmp 0 0 "${x[@]}"
check after "$lan" $lanhost 2001:db8:e4::1 tcp 40015 443 "${x[@]}"        # left alone: the guard drops it
for i in 1 2 3 4; do
  d=${dsts[RANDOM % ${#dsts[@]}]} p=udp dp=$((7200 + RANDOM % 100))
  ((RANDOM % 2)) && p=tcp
  check after "$lan" $lanhost "$d" "$p" $((42000 + i)) "$dp" "${x[@]}"
done
ex=$(t_in "$gw" "$IPSNAT" -j explain $lanhost 2001:db8:e2::7 udp 1 2 "${x[@]}") || true
expect_ok "explain: the any-source policy takes the LAN flow before the LWT route" \
  grep -q "first lookup .* policy $(jq -r .before.policy <<<"$ex") before the LWT route" <<<"$(jq -r .no_translation <<<"$ex")"
ex=$(t_in "$gw" "$IPSNAT" -j explain $lanhost 2001:db8:e3::1 udp 1 2 --inside fd00:61:1::/64) || true
expect_ok "explain: nptv6 needs --binat" grep -q 'binat' <<<"$(jq -r .no_translation <<<"$ex")"

# The command line's refusals: one line each.
for bad in "fd00:61:1::g 2001:db8:e1::1" "fd00:61:1::a 198.51.100.1" "fd00:61:1::a 2001:db8:e1::1 ipv6-icmp 1 0"; do
  err=$(t_in "$gw" "$IPSNAT" explain $bad 2>&1 >/dev/null) && fail "explain $bad succeeded"
  expect_ok "explain $bad: a one-line error ($err)" test "$(wc -l <<<"$err")" = 1
done
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
finish
