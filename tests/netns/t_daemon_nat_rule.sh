#!/bin/bash
# `ipsnat run --config` applies [[nat]] rules (docs/config.md), judged by the kernel's ACQUIRE
# (policies without SAs, policy mode): a rule with `destinations` translates its LAN only towards
# them (the rest of the policy's destination stays untranslated and the guard keeps it in: no
# ACQUIRE, nothing on the WAN); a rule whose `to` lies inside a policy's /24 source selector
# translates to exactly `to` (NAPT), not the 1:1 map the selector implies; a destination outside
# the policy's selector is refused in one log line naming the rule.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario

t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default host=192.168.61.10/24 gw_lan=192.168.61.1
ip -n "$gw" xfrm policy add src 198.18.7.2/32 dst 10.0.0.0/8 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
ip -n "$gw" xfrm policy add src 172.16.40.0/24 dst 172.31.0.0/16 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.2 proto esp reqid 2 mode tunnel
ip -n "$gw" xfrm policy add src 198.18.7.2/32 dst 100.64.0.0/16 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.3 proto esp reqid 3 mode tunnel

conf=$tmp/ipsnat.toml
cat >"$conf" <<EOF
state_dir = "$tmp/run"
inside = ["192.168.61.0/24"]
[[device]]
name = "eth0"
mode = "policy"
[[nat]]
inside = "192.168.61.0/24"
to = "198.18.7.2"
destinations = ["10.1.0.0/16", "100.0.0.0/8"]
[[nat]]
inside = "192.168.61.0/25"
to = "172.16.40.9"
EOF
t_wait_links_up "$lan" "$gw" "$wan"
nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
daemon_pid=$!
T_PIDS+=("$daemon_pid")
expect_ok "daemon starts" t_wait_for 30 grep -q "ipsnat daemon started" "$tmp/log"
expect_ok "no 'not applied yet' warning" bash -c "! grep -q 'not applied' '$tmp/log'"
expect_ok "a destination wider than the policy's selector: one error line naming the rule" \
  grep -q "ipsnat.toml:6: destination 100.0.0.0/8 is not inside the policy's destination selector 100.64.0.0/16" "$tmp/log"

acq=$tmp/acq leak=$tmp/leak
timeout 40 ip -n "$gw" xfrm monitor acquire >"$acq" &
T_PIDS+=("$!")
t_wait_subscribed "$!"
timeout 40 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode 'udp port 5000' >"$leak" 2>"$leak.err" &
T_PIDS+=("$!")
t_wait_capturing "$leak.err"
# probe DST: a LAN datagram to DST, up to 6 times (0.5 s apart, each after dropping the larval
# states, which the kernel otherwise keeps answering without a new ACQUIRE), until an ACQUIRE
# names DST. A destination that must not be acquired gets all 6.
probe() {
  for _ in $(seq 6); do
    ip -n "$gw" xfrm state flush
    ip netns exec "$lan" python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x" * 64, (sys.argv[1], 5000))' "$1" || true
    sleep 0.5
    if grep -q "dst $1/32" "$acq"; then return 0; fi
  done
}
for dst in 10.1.0.1 10.2.0.1 172.31.0.1 100.64.0.1; do probe "$dst"; done
expect_ok "towards the rule's destination: ACQUIRE names the NAT address" \
  grep -q 'sel src 198.18.7.2/32 dst 10.1.0.1/32 proto udp' "$acq"
expect_ok "elsewhere in the policy (10.2.0.1): no ACQUIRE at all" bash -c "! grep -q 'dst 10.2.0.1/32' '$acq'"
expect_ok "\`to\` inside the /24 selector: ACQUIRE names exactly 172.16.40.9" \
  grep -q 'sel src 172.16.40.9/32 dst 172.31.0.1/32 proto udp' "$acq"
expect_ok "the policy the rule is refused for: no translation, no ACQUIRE" bash -c "! grep -q 'dst 100.64.0.1/32' '$acq'"
expect_ok "no ACQUIRE names the LAN source" bash -c "! grep -q 'src 192.168.61' '$acq'"
expect_ok "nothing reached the WAN in cleartext" bash -c "! grep -q 'IP ' '$leak'"
((FAILS)) && { cat "$acq" "$leak" "$tmp/log"; t_in "$gw" "$IPSNAT" status; ip -n "$gw" route show table all | grep -v local; } >&2

kill -TERM "$daemon_pid" 2>/dev/null || true
wait "$daemon_pid" 2>/dev/null || true
t_in "$gw" "$IPSNAT" detach eth0 || true
finish
