#!/bin/bash
# The lab demo on this machine's kernel: the seed network in namespaces (LAN host — gateway with
# eth0 — transit — company gateway — company host), the company's IPsec policy on the gateway as
# strongSwan would install it (out NAT_IP/32 -> COMPANY_NET), and `ipsnat attach eth0`.
# Without ESP in this kernel nothing can be encrypted, so the proof is the kernel's own: its xfrm
# lookup asks for an SA (XFRM_MSG_ACQUIRE) for the *translated* flow, and the transit sees no
# cleartext. On a kernel with ESP the same topology carries a real tunnel: scripts/demo-esp.sh, which
# scripts/demo.sh runs (in a VM when needed); this script is its fallback (demo.sh --no-vm).
# usage: demo-lab.sh [seed|alt]   (alt: other prefixes, nothing is hard-coded)
set -euo pipefail
LAB_PROFILE=${1:-seed}
# shellcheck source=demo-common.sh
source "$(dirname "$0")/demo-common.sh"

say "lab network ($LAB_PROFILE): LAN $LAB_LAN_NET, gateway eth0 $LAB_GW_WAN_IP, company gateway $LAB_CGW_WAN_IP, company host $LAB_CHOST_IP"
lab_up
ip -n "$(lab_ns gw)" xfrm policy add src "$LAB_NAT_IP/32" dst "$LAB_COMPANY_NET" dir out priority 379519 \
  tmpl src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp reqid "$LAB_REQID" mode tunnel
ip -n "$(lab_ns gw)" xfrm policy add src "$LAB_COMPANY_NET" dst "$LAB_NAT_IP/32" dir in priority 379519 \
  tmpl src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" proto esp reqid "$LAB_REQID" mode tunnel

say "the SPD as ipsnat reads it: ipsnat policies"
gw "$IPSNAT" policies --inside "$LAB_LAN_NET"
say "ipsnat explain $LAB_LANHOST_IP $LAB_CHOST_IP icmp"
gw "$IPSNAT" explain "$LAB_LANHOST_IP" "$LAB_CHOST_IP" icmp --inside "$LAB_LAN_NET"

say "ipsnat attach eth0"
gw "$IPSNAT" attach eth0
gw "$IPSNAT" status

acq=$LAB_STATE/acquire.txt
mkdir -p "$LAB_STATE"
timeout 20 ip -n "$(lab_ns gw)" xfrm monitor acquire >"$acq" 2>&1 &
monitor=$!
lab_capture_start wan any transit
say "LAN host $LAB_LANHOST_IP pings $LAB_CHOST_IP (no SA exists here, so no reply is expected)"
LAB_PING_COUNT=2 lab_ping lanhost "$LAB_CHOST_IP" >/dev/null || true
sleep 1
kill "$monitor" 2>/dev/null || true
wait "$monitor" 2>/dev/null || true
lab_capture_stop wan >/dev/null

say "what the kernel's xfrm lookup saw (ip xfrm monitor acquire)"
grep -E '^ *sel ' "$acq" | sort -u || true
leaks=$(lab_capture_cleartext wan)
say "cleartext packets on the transit between LAN/NAT addresses and $LAB_COMPANY_NET: $leaks"
say "ipsnat flows"
gw "$IPSNAT" flows

ok=1
grep -qE "sel src $LAB_NAT_IP/32 dst $LAB_CHOST_IP/32" "$acq" || { echo "demo: the kernel never saw the translated flow" >&2; ok=0; }
grep -qE "sel src $LAB_LANHOST_IP/" "$acq" && { echo "demo: the kernel saw the untranslated LAN address" >&2; ok=0; }
[[ $leaks == 0 ]] || { echo "demo: cleartext leaked to the transit" >&2; ok=0; }
say "ipsnat detach eth0"
gw "$IPSNAT" detach eth0
((ok)) && say "demo passed: the LAN flow reached the xfrm lookup as $LAB_NAT_IP and nothing leaked" || exit 1
