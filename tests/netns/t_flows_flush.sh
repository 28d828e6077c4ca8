#!/bin/bash
# `ipsnat flows flush [FILTER]` on a gateway with real flows (route mode through veth, as
# t_attach_route_xlate.sh): a filter removes both entries of exactly the flows it selects (seen in
# `ipsnat flows` and in the map itself with bpftool), the next packet of a flushed flow makes a
# fresh entry (its counters start again) and is still translated with its reply delivered;
# without a filter every flow goes.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

nat=172.31.7.2 remote=10.0.0.1
t_gateway "$lan" "$gw" "$wan" host=172.16.40.10/24 gw_lan=172.16.40.1 nat=$nat
ip -n "$gw" xfrm policy add src $nat/32 dst 10.0.0.0/8 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel
expect_ok "attach --mode route" t_in "$gw" "$IPSNAT" attach tun0 --mode route

# The map's entries as bpftool dumps them: "PROTO DIR SADDR:SPORT DADDR:DPORT" (maps/ct.h's key).
ct_dump() {
  bpftool -j map dump pinned "$IPSNAT_PIN_ROOT/ipsnat_ct" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    k = bytes(int(b, 16) for b in e["key"])
    print(k[12], k[13], ".".join(map(str, k[0:4])) + ":" + str(int.from_bytes(k[8:10], "big")),
          ".".join(map(str, k[4:8])) + ":" + str(int.from_bytes(k[10:12], "big")))' | sort
}
flows() { t_in "$gw" "$IPSNAT" -j flows "$@"; }
serve_udp() {  # serve_udp PORT COUNT: an echo server on the remote, answering COUNT datagrams
  ip netns exec "$wan" timeout 25 python3 "$peer" server udp $remote "$1" "$2" &
  T_PIDS+=("$!")
  t_wait_for 10 bash -c "ip netns exec $wan ss -Hlun 'sport = :$1' | grep -q ."
}
udp_to() {  # udp_to SPORT DPORT: one datagram and its reply; prints "SOURCE-SEEN intact"
  ip netns exec "$lan" timeout 10 python3 "$peer" client udp $remote "$2" 64 "$1" 2>&1 || true
}

serve_udp 7001 2
expect_ok "UDP 40001 -> 7001 translated, reply delivered" test "$(udp_to 40001 7001)" == "$nat intact"
expect_ok "and a second time on the same flow" test "$(udp_to 40001 7001)" == "$nat intact"
serve_udp 7002 1
expect_ok "UDP 40002 -> 7002 translated, reply delivered" test "$(udp_to 40002 7002)" == "$nat intact"
expect_ok "ICMP echo through the NAT" ip netns exec "$lan" ping -c 1 -W 2 $remote >/dev/null
expect_ok "three flows, six entries" test "$(flows | t_json 'len(s)'):$(ct_dump | wc -l)" == "3:6"
expect_ok "the 7001 flow counted 2 packets each way" \
  test "$(flows --port 7001 | t_json '(s[0]["packets"]["original"], s[0]["packets"]["reply"])')" == "(2, 2)"

out=$(t_in "$gw" "$IPSNAT" flows flush --proto udp --port 7001)
expect_ok "flush --proto udp --port 7001 says one flow went ($out)" test "$out" == "1 of 3 flows removed"
expect_ok "ipsnat flows: no flow of port 7001 left" test "$(flows --port 7001 | t_json 'len(s)')" == 0
expect_ok "ipsnat flows: the UDP 7002 and the ICMP flow stay" \
  test "$(flows | t_json 'sorted(f["proto"] for f in s)')" == "['icmp', 'udp']"
dump=$(ct_dump)
expect_ok "bpftool: neither direction of port 7001 in the map" bash -c "! grep -q ':7001' <<<'$dump'"
expect_ok "bpftool: four entries, both of 7002 among them" \
  test "$(wc -l <<<"$dump"):$(grep -c ':7002' <<<"$dump")" == "4:2"

t_wait_for 10 bash -c "! ip netns exec $wan ss -Hlun 'sport = :7001' | grep -q ."  # the first server is done
serve_udp 7001 1
expect_ok "the flushed flow's next packet is translated again, reply delivered" \
  test "$(udp_to 40001 7001)" == "$nat intact"
again=$(flows --port 7001)
expect_ok "a fresh entry: complete, 1 packet each way ($again)" \
  test "$(t_json '(s[0]["packets"]["original"], s[0]["packets"]["reply"], s[0]["complete"])' <<<"$again")" == "(1, 1, True)"

out=$(t_in "$gw" "$IPSNAT" -j flows flush)
expect_ok "flush without a filter removes all three ($out)" \
  test "$(t_json '(s["flows"], s["removed"], s["entries_deleted"])' <<<"$out")" == "(3, 3, 6)"
expect_ok "the map is empty (bpftool)" test -z "$(ct_dump)"
expect_ok "ping still translated after flushing everything" ip netns exec "$lan" ping -c 1 -W 2 $remote >/dev/null
expect_ok "the global --pin-root is the one flush empties" \
  bash -c "nsenter --net=/run/netns/$gw $IPSNAT --pin-root $tmp/none flows flush 2>&1 | grep -q 'no conntrack map at $tmp/none/'"
expect_ok "unknown filter value refused" bash -c "! nsenter --net=/run/netns/$gw $IPSNAT flows flush --state bogus 2>/dev/null"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach tun0
finish
