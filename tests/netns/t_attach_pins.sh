#!/bin/bash
# Pins across restarts: a compatible pinned map is reused (same map id, entries kept) by a
# re-attach; a pinned map of another layout, or with another recorded schema version, is
# replaced with a warning naming it — never silently reused.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

ns=$(t_netns gw)
t_veth_pair "$ns" wan0 wan1
attach() { t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty --no-daemon -q 2>&1; }

out=$(attach)
expect_ok "first attach is quiet" test -z "$out"
ct=$(t_pinned_map_id ipsnat_ct)
cfg=$(t_pinned_map_id ipsnat_cfg)
# An entry the loader did not write must survive a re-attach (the map is reused, not recreated).
bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_cfg" key hex 00 00 00 00 \
  value hex 00 04 ff 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
out=$(attach)
expect_ok "re-attach reuses the conntrack map" test "$(t_pinned_map_id ipsnat_ct)" == "$ct"
expect_ok "re-attach keeps map contents" \
  bash -c "bpftool -j map lookup pinned $IPSNAT_PIN_ROOT/ipsnat_cfg key hex 00 00 00 00 | grep -q '\"0x00\",\"0x04\",\"0xff\",\"0x04\"'"
expect_ok "re-attach is quiet" test -z "$out"

# A map of another layout pinned under a datapath map's name (an older build's).
rm "$IPSNAT_PIN_ROOT/ipsnat_cfg"
bpftool map create "$IPSNAT_PIN_ROOT/ipsnat_cfg" type array key 4 value 8 entries 1 name ipsnat_cfg
out=$(attach)
expect_ok "a layout change is replaced with a message ($out)" \
  grep -q "pinned map $IPSNAT_PIN_ROOT/ipsnat_cfg replaced: its layout differs" <<<"$out"
expect_ok "the replacement has this build's value size" \
  bash -c "[[ \$(bpftool -j map show pinned $IPSNAT_PIN_ROOT/ipsnat_cfg | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"bytes_value\"])') == 40 ]]"

# Same layout, older schema recorded in ipsnat_meta: the SPD maps' meaning changed.
key=$(python3 -c 'print(" ".join("%02x" % b for b in b"spd_dst".ljust(16, b"\0")))')
bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_meta" key hex $key value hex 01 00 00 00
dst=$(t_pinned_map_id spd_dst)
out=$(attach)
expect_ok "a schema change is replaced with a message ($out)" \
  grep -q "spd_dst replaced: it has schema 1, this build needs" <<<"$out"
expect_ok "spd_dst is a new map" test "$(t_pinned_map_id spd_dst)" != "$dst"
expect_ok "pins stay 0600" bash -c "[[ -z \$(find $IPSNAT_PIN_ROOT -type f ! -perm 600) ]]"
expect_ok "detach" t_in "$ns" "$IPSNAT" detach wan0
finish
