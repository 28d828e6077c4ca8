#!/bin/bash
# ipsnat_dev (per-device mode/if_id/mark, maps/config.h) is written on every attach, re-attach,
# daemon adoption and reload, not only when the BPF object is freshly loaded: an entry that no
# longer says what the device is gets rewritten; a device re-created under the same name (new
# ifindex: an xfrm interface with another if_id, a VTI with another okey, ...) is re-attached,
# its new ifindex configured and the old one's entry removed. (This kernel has no xfrm/VTI
# devices: veth in route mode; tests/unit/attach_plan_test.cpp covers if_id/okey -> entry.)
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

ns=$(t_netns gw)
t_tmpdir
tmp=$T_TMP
mkwan() { t_veth_pair "$ns" wan0 wan1; }
ifindex() { ip -n "$ns" -o link show "$1" | cut -d: -f1; }
# The map as "IFINDEX:MODE/IF_ID/MARK" sorted.
dev_map() {
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_dev" | python3 -c '
import json, sys
print(" ".join(sorted("%d:%d/%d/%d" % (e["formatted"]["key"], e["formatted"]["value"]["mode"], e["formatted"]["value"]["if_id"],
                                       e["formatted"]["value"]["mark"]) for e in json.load(sys.stdin))))'
}
# Overwrites the device's entry with values that are not what the device is.
spoil() {
  local i
  i=$(ifindex wan0)
  # shellcheck disable=SC2046
  bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_dev" key $(printf '0x%02x 0x%02x 0x%02x 0x%02x' $((i & 255)) $((i >> 8 & 255)) 0 0) \
    value 2 0 0 0 99 0 0 0 7 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
}
attach() { t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty --no-daemon -q 2>&1; }

mkwan
out=$(attach)
i1=$(ifindex wan0)
expect_ok "attach: ipsnat_dev[$i1] = route, no if_id/mark ($(dev_map))" test "$(dev_map)" == "$i1:1/0/0"
spoil
expect_ok "spoiled for the test ($(dev_map))" test "$(dev_map)" == "$i1:2/99/7"
out=$(attach)
expect_ok "re-attach rewrites it ($(dev_map))" test "$(dev_map)" == "$i1:1/0/0"

# The device is re-created under its name: a new ifindex.
ip -n "$ns" link del wan0
mkwan
i2=$(ifindex wan0)
expect_ok "the device has a new ifindex ($i1 -> $i2)" test "$i1" != "$i2"
out=$(attach)
expect_ok "attach to the re-created device succeeds, saying so ($out)" grep -q "was re-created (ifindex $i1 -> $i2)" <<<"$out"
expect_ok "its new ifindex configured, the old entry removed ($(dev_map))" test "$(dev_map)" == "$i2:1/0/0"
expect_ok "its hooks are on the new device" bash -c "tc -n $ns filter show dev wan0 egress | grep -q tc_snat_egress && tc -n $ns filter show dev wan0 ingress | grep -q tc_rev_ingress"

# The daemon adopts the attachment (programs from the pins, no reload) and reloads on SIGHUP:
# both write the entry too.
conf=$tmp/ipsnat.toml
printf 'state_dir = "%s"\n[[device]]\nname = "wan0"\nmode = "route"\n' "$tmp/run" >"$conf"
spoil
nsenter --net="/run/netns/$ns" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
daemon_pid=$!
wait_log() {  # wait_log COUNT PATTERN (5 s)
  for _ in $(seq 50); do (($(grep -c -- "$2" "$tmp/log" || true) >= $1)) && return 0; sleep 0.1; done
  return 1
}
expect_ok "daemon adopts wan0" wait_log 1 "attach wan0: route mode, adopted the pinned state"
expect_ok "adoption rewrites the entry ($(dev_map))" test "$(dev_map)" == "$i2:1/0/0"
spoil
kill -HUP "$daemon_pid"
expect_ok "reload logged" wait_log 1 "reload: configuration"
expect_ok "SIGHUP with the device unchanged in the file rewrites the entry ($(dev_map))" test "$(dev_map)" == "$i2:1/0/0"
ip -n "$ns" link del wan0
mkwan
i3=$(ifindex wan0)
kill -HUP "$daemon_pid"
expect_ok "second reload logged" wait_log 2 "reload: configuration"
expect_ok "SIGHUP after the device was re-created: new ifindex $i3 configured ($(dev_map))" test "$(dev_map)" == "$i3:1/0/0"
expect_ok "and hooked" bash -c "tc -n $ns filter show dev wan0 egress | grep -q tc_snat_egress"
kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=

expect_ok "detach" t_in "$ns" "$IPSNAT" detach wan0
expect_ok "detach removed the entry ($(dev_map))" test -z "$(dev_map)"
finish
