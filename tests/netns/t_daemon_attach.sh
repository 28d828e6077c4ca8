#!/bin/bash
# `ipsnat run --config` owns the attachments (route mode through veth, as in t_attach_route_xlate):
# it attaches the configured device and the LAN's traffic is translated; the metrics endpoint
# carries what issue 5 lists; SIGHUP adds/removes a device and rewrites the port range, a bad
# file keeps the running config; a second daemon on the same pin root is refused; SIGTERM leaves
# programs and pins; the restart adopts them (same program ids, the flow survives); the daemon
# takes over from the host process a hand-run `ipsnat attach` started.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_gateway_netns
t_tmpdir
tmp=$T_TMP

t_gateway "$lan" "$gw" "$wan" nat=10.20.30.2
t_veth_pair "$gw" tun1 tun1p
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel

port=$((20000 + $$ % 20000))
conf=$tmp/ipsnat.toml
write_conf() {  # write_conf PORT_RANGE DEVICE...
  local range=$1 d
  shift
  {
    echo "metrics = \"127.0.0.1:$port\""
    echo "state_dir = \"$tmp/run\""
    echo "inside = [\"192.168.1.0/24\"]"
    echo "port_range = \"$range\""
    echo "gc_interval = \"1s\""
    for d in "$@"; do printf '[[device]]\nname = "%s"\nmode = "route"\n' "$d"; done
  } >"$conf.new"
  mv "$conf.new" "$conf"
}
start_daemon() {  # nsenter execs the daemon: $! is its pid
  nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
  daemon_pid=$!
  for _ in $(seq 50); do scrape >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
scrape() { t_in "$gw" curl -sf --max-time 5 "http://127.0.0.1:$port/metrics"; }
wait_log() {  # wait_log COUNT PATTERN: until PATTERN has COUNT matches in the log (5 s)
  for _ in $(seq 50); do (($(grep -c -- "$2" "$tmp/log" || true) >= $1)) && return 0; sleep 0.1; done
  return 1
}
prog_ids() { tc -n "$gw" filter show dev "$1" "$2" | grep -o ' id [0-9]*' | tr -d ' id'; }
metric() { grep -E "^$1 " <<<"$metrics" | awk '{print $NF}' | head -1; }
cfg_ports() {  # the port range the datapath reads from ipsnat_cfg
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_cfg" |
    python3 -c 'import json,sys; v=json.load(sys.stdin)[0]["formatted"]["value"]; print(v["port_min"], v["port_max"])'
}

write_conf 20000-29999 tun0
expect_ok "daemon starts, serves metrics" start_daemon
expect_ok "configured device attached (egress)" bash -c "tc -n $gw filter show dev tun0 egress | grep -q 'tc_snat_egress'"
expect_ok "configured device attached (ingress)" bash -c "tc -n $gw filter show dev tun0 ingress | grep -q 'tc_rev_ingress'"
expect_ok "attach logged" grep -q 'attach tun0: route mode, attached' "$tmp/log"
expect_ok "port range written to ipsnat_cfg" test "$(cfg_ports)" == "20000 29999"

# Translation: a long-lived UDP flow (fixed source port) and pings.
expect_ok "ICMP echo through the NAT" ip netns exec "$lan" ping -c 3 -i 0.2 -W 2 10.0.0.1
peer=$IPSNAT_SRC/tests/netns/echo_peer.py
ip netns exec "$wan" timeout 15 python3 "$peer" server tcp 10.0.0.1 7000 &
T_PIDS+=("$!")
t_wait_listening "$wan" tcp 7000
out=$(ip netns exec "$lan" timeout 10 python3 "$peer" client tcp 10.0.0.1 7000 100000 2>&1 || true)
expect_ok "TCP arrives from 10.20.30.2, intact ($out)" test "$out" == "10.20.30.2 intact"
# A UDP flow with a fixed source port, to find in the ct map across the restart.
udp_once() { ip netns exec "$lan" python3 -c '
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.168.1.10", 40404)); s.sendto(b"x", ("10.0.0.1", 9))'; }
udp_once
udp_flow() { t_in "$gw" "$IPSNAT" -j flows | python3 -c '
import json,sys
d=json.load(sys.stdin); fl=d["flows"] if isinstance(d,dict) else d
m=[f for f in fl if f["original"].get("sport")==40404]
print(json.dumps(m[0]["translated"], sort_keys=True) if m else "none")'; }
flow1=$(udp_flow)
expect_ok "the UDP flow is tracked ($flow1)" grep -q '"src": "10.20.30.2"' <<<"$flow1"

metrics=$(scrape)
expect_ok "metrics: device attached" grep -q '^ipsnat_device_attached{device="tun0",mode="route"} 1' <<<"$metrics"
expect_ok "metrics: translated packets by reason" bash -c "(( \$(grep -E '^ipsnat_packets_total\\{verdict=\"xlate\",reason=\"xlate-snat\"\\}' <<<\"\$1\" | awk '{print \$NF}') >= 3 ))" _ "$metrics"
expect_ok "metrics: drops by reason (a family per reason, zero or not)" grep -q '^ipsnat_packets_total{verdict="drop",reason="drop-leak-guard"}' <<<"$metrics"
expect_ok "metrics: active flows" bash -c "(( \$(grep -E '^ipsnat_active_flows\\{proto=\"udp\"\\}' <<<\"\$1\" | awk '{print \$NF}') >= 1 ))" _ "$metrics"
expect_ok "metrics: per-policy translated packets/bytes" \
  bash -c "grep -Eq '^ipsnat_policy_tracked_packets\\{reqid=\"1\"\\} [1-9]' <<<\"\$1\" && grep -Eq '^ipsnat_policy_tracked_bytes\\{reqid=\"1\"\\} [1-9]' <<<\"\$1\"" _ "$metrics"
expect_ok "metrics: port-range use" grep -Eq '^ipsnat_nat_port_range_use_ratio\{nat_address="10.20.30.2"\} 0\.0' <<<"$metrics"
expect_ok "metrics: mirror resyncs and policies" \
  bash -c "grep -q '^ipsnat_mirror_resyncs_total 0' <<<\"\$1\" && grep -q '^ipsnat_mirror_policies 1' <<<\"\$1\"" _ "$metrics"

# The mirror follows the SPD live.
ip -n "$gw" xfrm policy add src 10.20.31.2/32 dst 172.16.0.0/12 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 2 mode tunnel
for _ in $(seq 30); do metrics=$(scrape); grep -q '^ipsnat_mirror_policies 2' <<<"$metrics" && break; sleep 0.1; done
expect_ok "a new policy reaches the mirror" grep -q '^ipsnat_mirror_policies 2' <<<"$metrics"
expect_ok "and the devices are re-planned" grep -Eq '^ipsnat_attach_replans_total [1-9]' <<<"$metrics"

# Two mirrors on one pin root: the second daemon is refused, naming the first.
err=$(t_in "$gw" timeout 5 "$IPSNAT" run --config "$conf" 2>&1) && fail "a second daemon must be refused" || true
expect_ok "second daemon refused clearly ($err)" grep -q "another ipsnat already mirrors the SPD into $IPSNAT_PIN_ROOT: pid $daemon_pid (.*ipsnat run" <<<"$err"
expect_ok "a hand-run attach" t_in "$gw" "$IPSNAT" attach tun1p --mode route --allow-empty
hand_host=$(python3 -c "import json,glob; print([json.load(open(f))['daemon_pid'] for f in glob.glob('$IPSNAT_STATE_DIR/*@tun1p.json')][0])")
expect_ok "starts no second host: the daemon serves it ($hand_host)" test "$hand_host" == "$daemon_pid"
t_in "$gw" "$IPSNAT" detach tun1p
expect_ok "detaching it leaves the user's daemon running" kill -0 "$daemon_pid"

# SIGHUP: add tun1, change the port range.
write_conf 30000-39999 tun0 tun1
kill -HUP "$daemon_pid"
expect_ok "reload applied" wait_log 1 'reload: configuration .* applied (2 devices)'
expect_ok "added device attached" bash -c "tc -n $gw filter show dev tun1 egress | grep -q tc_snat_egress"
expect_ok "new port range in ipsnat_cfg" test "$(cfg_ports)" == "30000 39999"
ids_tun0=$(prog_ids tun0 egress)
# A bad file: kept (tun1 stays, the range stays), logged with file:line.
printf '[[device]]\nname = "tun2"\nmod = "route"\n' >>"$conf"
kill -HUP "$daemon_pid"
expect_ok "bad reload logged with file:line" wait_log 1 "ipsnat.toml:.*: device\[2\].mod: unknown key.*keeping the running configuration"
expect_ok "bad reload kept tun1" bash -c "tc -n $gw filter show dev tun1 egress | grep -q tc_snat_egress"
expect_ok "bad reload kept the port range" test "$(cfg_ports)" == "30000 39999"
# Remove tun1.
write_conf 30000-39999 tun0
kill -HUP "$daemon_pid"
expect_ok "second reload applied" wait_log 1 'reload: configuration .* applied (1 devices)'
expect_ok "removed device detached" bash -c "! tc -n $gw filter show dev tun1 egress | grep -q tc_snat_egress"
expect_ok "removed device's state record gone" bash -c "! ls $IPSNAT_STATE_DIR | grep -q '@tun1.json'"
expect_ok "tun0 untouched by the reloads (same program)" test "$(prog_ids tun0 egress)" == "$ids_tun0"

# SIGTERM: nothing detached, pins stay.
ids_in=$(prog_ids tun0 ingress)
kill -TERM "$daemon_pid"
rc=0; wait "$daemon_pid" || rc=$?; daemon_pid=
expect_ok "SIGTERM exits 0" test "$rc" == 0
expect_ok "programs stay attached" test "$(prog_ids tun0 egress)" == "$ids_tun0"
expect_ok "maps and program pins stay" bash -c "test -e $IPSNAT_PIN_ROOT/ipsnat_ct && ls $IPSNAT_PIN_ROOT/dev/*tun0/tc_snat_egress"
expect_ok "translation works with no daemon" ip netns exec "$lan" ping -c 1 -W 2 10.0.0.1

# A hand-run attach while no daemon runs starts the host process; the user's daemon takes over.
expect_ok "hand attach starts the host process" t_in "$gw" "$IPSNAT" attach tun1 --mode route --allow-empty
hand_host=$(python3 -c "import json,glob; print([json.load(open(f))['daemon_pid'] for f in glob.glob('$IPSNAT_STATE_DIR/*@tun1.json')][0])")
for _ in $(seq 30); do grep -q "spd_mirror: following" "$IPSNAT_STATE_DIR"/*@tun1.log 2>/dev/null && break; sleep 0.1; done
expect_ok "host $hand_host holds the mirror" kill -0 "$hand_host"

# Restart: adopt (same program ids), the UDP flow is still in the ct map, translation works.
expect_ok "daemon restarts" start_daemon
expect_ok "adoption logged" wait_log 1 'attach tun0: route mode, adopted the pinned state'
expect_ok "took over from the host process" grep -q "taking over from the host process that ipsnat attach started, pid $hand_host" "$tmp/log"
gone() { ! kill -0 "$1" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
expect_ok "the attach-started host stopped" gone "$hand_host"
expect_ok "no flap: same egress program id" test "$(prog_ids tun0 egress)" == "$ids_tun0"
expect_ok "no flap: same ingress program id" test "$(prog_ids tun0 ingress)" == "$ids_in"
flow2=$(udp_flow)
expect_ok "the UDP flow survived the restart with its translation ($flow2)" test "$flow2" == "$flow1"
udp_once
expect_ok "the same flow is reused after the restart" test "$(udp_flow)" == "$flow1"
expect_ok "translation works after the restart" ip netns exec "$lan" ping -c 2 -i 0.2 -W 2 10.0.0.1
expect_ok "status --check is healthy" t_in "$gw" "$IPSNAT" status --state-dir "$tmp/run" --check

kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=
t_in "$gw" "$IPSNAT" detach tun0
t_in "$gw" "$IPSNAT" detach tun1
finish
