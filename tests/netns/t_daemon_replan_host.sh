#!/bin/bash
# `ipsnat run` re-plans when the host changes, not only the SPD: a LAN bridge that appears after
# the start gets its companion policies and joins the inside set (ipsnat_inside), an address
# added to the uplink joins it as the gateway's own (INSIDE_LOCAL), and a new default gateway
# becomes the LWT route's nexthop; a re-plan that failed is retried until it succeeds. Policy mode
# on a veth uplink, no `inside` in the config.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_policy_gateway
ip -n "$wan" addr add 200.2.2.3/24 dev eth1
t_tmpdir
tmp=$T_TMP
conf=$tmp/ipsnat.toml
printf 'state_dir = "%s/run"\n[[device]]\nname = "eth0"\nmode = "policy"\n' "$tmp" >"$conf"
nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
daemon_pid=$!

inside_set() {  # the entries of ipsnat_inside as "PREFIX FLAGS", sorted
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_inside" 2>/dev/null | python3 -c '
import json, socket, struct, sys
for e in json.load(sys.stdin):
    k, v = e["formatted"]["key"], e["formatted"]["value"]
    print("%s/%d %d" % (socket.inet_ntoa(struct.pack("<I", k["addr"])), k["prefixlen"], v["flags"]))' | sort
}
companion() { ip -n "$gw" xfrm policy get src 10.0.0.0/8 dst "$1" dir fwd >/dev/null 2>&1; }
# `ipsnat run` is the host process and the namespace has no other rule: ipsnat's routes are in
# the main table, without a rule.
lwt_via() { ip -n "$gw" route show proto 165 | grep '^10.0.0.0/8' | grep -o 'via [0-9.]*' || true; }
wait_for() {  # wait_for COMMAND...: up to 10 s
  for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
  return 1
}
has_entry() { grep -qx "$1" <<<"$(inside_set)"; }
via_is() { test "$(lwt_via)" == "via $1"; }

expect_ok "the daemon attaches eth0" wait_for companion 192.168.1.0/24
expect_ok "the LAN is in the inside set" wait_for has_entry "192.168.1.0/24 1"
expect_ok "the uplink address is local only" has_entry "200.2.2.2/32 2"
expect_ok "the gateway's LAN address is local and inside" has_entry "192.168.1.1/32 3"
expect_ok "the LWT route is in the main table, via the default gateway" wait_for via_is 200.2.2.1
expect_ok "nothing in table 421, no rule" \
  bash -c "[[ -z \$(ip -n $gw route show table 421 2>/dev/null) ]] && ! ip -n $gw rule | grep -q 'lookup 421'"

ip -n "$gw" link add br0 type bridge
ip -n "$gw" addr add 172.16.9.1/20 dev br0
ip -n "$gw" link set br0 up
expect_ok "a bridge created later gets its companion policy" wait_for companion 172.16.0.0/20
expect_ok "and joins the inside set" wait_for has_entry "172.16.0.0/20 1"
ip -n "$gw" addr add 200.2.2.9/24 dev eth0
expect_ok "an address added to the uplink joins as the gateway's own" wait_for has_entry "200.2.2.9/32 2"
expect_ok "the uplink's prefix never joins" bash -c "! grep -q '^200.2.2.0/24' <<<\"\$1\"" _ "$(inside_set)"
ip -n "$gw" route replace default via 200.2.2.3
expect_ok "a new default gateway becomes the LWT route's nexthop" wait_for via_is 200.2.2.3
expect_ok "still nothing in table 421, no rule" \
  bash -c "[[ -z \$(ip -n $gw route show table 421 2>/dev/null) ]] && ! ip -n $gw rule | grep -q 'lookup 421'"

# A re-plan that fails is retried on the timer, for nothing else need come that would re-plan the
# device. The attach state directory read-only (as a full /run fails it): deleting ipsnat's LWT
# route re-plans, and that re-plan cannot record its steps, so the route stays deleted; once the
# directory is writable again no netlink event comes, and only the retry puts the route back.
state_ro() {  # the attach state directory read-only (a bind mount over itself), or writable again
  if [[ $1 == on ]]; then
    mount --bind "$IPSNAT_STATE_DIR" "$IPSNAT_STATE_DIR"
    mount -o remount,bind,ro "$IPSNAT_STATE_DIR"
  else
    umount "$IPSNAT_STATE_DIR"
  fi
}
status() { nsenter --net="/run/netns/$gw" "$IPSNAT" status --state-dir "$tmp/run" "$@"; }
status_says() { status 2>/dev/null | grep -qF "$1"; }
no_lwt() { [[ -z $(lwt_via) ]]; }
expect_ok "ipsnat status --check passes before" wait_for status --check
state_ro on
ip -n "$gw" route del 10.0.0.0/8 proto 165
expect_ok "the re-plan after the deletion fails and is logged" \
  wait_for grep -q "attach eth0: re-planning after a change of the host's .* failed: .*Read-only file system; retrying every 5s" "$tmp/log"
expect_ok "ipsnat status names the device whose re-plan failed" \
  wait_for status_says "device eth0 re-planning failed (retried every 5 s):"
expect_fail "ipsnat status --check fails meanwhile" status --check
sleep 6  # a retry comes within 5 s: it must fail too while the directory is read-only
expect_ok "while the state directory is read-only the LWT route stays deleted" no_lwt
expect_ok "the failure is logged once, not at each retry" \
  test "$(grep -c "attach eth0: re-planning after .* failed" "$tmp/log")" == 1
state_ro off
expect_ok "once the directory is writable, the retry puts the LWT route back (no event announced it)" \
  wait_for via_is 200.2.2.3
expect_ok "the recovery is logged" grep -q "attach eth0: re-planned after a failed re-plan" "$tmp/log"
expect_ok "ipsnat status no longer names it" wait_for bash -c '! grep -q "re-planning failed" <<<"$(nsenter --net="$1" "$2" status --state-dir "$3")"' \
  _ "/run/netns/$gw" "$IPSNAT" "$tmp/run"
expect_ok "ipsnat status --check passes again" wait_for status --check

# A device attached by hand under the daemon's pin root that disappears (an xfrm interface its IKE
# daemon removed): its re-plan fails and is named by `ipsnat status`, but nothing of it is left to
# miss, so the readiness probe does not fail for it.
ip -n "$gw" link add x0 type veth peer name x1
ip -n "$gw" link set x0 up
ip -n "$gw" link set x1 up
expect_ok "a second device is attached by hand in route mode" \
  nsenter --net="/run/netns/$gw" "$IPSNAT" attach x0 --mode route --no-daemon --allow-empty
ip -n "$gw" link del x0
expect_ok "its re-plan after it vanished fails and is logged" \
  wait_for grep -q "attach x0: re-planning after a change of the host's .* failed" "$tmp/log"
expect_ok "ipsnat status names it" wait_for status_says "device x0 re-planning failed"
expect_ok "ipsnat status --check still passes (the device is gone)" status --check

((FAILS)) && { inside_set; cat "$tmp/log"; } >&2
finish
