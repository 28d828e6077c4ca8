#!/bin/bash
# attach takes the pin root's lock before it plans: while another process holds the lock (an
# attach, detach or re-plan in progress) an out-policy is added; the waiting attach plans after
# getting the lock, so its plan has the new policy's LWT route.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
mkdir -p "$IPSNAT_PIN_ROOT"
flock -x "$IPSNAT_PIN_ROOT" sleep 3 &
T_PIDS+=("$!")
sleep 0.3
t_in "$gw" "$IPSNAT" attach eth0 -q --no-daemon &
attach_pid=$!
sleep 1  # attach waits for the lock now
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 172.30.0.0/16 dir out priority 379519 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
expect_ok "attach succeeds once the lock is free" wait "$attach_pid"
expect_ok "its plan has the policy added while it waited" \
  bash -c "ip -n $gw route show table 421 | grep -q '^172.30.0.0/16 *encap bpf xmit lwt_snat_xmit'"
expect_ok "detach" t_in "$gw" "$IPSNAT" detach eth0
finish
