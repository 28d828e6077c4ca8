#!/bin/bash
# A conntrack schema change is handled explicitly: with another schema version recorded for
# ipsnat_ct in ipsnat_meta (what an older or newer build would have left), a re-attach does not
# read the old entries with new rules: it replaces ipsnat_ct and says so. With the recorded
# version matching (IPSNAT_CT_SCHEMA), the map and its entries are kept. A map of another layout
# pinned as ipsnat_ct is refused by every command that reads it, until an attach replaces it.
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

# A pinned ipsnat_ct of another layout (the 48-byte entries of an older build's schema 2, pinned in
# its place here by bpftool) is never read or changed as this build's: flows, flows flush and
# flows --gc refuse with one line naming the map and both layouts, status says it in its
# conntrack line, and the old map's entry stays. An attach with this build replaces the map.
ctpin=$IPSNAT_PIN_ROOT/ipsnat_ct
rm "$ctpin"
bpftool map create "$ctpin" type hash key 16 value 48 entries 1024 name ipsnat_ct
# An ORIG entry as the old build wrote it: 192.168.1.10:1000 -> 10.0.0.1:53 UDP as 10.20.30.2:1000
# (read as this build's, a half flow that flush would delete).
# shellcheck disable=SC2046
bpftool map update pinned "$ctpin" key hex c0 a8 01 0a 0a 00 00 01 03 e8 00 35 11 00 00 00 \
  value hex 0a 14 1e 02 03 e8 01 00 $(printf '01 %.0s' $(seq 1 40))
entries() { bpftool -j map dump pinned "$ctpin" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
want="ipsnat: pinned map $ctpin has 16-byte keys and 48-byte values, this build reads 16-byte keys and 56-byte values ("
for cmd in "flows" "flows flush" "flows --gc" "-j flows"; do
  rc=0
  # shellcheck disable=SC2086
  out=$(t_in "$ns" "$IPSNAT" $cmd 2>&1) || rc=$?
  expect_ok "$cmd refuses the other layout with one line naming it (rc $rc: $out)" \
    bash -c '[[ $1 == 1 && $(wc -l <<<"$2") == 1 && $2 == "$3"* ]]' _ "$rc" "$out" "$want"
done
expect_ok "the other layout's entry is left alone ($(entries) entry)" test "$(entries)" == 1
st=$(t_in "$ns" "$IPSNAT" status 2>&1)
expect_ok "status names it in its conntrack line" \
  grep -q "^  conntrack: NOT READ: pinned map $ctpin has 16-byte keys and 48-byte values" <<<"$st"
err=$(t_in "$ns" "$IPSNAT" -j status | t_json 's["limits"]["conntrack"].get("error", "")')
expect_ok "status -j: limits.conntrack.error names it ($err)" grep -q "^pinned map $ctpin has 16-byte keys" <<<"$err"
out=$(attach)
expect_ok "attach with this build replaces it ($out)" \
  grep -q "pinned map $ctpin replaced: its layout differs from this build's" <<<"$out"
expect_ok "flows reads the new map" t_in "$ns" "$IPSNAT" flows
expect_ok "detach" t_in "$ns" "$IPSNAT" detach wan0
finish
