#!/bin/bash
# Attach mode runs the one host process (`ipsnat run`, started by `ipsnat attach`), so conntrack
# housekeeping, the limit warnings and the SPD mirror work without a configuration
# (docs/attach.md "The host process"). A day of traffic in little: `attach --ct-max 1024`
# (512 flows) is filled with 600 unreplied UDP flows; once the UDP timeout (60 s, unreplied) has
# passed, the expired flows are swept promptly and new flows are translated again (xlate-snat,
# arriving at the far namespace from the NAT address). Other prefixes than the seed's:
# LAN 172.16.9.0/24, NAT 10.66.0.5, remote 198.51.100.0/24, uplink 203.0.113.0/24.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario
# No route back to the NAT address: the remote's ICMP errors are not delivered, the flows stay
# unreplied (their short timeout).
t_gateway "$lan" "$gw" "$wan" host=172.16.9.10/24 gw_lan=172.16.9.1 gw_wan=203.0.113.2/24 wan=203.0.113.1 \
  remote=198.51.100.7 remote_net=198.51.100.0/24
ip -n "$gw" xfrm policy add src 10.66.0.5/32 dst 198.51.100.0/24 dir out \
  tmpl src 203.0.113.2 dst 203.0.113.1 proto esp reqid 1 mode tunnel
t_wait_links_up "$lan" "$gw" "$wan"

flows=$IPSNAT_SRC/tests/netns/udp_flows.py
status_json() { t_in "$gw" "$IPSNAT" -j status --state-dir "$IPSNAT_STATE_DIR"; }
counter() { status_json | t_json "sum(c['packets'] for c in s['counters'] if c['reason'] == '$1')"; }
lock_holder() {  # the pid holding the mirror lock, from /proc/locks
  local ino
  ino=$(stat -c %i "$IPSNAT_PIN_ROOT/mirror_lock")
  awk -v ino=":$ino" '$2 == "FLOCK" && $0 !~ /->/ && substr($6, length($6) - length(ino) + 1) == ino {print $5}' /proc/locks
}

expect_ok "attach --ct-max 1024 --limit-log-interval 2s" \
  t_in "$gw" "$IPSNAT" attach tun0 --mode route --ct-max 1024 --limit-log-interval 2s
host=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*@tun0.json")[0]))["daemon_pid"])' "$IPSNAT_STATE_DIR")
log=$(compgen -G "$IPSNAT_STATE_DIR/*@tun0.log")
holds_lock() { [[ $(lock_holder) == "$host" ]]; }
expect_ok "the host process is up and holds the mirror lock (pid $host)" t_wait_for 10 holds_lock
expect_ok "it is ipsnat run, started to exit when detached" \
  bash -c "tr '\0' ' ' </proc/$host/cmdline | grep -q ' run --exit-when-detached'"
fd_targets() { local n=0 fd; for fd in /proc/"$host"/fd/*; do [[ $(readlink "$fd") == "$1" ]] && n=$((n + 1)); done; echo "$n"; }
log_fds=$(fd_targets "$(readlink -f "$log")") null_fds=$(fd_targets /dev/null)
expect_ok "it holds its log only as stdout and stderr ($log_fds) and /dev/null only as stdin ($null_fds)" \
  test "$log_fds $null_fds" == "2 1"
published() {
  [[ $(status_json | t_json 's["daemon"].get("alive") and s["daemon"].get("exit_when_detached") and s["daemon"]["pid"]') == "$host" ]]
}
expect_ok "it publishes its state: alive, exit_when_detached" t_wait_for 10 published

# The SPD mirror in attach mode: a policy IKE adds later reaches the maps.
policies() { [[ $(status_json | t_json 's["daemon"].get("mirror", {}).get("policies")') == "$1" ]]; }
expect_ok "the mirror follows the SPD (1 policy)" t_wait_for 10 policies 1
ip -n "$gw" xfrm policy add src 10.66.0.5/32 dst 192.0.2.0/24 dir out \
  tmpl src 203.0.113.2 dst 203.0.113.1 proto esp reqid 2 mode tunnel
expect_ok "the mirror applies a policy added later (2 policies)" t_wait_for 10 policies 2

# Fill the table: 600 flows for 3 s, none replied.
rounds=$(ip netns exec "$lan" timeout 20 python3 "$flows" 172.16.9.10 40000 600 198.51.100.7 7001 3)
filled=$SECONDS
s=$(status_json)
expect_ok "conntrack: 1024/1024 entries, 512 flows" \
  test "$(t_json '(s["limits"]["conntrack"]["entries"], s["limits"]["conntrack"]["flows"])' <<<"$s")" == "(1024, 512)"
drops=$(t_json 's["limits"]["conntrack"]["drops_ct_full"]' <<<"$s")
expect_ok "88 flows x $rounds rounds dropped as drop-ct-full ($drops)" test "$drops" -ge $((88 * (rounds - 1)))
expect_ok "the limit reporter warns in attach mode" t_wait_for 5 grep -q "conntrack table full: [0-9]* packet" "$log"

# The far end records who sends to port 7002.
ip netns exec "$wan" timeout 100 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.51.100.7", 7002))
while True:
    data, peer = s.recvfrom(100)
    print(peer[0], data.decode(), flush=True)' >"$tmp/far" &
T_PIDS+=("$!")
t_wait_listening "$wan" udp 7002
new_flows() {  # new_flows FIRST_PORT: 10 new flows, one datagram each, tagged with their port
  ip netns exec "$lan" python3 -c '
import socket, sys
for port in range(int(sys.argv[1]), int(sys.argv[1]) + 10):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("172.16.9.10", port))
    s.sendto(str(port).encode(), ("198.51.100.7", 7002))' "$1"
}
refused=$(counter drop-ct-full)
new_flows 50000
sleep 0.5
expect_ok "while the table is full, new flows are refused ($(counter drop-ct-full) > $refused)" \
  test "$(counter drop-ct-full)" -ge $((refused + 10))
expect_ok "and none arrives" test ! -s "$tmp/far"

# The flows expire 60 s after their last packet; the sweep follows within seconds.
sleep $((filled + 60 - SECONDS))
snat=$(counter xlate-snat)
arrived() { grep -q "^10.66.0.5 5100[0-9]$" "$tmp/far"; }
evicted() { (($(status_json | t_json 's["daemon"].get("gc", {}).get("evicted", 0)') >= 512)); }
# Under pressure the sweep runs at most 1 s apart; the host publishes its state every 5 s
# (state::kPublishInterval); $SECONDS counts whole seconds.
expect_ok "within 10 s of the timeout the expired flows are evicted and published (gc)" t_wait_for 10 evicted
new_flows 51000
expect_ok "new flows reach the far namespace from the NAT address" t_wait_for 3 arrived
expect_ok "all 10 of them ($(grep -c '^10.66.0.5 5100' "$tmp/far"))" test "$(grep -c '^10.66.0.5 5100' "$tmp/far")" == 10
expect_ok "counted as xlate-snat ($(counter xlate-snat) >= $snat + 10)" test "$(counter xlate-snat)" -ge $((snat + 10))
expect_ok "the limit reporter logs 'recovered'" t_wait_for 5 grep -q "conntrack table full: recovered" "$log"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach tun0
expect_ok "the host process ended with the last device" t_wait_for 5 bash -c "! kill -0 $host 2>/dev/null"

# A user's `ipsnat run` is the host too: attach starts none, and detaching the last device
# leaves the daemon running.
nsenter --net="/run/netns/$gw" "$IPSNAT" run --state-dir "$tmp/run" 2>>"$tmp/daemon.log" &
daemon_pid=$!
host=$daemon_pid
expect_ok "ipsnat run holds the mirror lock" t_wait_for 10 holds_lock
expect_ok "attach with the daemon running" t_in "$gw" "$IPSNAT" attach tun0 --mode route -q
recorded=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1]+"/*@tun0.json")[0]))["daemon_pid"])' "$IPSNAT_STATE_DIR")
expect_ok "starts no second host: the daemon serves tun0 ($recorded)" test "$recorded" == "$daemon_pid"
expect_ok "detach the last device" t_in "$gw" "$IPSNAT" detach tun0
sleep 1.5
expect_ok "the user's daemon keeps running" kill -0 "$daemon_pid"
kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
finish
