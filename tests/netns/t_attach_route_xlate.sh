#!/bin/bash
# Route mode end to end through veth with TX checksum offload on (where a missing
# BPF_F_PSEUDO_HDR shows): TCP, UDP and ICMP from a LAN host leave the gateway's device with the
# NAT address and come back to the host intact. This kernel has no xfrm interfaces or VTI, so the
# translating device is a veth given --mode route (the device kind only selects the mode); an
# xfrm interface is used for the detection check when the kernel offers one.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_gateway_netns
t_gateway "$lan" "$gw" "$wan" nat=10.20.30.2
# The policy names the inner source; it has a template, so a flow matching it at routing would
# be held for IKE: only the LAN's (not yet translated) flows pass, which is what route mode sees.
ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out \
  tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel
expect_ok "TX checksum offload is on for the LAN host and the gateway" \
  bash -c "ip netns exec $lan ethtool -k lan1 | grep -q 'tx-checksumming: on' && ip netns exec $gw ethtool -k lan0 | grep -q 'tx-checksumming: on'"
t_wait_links_up "$lan" "$gw" "$wan"
before=$(t_snapshot "$gw")

expect_ok "attach --mode route" t_in "$gw" "$IPSNAT" attach tun0 --mode route
expect_ok "snat on egress" bash -c "tc -n $gw filter show dev tun0 egress | grep -q 'handle 0x1a5.*tc_snat_egress'"
expect_ok "reverse on ingress" bash -c "tc -n $gw filter show dev tun0 ingress | grep -q 'handle 0x1a5.*tc_rev_ingress'"
expect_ok "no routes, rules or policies in route mode" \
  bash -c "[[ -z \$(ip -n $gw route show table 421 2>/dev/null) && -z \$(ip -n $gw route show table all proto 165) &&
             -z \$(ip -n $gw -6 route show table all proto 165) && -z \$(ip -n $gw rule | grep '421\\|proto 165') &&
             \$(ip -n $gw xfrm policy | grep -c '^src') == 1 ]]"

peer=$IPSNAT_SRC/tests/netns/echo_peer.py
ip netns exec "$wan" timeout 15 python3 "$peer" server tcp 10.0.0.1 7000 &
T_PIDS+=("$!")
ip netns exec "$wan" timeout 15 python3 "$peer" server udp 10.0.0.1 7001 &
T_PIDS+=("$!")
t_wait_listening "$wan" tcp 7000
t_wait_listening "$wan" udp 7001
out=$(ip netns exec "$lan" timeout 10 python3 "$peer" client tcp 10.0.0.1 7000 300000 2>&1 || true)
expect_ok "TCP (300 kB) arrives from 10.20.30.2, intact both ways ($out)" test "$out" == "10.20.30.2 intact"
out=$(ip netns exec "$lan" timeout 10 python3 "$peer" client udp 10.0.0.1 7001 1200 2>&1 || true)
expect_ok "UDP arrives from 10.20.30.2, intact, reply delivered ($out)" test "$out" == "10.20.30.2 intact"
expect_ok "ICMP echo through the NAT" ip netns exec "$lan" ping -c 3 -i 0.2 -W 2 10.0.0.1

expect_ok "detach" t_in "$gw" "$IPSNAT" detach tun0
expect_ok "device exactly as before" test "$before" == "$(t_snapshot "$gw")"
out=$(ip netns exec "$lan" timeout 3 ping -c 1 -W 1 10.0.0.1 2>&1) && fail "ping should fail once detached" || ok "without ipsnat the LAN host gets no reply (no NAT)"

# Detection: an xfrm interface selects route mode by itself (skipped where the kernel has none).
if ip -n "$gw" link add ipsec0 type xfrm dev tun0 if_id 42 2>/dev/null; then
  ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out if_id 42 \
    tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 2 mode tunnel
  expect_ok "xfrm interface: dry-run picks route mode" \
    bash -c "nsenter --net=/run/netns/$gw $IPSNAT attach ipsec0 --dry-run | grep -q 'mode route (xfrm)'"
else
  echo "skip: this kernel cannot create xfrm interfaces (no xfrm_interface module)"
fi
finish
