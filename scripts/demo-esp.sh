#!/bin/bash
# The demo on real ESP (needs a kernel with esp4; scripts/demo.sh boots the VM for it when this
# machine's kernel has none). The seed HOWTO's network in namespaces — LAN host, the homeworker's
# gateway gw with eth0, the internet (transit), the company gateway cgw, the company host — and a
# real IKEv2 tunnel: strongSwan's charon on both gateways (scripts/vm/ike.sh), cgw hands out the
# virtual IP 10.20.30.2, charon on gw installs the policy out 10.20.30.2/32 -> 10.0.0.0/8. Then
# the only ipsnat command, `ipsnat attach eth0`, LAN traffic (ping, 1 MiB TCP each way), and what
# happened: the sources the company host saw, the packets on the wire, the flows table.
# Exits non-zero when any claim it prints is false (tests/vm/t_demo.sh asserts on its output).
# usage: demo-esp.sh [seed|alt]   (alt: other prefixes, nothing is hard-coded)
set -euo pipefail
LAB_PROFILE=${1:-seed}
# shellcheck source=demo-common.sh
source "$(dirname "$0")/demo-common.sh"
# shellcheck source=vm/ike.sh
source "$root/scripts/vm/ike.sh"
indent() { sed 's/^/   /'; }
failed=()
claim() { # claim OK TEXT: print TEXT as checked or failed
  if [[ $1 == 1 ]]; then echo "   [ok] $2"; else echo "   [FAILED] $2"; failed+=("$2"); fi
}
# gw_state: what attach may change and detach must restore on gw.
gw_state() {
  local n; n=$(lab_ns gw)
  ip -n "$n" rule; ip -n "$n" route show table all
  ip -o -n "$n" xfrm policy | sed -E 's/[\\[:space:]]+/ /g'    # one line each, so a diff names whole policies
  ip -n "$n" addr; tc -n "$n" qdisc; tc -n "$n" filter show dev eth0 ingress; tc -n "$n" filter show dev eth0 egress
}
# listening PORT: chost has a TCP listener on PORT (waits <= 30 s; socat starts slowly under TCG).
listening() {
  local i
  for ((i = 0; i < 150; i++)); do
    lab_exec chost ss -Hntl "sport = :$1" 2>/dev/null | grep -q . && return 0
    _lab_sleep 0.2
  done
  return 1
}
sha() { sha256sum <"$1" | cut -c1-16; }

ike_supported || { echo "demo-esp: strongSwan (charon, swanctl) is not installed: run scripts/install-deps.sh" >&2; exit 1; }
lab_esp_supported || { echo "demo-esp: this kernel has no ESP (esp4 + GCM); scripts/demo.sh runs this in a VM" >&2; exit 1; }

say "lab ($LAB_PROFILE): LAN host $LAB_LANHOST_IP - gw (lan0 $LAB_GW_LAN_IP, eth0 $LAB_GW_WAN_IP) - internet - cgw $LAB_CGW_WAN_IP - company host $LAB_CHOST_IP"
lab_up
say "strongSwan IKEv2 (PSK): gw asks cgw for a virtual IP; cgw's pool holds only $LAB_NAT_IP"
ike_up || { ike_diag; exit 1; }
ike_swanctl gw --list-sas 2>/dev/null | grep -E 'ESTABLISHED|INSTALLED|local |remote ' | sed 's/^ *//' | indent
say "what charon installed on gw"
{
  ip -n "$(lab_ns gw)" -br addr show dev eth0
  ip -n "$(lab_ns gw)" xfrm policy show dir out | grep -E '^src|tmpl' | sed 's/^\s*//' | paste -sd' '
  echo "table 220: $(ip -n "$(lab_ns gw)" route show table 220)"
} | indent
gw_state >"$LAB_STATE/gw.before"

lab_capture_start wire to-gw transit       # the internet side of gw: judge the wire here
lab_capture_start chost lan0 chost         # what the company host receives
say "ipsnat attach eth0"
gw "$IPSNAT" attach eth0
say "what ipsnat added on gw (routing rule and table, companion policies, TC hooks)"
gw_state >"$LAB_STATE/gw.attached"
diff "$LAB_STATE/gw.before" "$LAB_STATE/gw.attached" | sed -n 's/^> //p' | grep -vE '^\s*$|bpf chain 0 *$' | indent || true

say "LAN host $LAB_LANHOST_IP pings the company host $LAB_CHOST_IP"
pong=$(lab_nsenter lanhost ping -n -c 3 -i 0.2 -W 2 "$LAB_CHOST_IP" 2>&1 | grep -E 'transmitted' || true)
claim "$([[ $pong == *' 0% packet loss'* ]] && echo 1 || echo 0)" "ping: ${pong:-no output}"

say "LAN host <-> company host: 1 MiB over TCP each way, sha256 on both ends"
d=$LAB_STATE/tcp
mkdir -p "$d"
head -c 1048576 /dev/urandom >"$d/up"
head -c 1048576 /dev/urandom >"$d/down"
lab_exec chost timeout 90 socat -u TCP4-LISTEN:5001,reuseaddr "CREATE:$d/up.rx" & srv=$!
if listening 5001; then lab_exec lanhost timeout 80 socat -u "OPEN:$d/up" "TCP4:$LAB_CHOST_IP:5001" || true; fi
wait "$srv" || true
lab_exec chost timeout 90 socat -u "OPEN:$d/down" TCP4-LISTEN:5002,reuseaddr & srv=$!
if listening 5002; then lab_exec lanhost timeout 80 socat -u "TCP4:$LAB_CHOST_IP:5002" "CREATE:$d/down.rx" || true; fi
wait "$srv" || true
up_ok=0 down_ok=0
[[ -s $d/up.rx && $(sha "$d/up.rx") == "$(sha "$d/up")" ]] && up_ok=1
[[ -s $d/down.rx && $(sha "$d/down.rx") == "$(sha "$d/down")" ]] && down_ok=1
claim "$up_ok" "upload   LAN host -> company host: $(stat -c %s "$d/up.rx" 2>/dev/null || echo 0) bytes, sha256 $(sha "$d/up") on both ends"
claim "$down_ok" "download company host -> LAN host: $(stat -c %s "$d/down.rx" 2>/dev/null || echo 0) bytes, sha256 $(sha "$d/down") on both ends"

lab_capture_stop chost >/dev/null
lab_capture_stop wire >/dev/null

say "what the company host saw (source addresses of packets to $LAB_CHOST_IP)"
tcpdump -n -r "$LAB_STATE/chost.pcap" "ip and dst host $LAB_CHOST_IP" 2>/dev/null |
  awk '{ split($3, a, "."); print a[1] "." a[2] "." a[3] "." a[4] }' | sort | uniq -c |
  awk '{ printf "   %-15s %6d packets\n", $2, $1 }'
nat_seen=$(lab_capture_count chost "ip and src host $LAB_NAT_IP")
lan_seen=$(lab_capture_count chost "ip and src net $LAB_LAN_NET")
claim "$((nat_seen > 0 && lan_seen == 0))" "the company host saw $LAB_NAT_IP ($nat_seen packets) and never a LAN address ($lan_seen)"

say "what the wire carried (capture on the internet side of gw)"
esp_out=$(lab_capture_esp wire "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP")
esp_in=$(lab_capture_esp wire "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP")
clear=$(lab_capture_cleartext wire)
other=$(lab_capture_count wire "ip and not esp")
printf '   ESP %s -> %s  %6d packets\n   ESP %s -> %s  %6d packets\n' \
  "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP" "$esp_out" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP" "$esp_in"
printf '   anything else            %6d packets\n' "$other"
claim "$((esp_out > 0 && esp_in > 0 && clear == 0))" \
  "only ESP between the LAN/virtual IP and $LAB_COMPANY_NET: $clear cleartext packets"

say "ipsnat flows"
gw "$IPSNAT" flows | indent
say "ipsnat status (hooks and counters)"
gw "$IPSNAT" status | grep -vE '^map:' | indent

say "ipsnat detach eth0"
gw "$IPSNAT" detach eth0
gw_state >"$LAB_STATE/gw.after"
restored=0
diff -q "$LAB_STATE/gw.before" "$LAB_STATE/gw.after" >/dev/null && restored=1
claim "$restored" "gw is exactly as charon left it (rules, routes, policies, addresses, qdiscs)"
((restored)) || diff -u "$LAB_STATE/gw.before" "$LAB_STATE/gw.after" | head -20 | indent

if ((${#failed[@]})); then
  say "demo FAILED: ${#failed[@]} claim(s) false"
  exit 1
fi
say "demo passed: $LAB_LANHOST_IP reached $LAB_CHOST_IP as $LAB_NAT_IP through strongSwan's ESP tunnel, nothing in cleartext"
