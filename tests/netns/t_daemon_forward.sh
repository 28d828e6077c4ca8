#!/bin/bash
# `ipsnat run --config` writes the configuration's [[forward]] port-forwards into ipsnat_fwd: a
# host on the tunnel side reaches the LAN server through NAT_ADDR:PORT; SIGHUP with other
# forwards adds the new ones and deletes the removed ones (the old port no longer reaches the
# LAN); a forward that a hand-run `attach --forward` recorded is left alone; a restart after the
# configuration lost its forwards removes them. Route mode through veth, as t_attach_forward.sh.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

t_gateway_netns
t_tmpdir
tmp=$T_TMP

host=192.168.1.10 nat=10.20.30.2 remote=10.0.0.1
t_gateway "$lan" "$gw" "$wan" host=$host/24 remote=$remote nat=$nat
t_veth_pair "$gw" tun1 tun1p
ip -n "$gw" xfrm policy add src $nat/32 dst 10.0.0.0/8 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel

conf=$tmp/ipsnat.toml
write_conf() {  # write_conf "PROTO PORT INSIDE_PORT"...
  local f
  {
    echo "state_dir = \"$tmp/run\""
    echo "inside = [\"192.168.1.0/24\"]"
    printf '[[device]]\nname = "tun0"\nmode = "route"\n'
    for f in "$@"; do
      read -r proto port to <<<"$f"
      printf '[[forward]]\nproto = "%s"\nport = %s\naddress = "%s"\nto = "%s:%s"\n' "$proto" "$port" "$nat" "$host" "$to"
    done
  } >"$conf.new"
  mv "$conf.new" "$conf"
}
start_daemon() {  # start_daemon N: the Nth start in this log
  nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
  daemon_pid=$!
  wait_log "$1" "ipsnat daemon started"
}
wait_log() {  # wait_log COUNT PATTERN (5 s)
  for _ in $(seq 50); do (($(grep -c -- "$2" "$tmp/log" || true) >= $1)) && return 0; sleep 0.1; done
  return 1
}
# The forwards in the datapath's map, as "proto:port=inside_port" sorted.
fwd_map() {
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_fwd" | python3 -c '
import json, socket, sys
out = []
for e in json.load(sys.stdin):
    k, v = e["formatted"]["key"], e["formatted"]["value"]
    out.append("%s:%s:%d=%d" % ({6: "tcp", 17: "udp"}[k["proto"]], socket.inet_ntoa(k["nat_addr"].to_bytes(4, "little")),
                                socket.ntohs(k["port"]), socket.ntohs(v["inside_port"])))
print(" ".join(sorted(out)))'
}
# The datapath's count of them (ipsnat_fwd_cnt): it must follow the map, or NAPT would skip the check.
fwd_count() {
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_fwd_cnt" | python3 -c '
import json, sys
print(json.load(sys.stdin)[0]["formatted"]["value"]["entries"])'
}
reaches() {  # reaches PORT SERVER_PORT: a TCP connection from the remote to NAT:PORT gets to the LAN server
  ip netns exec "$lan" timeout 12 python3 "$peer" server tcp "$host" "$2" &
  T_PIDS+=("$!")
  t_wait_listening "$lan" tcp "$2"
  local out
  out=$(ip netns exec "$wan" timeout 8 python3 "$peer" client tcp "$nat" "$1" 20000 2>&1 || true)
  [[ $out == "$remote intact" ]] || { echo "  reaches $1: got \"$out\"" >&2; return 1; }
}

write_conf "tcp 8080 8000" "udp 5353 53"
expect_ok "daemon starts" start_daemon 1
expect_ok "the configured forwards are in ipsnat_fwd" test "$(fwd_map)" == "tcp:$nat:8080=8000 udp:$nat:5353=53"
expect_ok "and counted in ipsnat_fwd_cnt ($(fwd_count))" test "$(fwd_count)" == 2
expect_ok "$remote -> $nat:8080 reaches $host:8000" reaches 8080 8000

# A forward a hand-run attach recorded on another device is not the daemon's to remove.
expect_ok "hand-run attach --forward on tun1" \
  t_in "$gw" "$IPSNAT" attach tun1 --mode route --allow-empty --no-daemon -q --forward "udp:$nat:9999=$host:99"

write_conf "tcp 8081 8001"
kill -HUP "$daemon_pid"
expect_ok "reload logged" wait_log 1 "reload: configuration"
expect_ok "after SIGHUP: added in, removed out, the hand-run one kept ($(fwd_map))" \
  test "$(fwd_map)" == "tcp:$nat:8081=8001 udp:$nat:9999=99"
expect_ok "counted: 2 ($(fwd_count))" test "$(fwd_count)" == 2
expect_ok "the added forward $nat:8081 reaches $host:8001" reaches 8081 8001
# (Its peers give up after 2 s: where the path is open the answer takes milliseconds.)
if ECHO_PEER_TIMEOUT=2 reaches 8080 8002; then fail "the removed forward $nat:8080 still reaches the LAN"
else ok "the removed forward $nat:8080 no longer reaches the LAN"; fi

kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
write_conf
expect_ok "restart without [[forward]]" start_daemon 2
expect_ok "the forwards removed while the daemon was down are gone ($(fwd_map))" test "$(fwd_map)" == "udp:$nat:9999=99"
expect_ok "detach tun1 removes its forward" bash -c "nsenter --net=/run/netns/$gw $IPSNAT detach tun1 && [[ \$(bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_fwd) == '[]' ]]"
expect_ok "the count is back to 0: no ipsnat_fwd lookup ($(fwd_count))" test "$(fwd_count)" == 0
kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
t_in "$gw" "$IPSNAT" detach tun0 || true
finish
