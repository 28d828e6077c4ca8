#!/bin/bash
# attach/detach through the CLI leave the device exactly as it was, another tool's clsact
# filters included; bad invocations fail with one clear line.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

ns=$(t_netns gw)
t_veth_pair "$ns" wan0 wan1

# Another tool's filter on the same hook must survive ipsnat.
tc -n "$ns" qdisc add dev wan0 clsact
# This kernel has cls_bpf only, so the foreign filter is a BPF one too, added by tc itself.
tc -n "$ns" filter add dev wan0 egress pref 7 bpf obj "$IPSNAT_BPF_OBJ" sec tc direct-action
before=$(tc -n "$ns" filter show dev wan0 egress)

expect_ok "attach succeeds" t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty
expect_ok "ipsnat's filter is on egress" \
  bash -c "tc -n '$ns' filter show dev wan0 egress | grep -q 'handle 0x1a5.*tc_snat_egress'"
expect_ok "the foreign filter is still there" \
  bash -c "tc -n '$ns' filter show dev wan0 egress | grep -q 'pref 7 bpf'"
expect_ok "attach again replaces in place" t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty
expect_ok "exactly one ipsnat filter" \
  bash -c "[[ \$(tc -n '$ns' filter show dev wan0 egress | grep -c 'handle 0x1a5') == 1 ]]"

expect_ok "detach succeeds" t_in "$ns" "$IPSNAT" detach wan0
after=$(tc -n "$ns" filter show dev wan0 egress)
expect_ok "egress filters are as before attach" test "$before" == "$after"
expect_ok "the foreign tool's clsact qdisc stays" bash -c "tc -n '$ns' qdisc show dev wan0 | grep -q clsact"

err=$(t_in "$ns" "$IPSNAT" detach wan0 2>&1) && fail "second detach should fail" || true
expect_ok "second detach says it is not attached" grep -q 'not attached to "wan0"' <<<"$err"
err=$(t_in "$ns" "$IPSNAT" attach nosuch0 2>&1) && fail "attach to a missing device should fail" || true
expect_ok "missing device named in one line" \
  bash -c "[[ \$(wc -l <<<'$err') == 1 ]] && grep -q 'cannot find device \"nosuch0\"' <<<'$err'"
# The device vanished while attached: detach still clears the record (and whatever else is left).
ip -n "$ns" link add gone0 type veth peer name gone1
expect_ok "attach gone0" t_in "$ns" "$IPSNAT" attach gone0 --mode route --allow-empty --no-daemon
ip -n "$ns" link del gone0
expect_ok "detach after the device was deleted" t_in "$ns" "$IPSNAT" detach gone0
expect_ok "no state left for gone0" bash -c "! ls $IPSNAT_STATE_DIR/*@gone0.json 2>/dev/null"
finish
