#!/bin/bash
# ipsnat's companion policies are identified by the kernel index they got when ipsnat added them
# (recorded in the state) and by their content: a policy an IKE daemon puts in their place —
# replaced in place (the kernel keeps the index) or deleted and added again (a new index) — is
# never rewritten by a re-plan nor removed by detach.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
companion() {  # companion DIR: the kernel's policy 10.0.0.0/8 -> 192.168.1.0/24 of that direction
  ip -s -n "$gw" xfrm policy get src 10.0.0.0/8 dst 192.168.1.0/24 dir "$1" 2>/dev/null || true
}
ike_owns_them() {  # what an IKE daemon does to the two companions
  ip -n "$gw" xfrm policy update src 10.0.0.0/8 dst 192.168.1.0/24 dir fwd priority 1000 \
    tmpl src 100.1.1.1 dst 200.2.2.2 proto esp reqid 9 mode tunnel
  local in
  in=$(companion in | grep -o 'index [0-9]*')
  ip -n "$gw" xfrm policy del src 10.0.0.0/8 dst 192.168.1.0/24 dir in 2>/dev/null || true
  ip -n "$gw" xfrm policy add src 10.0.0.0/8 dst 192.168.1.0/24 dir in priority 379519 \
    tmpl src 100.1.1.1 dst 200.2.2.2 proto esp reqid 1 mode tunnel
  expect_ok "the re-added in policy got another index ($in)" test "$in" != "$(companion in | grep -o 'index [0-9]*')"
}

for host in no yes; do
  args=(-q)
  [[ $host == no ]] && args+=(--no-daemon)
  expect_ok "attach (host process: $host)" t_in "$gw" "$IPSNAT" attach eth0 "${args[@]}"
  # The LAN's fwd and in companions, and the fwd one for the uplink's address (masquerade).
  idx=$(jq '[.steps[] | select(.type == "xfrm_policy") | .policy.index] | map(select(. > 0)) | length' \
    "$IPSNAT_STATE_DIR"/*@eth0.json)
  expect_ok "the state records all three companions' kernel index ($idx)" test "$idx" == 3
  ike_owns_them
  [[ $host == yes ]] && sleep 1.5  # the host process re-plans on those SPD events
  expect_ok "host process $host: the replaced fwd policy keeps the IKE daemon's template" grep -q 'reqid 9' <<<"$(companion fwd)"
  expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0
  expect_ok "host process $host: detach left the replaced fwd policy" grep -q 'reqid 9' <<<"$(companion fwd)"
  expect_ok "host process $host: detach left the re-added in policy" grep -q 'reqid 1' <<<"$(companion in)"
  ip -n "$gw" xfrm policy del src 10.0.0.0/8 dst 192.168.1.0/24 dir fwd 2>/dev/null || true
  ip -n "$gw" xfrm policy del src 10.0.0.0/8 dst 192.168.1.0/24 dir in 2>/dev/null || true
done
finish
