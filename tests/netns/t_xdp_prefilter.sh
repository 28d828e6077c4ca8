#!/bin/bash
# `ipsnat attach eth0 --xdp-prefilter` (native XDP on the veth uplink): spoofed cleartext from a
# remote prefix that `in` and `fwd` policies protect with a template is dropped in XDP and counted
# as drop-xdp-spoof. The kernel is the oracle: without the filter the same packets raise
# XfrmInTmplMismatch by exactly their number; with it that counter stays and drop-xdp-spoof rises by
# the same number. IKE/NAT-T and legitimate traffic still flow; a deleted fwd policy lets the
# spoofs through again (the host process follows the SPD); detach removes the program.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario
t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default
t_seed_policies "$gw"
for d in in fwd; do
  ip -n "$gw" xfrm policy add src 172.28.0.0/16 dst 192.168.1.0/24 dir $d priority 1000 \
    tmpl src 100.1.1.9 dst 200.2.2.2 proto esp reqid 9 mode tunnel
done
t_in "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
ip -n "$wan" route add 192.168.1.0/24 via 200.2.2.2
t_wait_links_up "$lan" "$gw" "$wan"

N=40  # per protocol: TCP SYN, UDP, ICMP echo
# spoof SRC DST [ike]: N packets of each protocol from WAN with source SRC (TCP SYN to 22, UDP to
# 5353, ICMP echo); with "ike" N UDP packets to each of 500 and 4500 instead.
cat >"$tmp/spoof.py" <<'PY'
import socket, struct, sys
src, dst, n, ike = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["ike"]
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ip(proto, l4):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(n):
    if ike:
        for port in (500, 4500):
            s.sendto(ip(17, struct.pack("!HHHH", port, port, 12, 0) + b"ike\0"), (dst, 0))
        continue
    s.sendto(ip(6, struct.pack("!HHIIBBHHH", 40000 + i, 22, i, 0, 0x50, 0x02, 1024, 0, 0)), (dst, 0))
    s.sendto(ip(17, struct.pack("!HHHH", 40000 + i, 5353, 8, 0)), (dst, 0))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 7, i)
    s.sendto(ip(1, icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]), (dst, 0))
PY
spoof() { ip netns exec "$wan" python3 "$tmp/spoof.py" "$1" "$2" "$N" "${@:3}"; }
tmpl_mismatch() { ip netns exec "$gw" awk '$1 == "XfrmInTmplMismatch" {print $2}' /proc/net/xfrm_stat; }
reason() { t_in "$gw" "$IPSNAT" status | awk -v r="$1" '$1 == r {print $2; f=1} END {if (!f) print 0}'; }
lan_rx() { ip -n "$lan" -j -s link show lan1 | t_json 's[0]["stats64"]["rx"]["packets"]'; }

expect_ok "attach without the filter" t_in "$gw" "$IPSNAT" attach eth0
k0=$(tmpl_mismatch)
spoof 172.28.2.3 192.168.1.10
sleep 0.5
k1=$(tmpl_mismatch)
expect_ok "without the filter the kernel refuses all $((3 * N)) spoofs (XfrmInTmplMismatch)" test $((k1 - k0)) -eq $((3 * N))

expect_ok "attach --xdp-prefilter" t_in "$gw" "$IPSNAT" attach eth0 --xdp-prefilter
expect_ok "native XDP program on eth0" bash -c "ip -n $gw -d link show eth0 | grep -q 'prog/xdp id'"
x0=$(reason drop-xdp-spoof)
spoof 172.28.2.3 192.168.1.10
sleep 0.5
k2=$(tmpl_mismatch)
x1=$(reason drop-xdp-spoof)
expect_ok "with the filter the kernel sees none of them" test "$k2" -eq "$k1"
expect_ok "XDP dropped exactly what the kernel dropped before ($((3 * N)))" test $((x1 - x0)) -eq $((3 * N))

expect_ok "legitimate traffic flows (WAN pings the LAN host)" ip netns exec "$wan" ping -c 2 -i 0.2 -W 2 192.168.1.10
i0=$(reason pass-xdp-ipsec)
spoof 172.28.2.3 200.2.2.2 ike
sleep 0.3
expect_ok "IKE/NAT-T from the protected prefix to the gateway passes XDP" \
  test $(($(reason pass-xdp-ipsec) - i0)) -eq $((2 * N))

# The kernel forwards cleartext again once the fwd policy is gone: so must the filter.
ip -n "$gw" xfrm policy del src 172.28.0.0/16 dst 192.168.1.0/24 dir fwd
sleep 1  # the host process mirrors the SPD change
r0=$(lan_rx)
x2=$(reason drop-xdp-spoof)
spoof 172.28.2.3 192.168.1.10
sleep 0.5
expect_ok "without the fwd policy nothing is dropped in XDP" test "$(reason drop-xdp-spoof)" -eq "$x2"
expect_ok "and the spoofs reach the LAN host" test $(($(lan_rx) - r0)) -ge $((3 * N))
expect_ok "the host process's re-plan kept the XDP program" bash -c "ip -n $gw -d link show eth0 | grep -q 'prog/xdp id'"
((FAILS)) && { cat "$IPSNAT_STATE_DIR"/*.log; bpftool map dump pinned "$IPSNAT_PIN_ROOT/xdp_spoof_act"; ls "$IPSNAT_PIN_ROOT"; } >&2

expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
expect_ok "no XDP program left on eth0" bash -c "! ip -n $gw -d link show eth0 | grep -q 'prog/xdp'"
finish
