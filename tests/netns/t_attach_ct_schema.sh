#!/bin/bash
# A conntrack schema change is handled explicitly: with another schema version recorded for
# ipsnat_ct in ipsnat_meta (what an older or newer build would have left), a re-attach does not
# read the old entries with new rules: it replaces ipsnat_ct and says so. With the recorded
# version matching (IPSNAT_CT_SCHEMA), the map and its entries are kept.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

ns=$(t_netns gw)
t_veth_pair "$ns" wan0 wan1
attach() { t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty --no-daemon -q 2>&1; }
key=$(python3 -c 'print(" ".join("%02x" % b for b in b"ipsnat_ct".ljust(16, b"\0")))')

out=$(attach)
expect_ok "first attach is quiet" test -z "$out"
ct=$(t_pinned_map_id ipsnat_ct)
# An entry, as a flow would leave it: it must survive a compatible re-attach.
# shellcheck disable=SC2046
bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_ct" key hex $(printf '%02x ' $(seq 1 16)) \
  value hex $(python3 -c 'import json,sys,subprocess; n=json.loads(subprocess.check_output(["bpftool","-j","map","show","pinned",sys.argv[1]]))["bytes_value"]; print(" ".join(["00"]*n))' "$IPSNAT_PIN_ROOT/ipsnat_ct")
out=$(attach)
expect_ok "same schema: ipsnat_ct kept (same id)" test "$(t_pinned_map_id ipsnat_ct)" == "$ct"
expect_ok "same schema: its entry kept" bash -c "bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_ct | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)) == 1 else 1)'"

# shellcheck disable=SC2086
bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_meta" key hex $key value hex 63 00 00 00
out=$(attach)
expect_ok "another schema: replaced with a warning naming ipsnat_ct ($out)" \
  grep -q "pinned map $IPSNAT_PIN_ROOT/ipsnat_ct replaced: it has schema 99, this build needs" <<<"$out"
expect_ok "another schema: ipsnat_ct is a new, empty map" \
  bash -c "[[ \$(bpftool -j map show pinned $IPSNAT_PIN_ROOT/ipsnat_ct | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])') != $ct ]] && [[ \$(bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_ct) == '[]' ]]"
out=$(attach)
expect_ok "the new schema is recorded: the next attach is quiet" test -z "$out"
expect_ok "detach" t_in "$ns" "$IPSNAT" detach wan0
finish
