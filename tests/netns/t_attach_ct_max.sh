#!/bin/bash
# Conntrack size: `attach --ct-max N` creates ipsnat_ct with N entries (preallocated); a later
# attach without --ct-max keeps the pinned size; one that asks for another size is refused with
# both sizes named (the map is shared by every device and cannot be resized in place); an
# out-of-range size is refused before anything is created.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

ns=$(t_netns gw)
for d in wan0 wan2; do t_veth_pair "$ns" "$d" "${d}p"; done
attach() { t_in "$ns" "$IPSNAT" attach "$@" --mode route --allow-empty --no-daemon -q 2>&1; }
ct_field() { bpftool -j map show pinned "$IPSNAT_PIN_ROOT/ipsnat_ct" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

out=$(attach wan0 --ct-max 1000) && fail "odd/too small size accepted" || true
expect_ok "a size below the minimum is refused ($out)" grep -q "conntrack size 1000 is out of range" <<<"$out"
expect_ok "nothing was pinned for it" test ! -e "$IPSNAT_PIN_ROOT/ipsnat_ct"

out=$(attach wan0 --ct-max 4096)
expect_ok "attach --ct-max 4096 is quiet ($out)" test -z "$out"
expect_ok "ipsnat_ct has 4096 entries" test "$(ct_field max_entries)" == 4096
expect_ok "ipsnat_ct is preallocated (no BPF_F_NO_PREALLOC)" test "$(ct_field flags)" == 0

out=$(attach wan2)
expect_ok "a second device without --ct-max shares the pinned map ($out)" test -z "$out"
expect_ok "still 4096 entries" test "$(ct_field max_entries)" == 4096

out=$(attach wan2 --ct-max 8192) && fail "a size mismatch was accepted" || true
expect_ok "another size is refused, naming both ($out)" \
  grep -q "pinned conntrack map $IPSNAT_PIN_ROOT/ipsnat_ct holds 4096 entries, --ct-max asks for 8192" <<<"$out"
expect_ok "the pinned map is untouched" test "$(ct_field max_entries)" == 4096

expect_ok "detach wan0" t_in "$ns" "$IPSNAT" detach wan0
expect_ok "detach wan2" t_in "$ns" "$IPSNAT" detach wan2
finish
