#!/bin/bash
# `ipsnat run` in a namespace of its own with a temp config, state dir and pin root:
# the metrics endpoint answers (200 on /metrics, 404 elsewhere, 431 on an oversized request),
# SIGHUP with a good config reloads it, SIGHUP with a bad one is logged with file:line and the
# running config kept, SIGTERM exits 0 and leaves the attached program in place.
source "$(dirname "$0")/lib.sh"
t_require_bpffs

ns=$(t_netns d)
t_tmpdir
tmp=$T_TMP
pin_root=/sys/fs/bpf/ipsnat-test-$$   # removed by t_cleanup; the state dir is the config's
export IPSNAT_PIN_ROOT=$pin_root

t_veth_pair "$ns" wan0 wan1
port=$((20000 + $$ % 20000))

cat >"$tmp/good.toml" <<TOML
metrics = "127.0.0.1:$port"
log_format = "json"
state_dir = "$tmp/run"
inside = ["192.168.1.0/24"]
TOML

# Something attached before the daemon starts must survive the daemon's exit.
expect_ok "attach before the daemon" t_in "$ns" "$IPSNAT" attach wan0 --mode route --allow-empty --no-daemon

# nsenter execs the daemon, so $! is the daemon's own pid (signals reach it, not a subshell).
nsenter --net="/run/netns/$ns" "$IPSNAT" run --config "$tmp/good.toml" 2>"$tmp/log" &
daemon_pid=$!

# Bounded wait for the endpoint (the namespace's loopback only).
http() {  # http PATH -> prints the whole response
  t_in "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET %s HTTP/1.0\r\n\r\n' '$1' >&3 && timeout 5 cat <&3"
}
for _ in $(seq 50); do http /metrics >/dev/null 2>&1 && break; sleep 0.1; done

resp=$(http /metrics)
expect_ok "GET /metrics is 200" grep -q '^HTTP/1.0 200 OK' <<<"$resp"
expect_ok "exposition content type" grep -q '^Content-Type: text/plain; version=0.0.4' <<<"$resp"
expect_ok "ipsnat_up with HELP and TYPE" bash -c "grep -q '^# TYPE ipsnat_up gauge' <<<\"\$1\" && grep -q '^ipsnat_up 1' <<<\"\$1\"" _ "$resp"
expect_ok "reloads start at 0" grep -q '^ipsnat_config_reloads_total 0' <<<"$resp"
expect_ok "mirror and GC are plugged in" bash -c "grep -q '^ipsnat_component_enabled{component=\"spd_mirror\"} 1' <<<\"\$1\" && \
  grep -q '^ipsnat_component_enabled{component=\"ct_gc\"} 1' <<<\"\$1\"" _ "$resp"
expect_ok "mirror took over the pinned SPD maps" grep -q '^ipsnat_mirror_up 1' <<<"$resp"
resp=$(http /other)
expect_ok "GET /other is 404" grep -q '^HTTP/1.0 404 Not Found' <<<"$resp"
big=$(head -c 6000 /dev/zero | tr '\0' a)
resp=$(t_in "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /metrics HTTP/1.0\r\nX: $big\r\n\r\n' >&3; timeout 5 cat <&3" 2>/dev/null || true)
expect_ok "oversized request is refused" grep -q '431' <<<"$resp"
expect_ok "curl scrapes it too" t_in "$ns" curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" -o /dev/null
expect_ok "not reachable from outside the namespace" bash -c "! curl -sf --max-time 2 http://127.0.0.1:$port/metrics -o /dev/null"

expect_ok "status sees the running daemon" t_in "$ns" "$IPSNAT" status --state-dir "$tmp/run" --check
expect_ok "status -j names the hook" bash -c "t_in() { nsenter --net=/run/netns/\$1 \"\${@:2}\"; }; \
  t_in '$ns' '$IPSNAT' -j status --state-dir '$tmp/run' | python3 -c 'import json,sys; s=json.load(sys.stdin); \
  assert any(d[\"dev\"]==\"wan0\" and any(h[\"prog\"]==\"tc_snat_egress\" for h in d[\"hooks\"]) for d in s[\"devices\"]), s; \
  assert s[\"daemon\"][\"alive\"]'"

# A good reload: the new metrics address is served.
port2=$((port + 1))
sed "s/:$port\"/:$port2\"/" "$tmp/good.toml" >"$tmp/next.toml" && mv "$tmp/next.toml" "$tmp/good.toml"
kill -HUP "$daemon_pid"
for _ in $(seq 50); do grep -q 'reload: configuration' "$tmp/log" && break; sleep 0.1; done
expect_ok "good SIGHUP is logged as applied" grep -q '"msg":"reload: configuration .* applied' "$tmp/log"
old_port=$port; port=$port2
resp=$(http /metrics 2>/dev/null || true)
expect_ok "new port answers" grep -q '^ipsnat_config_reloads_total 1' <<<"$resp"
expect_ok "old port closed" bash -c "! nsenter --net=/run/netns/$ns bash -c 'exec 3<>/dev/tcp/127.0.0.1/$old_port' 2>/dev/null"

# A bad reload: logged with file and line, old config kept (same port still answers).
printf 'port_range = "80-90"\n' >>"$tmp/good.toml"
kill -HUP "$daemon_pid"
for _ in $(seq 50); do grep -q 'keeping the running' "$tmp/log" && break; sleep 0.1; done
expect_ok "bad SIGHUP logged with file:line and expectation" \
  grep -q "good.toml:5: port_range: expected .*MIN-MAX.*; keeping the running configuration" "$tmp/log"
resp=$(http /metrics 2>/dev/null || true)
expect_ok "old config still served after a bad reload" grep -q '^ipsnat_config_reload_failures_total 1' <<<"$resp"
expect_ok "daemon still alive after a bad reload" kill -0 "$daemon_pid"
expect_ok "status reports the rejected reload" bash -c \
  "nsenter --net=/run/netns/$ns '$IPSNAT' status --state-dir '$tmp/run' | grep -q 'last reload error: .*good.toml:5: port_range'"

kill -TERM "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
expect_ok "SIGTERM exits 0" test "$rc" == 0
expect_ok "exit logged" grep -q 'SIGTERM: exiting; the datapath stays attached' "$tmp/log"
expect_ok "the attached program stays after the daemon exits" \
  bash -c "tc -n '$ns' filter show dev wan0 egress | grep -q 'handle 0x1a5.*tc_snat_egress'"
expect_ok "state file says stopped" python3 -c "import json; s=json.load(open('$tmp/run/daemon.json')); assert not s['running']"
err=$(t_in "$ns" "$IPSNAT" status --state-dir "$tmp/run" --check 2>&1) && fail "--check must fail once the daemon stopped" || true
expect_ok "--check says why" grep -q 'unhealthy: the daemon is not running' <<<"$err"

# A bad config at start is one line naming file:line, exit 1.
printf '[[device]]\nnme = "eth0"\n' >"$tmp/bad.toml"
err=$(t_in "$ns" "$IPSNAT" run --config "$tmp/bad.toml" 2>&1) && fail "run with a bad config must fail" || true
expect_ok "start with a bad config fails in one line" \
  bash -c "[[ \$(wc -l <<<\"\$1\") == 1 ]] && grep -q 'bad.toml:2: device\[0\].nme: unknown key' <<<\"\$1\"" _ "$err"
t_in "$ns" "$IPSNAT" detach wan0
finish
