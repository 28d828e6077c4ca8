#!/bin/bash
# Route mode with the NAT address local on the gateway (strongSwan's virtual IP): an ICMP
# "fragmentation needed" the gateway raises about a translated packet is addressed to that local
# address and delivered over lo. `tc_lo_egress` on lo must send it back to the LAN host, which
# then knows the path MTU (the LAN host's kernel is the oracle: IP_MTU of its connected socket).
# This kernel has no tunnel device that raises the error after TC egress (no ipip/gre/xfrm
# interface; the VM tier's t_nat_xfrmi/t_nat_vti prove that with real ESP), so the gateway
# sends the error the kernel would send, from a raw socket: the same path over lo.
# Then: lo's other traffic is untouched, a second route-mode device shares the hook on lo
# (detaching the first leaves it working), and the last detach restores lo exactly.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_gateway_netns
t_gateway "$lan" "$gw" "$wan" nat=10.20.30.2
ip -n "$gw" addr add 10.20.30.2/32 dev tun0
# The remote selector leaves the NAT address out: gw's error to it must not match the policy.
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/16 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel
t_veth_pair "$gw" tun1 tun1peer
# The snapshot once every link has its carrier (a veth's comes up a moment after "up").
t_wait_for 10 bash -c "! ip -n $gw link show | grep -q NO-CARRIER" || true
before=$(t_snapshot "$gw")

# lan_pmtu PORT: the LAN host's UDP socket (bound to PORT, connected to 10.0.0.1:9) sends one
# datagram, then reports its path MTU once it is below 1500 (or 1500 after 20 s); gw sends the
# kernel's error about the translated datagram to the NAT address meanwhile (gw_frag_needed).
lan_pmtu_start() {
  ip -n "$lan" route flush cache
  ip netns exec "$lan" timeout 30 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.connect(("10.0.0.1", 9))
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
s.send(b"x" * 100)
end = time.time() + 20
while time.time() < end:
    mtu = s.getsockopt(socket.IPPROTO_IP, 14)  # IP_MTU
    if mtu < 1500:
        break
    time.sleep(0.05)
print(mtu)' "$1" >"$T_TMP/pmtu" 2>&1 &
  lan_pid=$!
}

# gw_frag_needed NAT_PORT MTU: ICMP 3/4 from the NAT address to itself quoting the translated
# datagram 10.20.30.2:NAT_PORT -> 10.0.0.1:9 (IP header and 8 bytes, as a device raises it).
gw_frag_needed() {
  t_in "$gw" python3 -c '
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
nat, port, mtu = socket.inet_aton("10.20.30.2"), int(sys.argv[1]), int(sys.argv[2])
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 128, 1, 0x4000, 63, 17, 0, nat, socket.inet_aton("10.0.0.1"))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
quote = ip + struct.pack("!HHHH", port, 9, 108, 0)
icmp = struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quote
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(icmp, ("10.20.30.2", 0))' "$1" "$2"
}

# nat_port LAN_PORT: the translated port of the LAN host's UDP flow from LAN_PORT.
nat_port() {
  local i out
  for ((i = 0; i < 25; i++)); do
    out=$(t_in "$gw" "$IPSNAT" flows 2>/dev/null | sed -n "s/^udp 192.168.1.10:$1 -> 10.0.0.1:9 as 10.20.30.2:\([0-9]*\).*/\1/p")
    [[ -n $out ]] && { echo "$out"; return 0; }
    sleep 0.2
  done
  return 1
}

# check_error LAN_PORT MTU DESCRIPTION: the LAN host learns MTU from gw's error.
check_error() {
  local port
  lan_pmtu_start "$1"
  if port=$(nat_port "$1"); then
    gw_frag_needed "$port" "$2"
  else
    fail "no flow from 192.168.1.10:$1 in ipsnat flows"
  fi
  wait "$lan_pid" || true
  expect_ok "$3: the LAN host learned path MTU $2 (got $(cat "$T_TMP/pmtu"))" test "$(cat "$T_TMP/pmtu")" == "$2"
}

t_tmpdir
expect_ok "attach tun0 --mode route" t_in "$gw" "$IPSNAT" attach tun0 --mode route
expect_ok "tc_lo_egress on lo's egress" bash -c "tc -n $gw filter show dev lo egress | grep -q 'handle 0x1a5.*tc_lo_egress'"
check_error 40000 1300 "fragmentation needed to the local NAT address"
expect_ok "the host's own traffic over lo still flows" t_in "$gw" ping -c 2 -i 0.2 -W 1 10.20.30.2
expect_ok "counted as pass-loopback" bash -c "nsenter --net=/run/netns/$gw $IPSNAT status | grep -q pass-loopback"

# A second route-mode device shares lo's hook; detaching the first hands it over: tun1's own
# program (the filter's program id is the one pinned for tun1), which still sends the errors
# back for flows translated on tun1 (10.0.0.0/8 routed into tun1, a permanent neighbour so the
# packets reach its egress).
lo_prog_id() { tc -n "$gw" filter show dev lo egress | sed -n 's/.*tc_lo_egress.* id \([0-9]*\).*/\1/p'; }
expect_ok "attach tun1 --mode route (a second device)" t_in "$gw" "$IPSNAT" attach tun1 --mode route
expect_ok "detach tun0" t_in "$gw" "$IPSNAT" detach tun0
tun1_prog=$(bpftool -j prog show pinned "$(echo "$IPSNAT_PIN_ROOT"/dev/*tun1/tc_lo_egress)" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || echo none)
expect_ok "lo keeps the hook, with tun1's program ($(lo_prog_id) = $tun1_prog)" test "$(lo_prog_id)" == "$tun1_prog"
ip -n "$gw" neigh replace 10.0.0.1 lladdr 02:00:00:00:00:01 dev tun1 nud permanent
ip -n "$gw" route replace 10.0.0.0/8 dev tun1
check_error 40001 1280 "flows of tun1 after the hand-over"
ip -n "$gw" route replace 10.0.0.0/8 via 200.2.2.1
expect_ok "detach tun1" t_in "$gw" "$IPSNAT" detach tun1
after=$(t_snapshot "$gw")
expect_ok "gateway exactly as before (lo's qdisc and filter gone)" test "$before" == "$after"
[[ $before == "$after" ]] || diff <(echo "$before") <(echo "$after") | head -20 || true
finish
