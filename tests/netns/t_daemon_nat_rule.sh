#!/bin/bash
# `ipsnat run --config` applies [[nat]] rules (docs/config.md), judged by the kernel's ACQUIRE
# (policies without SAs, policy mode): a rule with `destinations` translates its LAN only towards
# them (the rest of the policy's destination stays untranslated and the guard keeps it in: no
# ACQUIRE, nothing on the WAN); a rule whose `to` lies inside a policy's /24 source selector
# translates to exactly `to` (NAPT), not the 1:1 map the selector implies; a destination outside
# the policy's selector is refused in one log line naming the rule. IPv6 alike: a rule's `to` inside
# a policy's /64 source selector (which alone, without --binat, translates nothing) takes the rule's
# LAN with NAT66 to exactly `to`, `ipsnat policies` and `ipsnat explain` say so, a rule whose `to`
# lies in no selector is named in one log line, and a family mix is refused by --check-config.
source "$(dirname "$0")/lib.sh"
t_gateway_scenario

t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default host=192.168.61.10/24 gw_lan=192.168.61.1
ip -n "$gw" xfrm policy add src 198.18.7.2/32 dst 10.0.0.0/8 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
ip -n "$gw" xfrm policy add src 172.16.40.0/24 dst 172.31.0.0/16 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.2 proto esp reqid 2 mode tunnel
ip -n "$gw" xfrm policy add src 198.18.7.2/32 dst 100.64.0.0/16 dir out priority 1000 \
  tmpl src 200.2.2.2 dst 100.1.1.3 proto esp reqid 3 mode tunnel
t_ipv6_on "$lan" "$gw" "$wan"
ip -n "$lan" addr add fd00:61::a/64 dev lan1 nodad
ip -n "$gw" addr add fd00:61::1/64 dev lan0 nodad
ip -n "$gw" addr add 2001:db8:ff61::1/64 dev eth0 nodad
ip -n "$wan" addr add 2001:db8:ff61::2/64 dev eth1 nodad
ip -n "$lan" -6 route add default via fd00:61::1
ip -n "$gw" -6 route add default via 2001:db8:ff61::2
t_in "$gw" sysctl -qw net.ipv6.conf.all.forwarding=1
ip -n "$gw" xfrm policy add src 2001:db8:a1::/64 dst 2001:db8:e1::/48 dir out priority 1000 \
  tmpl src 2001:db8:ff61::1 dst 2001:db8:ff61::2 proto esp reqid 4 mode tunnel

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
[[nat]]
inside = "fd00:61::/64"
to = "2001:db8:a1::9"
[[nat]]
inside = "fd00:63::/64"
to = "2001:db8:dead::1"
EOF
printf '[[nat]]\ninside = "fd00:61::/64"\nto = "198.18.7.2"\n' >"$tmp/mix.toml"
expect_ok "a family mix is refused in one line naming file and line" \
  bash -c "'$IPSNAT' run --config '$tmp/mix.toml' --check-config 2>&1 | grep -q 'mix.toml:3: nat\[0\].to: expected an IPv6 address'"
t_wait_links_up "$lan" "$gw" "$wan"
nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$conf" 2>>"$tmp/log" &
daemon_pid=$!
T_PIDS+=("$daemon_pid")
expect_ok "daemon starts" t_wait_for 30 grep -q "ipsnat daemon started" "$tmp/log"
expect_ok "no 'not applied yet' warning" bash -c "! grep -q 'not applied' '$tmp/log'"
expect_ok "a destination wider than the policy's selector: one error line naming the rule" \
  grep -q "ipsnat.toml:6: destination 100.0.0.0/8 is not inside the policy's destination selector 100.64.0.0/16" "$tmp/log"
expect_ok "an IPv6 rule whose to lies in no selector: one error line naming the rule" \
  grep -q "ipsnat.toml:16: to 2001:db8:dead::1/128 lies in no IPv6 tunnel out-policy's source selector" "$tmp/log"
t_in "$gw" "$IPSNAT" policies --config "$conf" >"$tmp/policies" 2>&1 || true
expect_ok "ipsnat policies --config shows the IPv6 rule's NAT66" \
  grep -qF "nat nat66 fd00:61::/64 -> 2001:db8:a1::9 (ports); nat rule $conf:13" "$tmp/policies"
t_in "$gw" "$IPSNAT" policies -j --config "$conf" >"$tmp/policies.json" 2>&1 || true
expect_ok "ipsnat policies -j --config names the rule beside the NAT66 to its address" \
  python3 -c 'import json, sys; n = [p["nat"] for p in json.load(open(sys.argv[1]))["policies"] if "nat" in p and p["src"] == "2001:db8:a1::/64"][0]; sys.exit(not (n["kind"] == "nat66" and n["to"] == "2001:db8:a1::9/128" and n["rule"] == sys.argv[2]))' "$tmp/policies.json" "$conf:13"
t_in "$gw" "$IPSNAT" explain fd00:61::a 2001:db8:e1::1 udp --config "$conf" >"$tmp/explain" 2>&1 || true
expect_ok "ipsnat explain --config agrees: nat66 to exactly the rule's address" \
  grep -Eq "^nat +nat66 to 2001:db8:a1::9 with a port" "$tmp/explain"

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
for _ in $(seq 6); do
  ip -n "$gw" xfrm state flush
  ip netns exec "$lan" python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b"x" * 64, ("2001:db8:e1::1", 5000))' || true
  sleep 0.5
  if grep -q "dst 2001:db8:e1::1/128" "$acq"; then break; fi
done
expect_ok "towards the rule's destination: ACQUIRE names the NAT address" \
  grep -q 'sel src 198.18.7.2/32 dst 10.1.0.1/32 proto udp' "$acq"
expect_ok "elsewhere in the policy (10.2.0.1): no ACQUIRE at all" bash -c "! grep -q 'dst 10.2.0.1/32' '$acq'"
expect_ok "\`to\` inside the /24 selector: ACQUIRE names exactly 172.16.40.9" \
  grep -q 'sel src 172.16.40.9/32 dst 172.31.0.1/32 proto udp' "$acq"
expect_ok "the policy the rule is refused for: no translation, no ACQUIRE" bash -c "! grep -q 'dst 100.64.0.1/32' '$acq'"
expect_ok "no ACQUIRE names the LAN source" bash -c "! grep -q 'src 192.168.61' '$acq'"
expect_ok "IPv6: ACQUIRE names exactly the rule's address inside the /64 selector" \
  grep -q 'sel src 2001:db8:a1::9/128 dst 2001:db8:e1::1/128 proto udp' "$acq"
expect_ok "no ACQUIRE names the IPv6 LAN source" bash -c "! grep -q 'src fd00:61' '$acq'"
expect_ok "nothing reached the WAN in cleartext" bash -c "! grep -Eq 'IP6? ' '$leak'"
((FAILS)) && { cat "$acq" "$leak" "$tmp/log" "$tmp/policies" "$tmp/explain"; t_in "$gw" "$IPSNAT" status; ip -n "$gw" route show table all | grep -v local; } >&2

kill -TERM "$daemon_pid" 2>/dev/null || true
wait "$daemon_pid" 2>/dev/null || true
t_in "$gw" "$IPSNAT" detach eth0 || true
finish
