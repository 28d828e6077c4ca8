#!/bin/bash
# `ipsnat attach DEV` prints the plan it carried out (the same lines as --dry-run): every hook,
# route, rule, companion policy and translation it names is in the kernel afterwards (tc filter,
# ip route, ip rule, ip xfrm policy), and everything ipsnat installed is named; -j prints the same
# plan as JSON; -q prints nothing. Policy mode on a veth uplink (the style with the most steps),
# with prefixes other than the seed's so nothing in the product is tied to them. Each printed route
# is looked for in the table it names: with --no-daemon ipsnat's table 421 behind rule 210; with the
# host process (the namespace has no other rule) the main table, and no rule.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

lan=$(t_netns lan)
gw=$(t_netns gw)
for ns in "$lan" "$gw"; do t_in "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1; done
ip link add lan1 netns "$lan" type veth peer name lan0 netns "$gw"
ip -n "$gw" link add up0 type veth peer name up1
ip -n "$lan" addr add 172.16.5.10/24 dev lan1
ip -n "$lan" link set lan1 up
ip -n "$gw" addr add 172.16.5.1/24 dev lan0
ip -n "$gw" addr add 198.51.100.2/24 dev up0
for d in lan0 up0 up1; do ip -n "$gw" link set "$d" up; done
ip -n "$gw" route add default via 198.51.100.1
ip -n "$gw" xfrm policy add src 10.77.0.9/32 dst 10.128.0.0/12 dir out priority 2000 \
  tmpl src 198.51.100.2 dst 203.0.113.7 proto esp reqid 4 mode tunnel
ip -n "$gw" xfrm policy add src 10.77.0.9/32 dst 10.200.0.0/16 dir out priority 2000 \
  tmpl src 198.51.100.2 dst 203.0.113.7 proto esp reqid 5 mode tunnel
sleep 0.5

before_pol=$(ip -n "$gw" xfrm policy | grep -c '^src' || true)

# check_printed PLAN: every hook, route, rule and companion policy PLAN names is in the kernel,
# each route in the table it names, and ipsnat installed nothing PLAN does not name.
check_printed() {
  local plan=$1 line dst table routes mtu n_comp after_pol
  expect_ok "first line: device and mode" grep -q '^attach up0 mode policy (veth)$' <<<"$plan"
  expect_ok "two hooks printed" test "$(grep -c '^  tc ' <<<"$plan" || true)" == 2
  while read -r _ hook _ prog; do
    expect_ok "printed hook $hook $prog is attached" \
      bash -c "tc -n $gw filter show dev up0 $hook | grep -q 'handle 0x1a5 .*$prog'"
  done < <(grep '^  tc ' <<<"$plan")

  # The kernel's routes of ipsnat (proto 165), wherever they are, against the printed ones.
  expect_ok "printed routes == ipsnat's routes in the kernel, all tables ($(ip -n "$gw" route show table all proto 165 | grep -c . || true))" \
    test "$(grep -c '^  route ' <<<"$plan" || true)" == "$(ip -n "$gw" route show table all proto 165 | grep -c . || true)"
  for table in main 421; do
    expect_ok "printed routes naming table $table == ipsnat's routes in table $table" \
      test "$(grep -c "^  route .* table $table\( \|$\)" <<<"$plan" || true)" == \
      "$(ip -n "$gw" route show table "$table" proto 165 2>/dev/null | grep -c . || true)"
  done
  while read -r line; do
    dst=$(awk '{print ($2 == "blackhole") ? $3 : $2}' <<<"$line")
    table=$(grep -o ' table [a-z0-9]*' <<<"$line" | awk '{print $2}')
    routes=$(ip -n "$gw" route show table "$table" 2>/dev/null || true)  # unfiltered: lines name their proto
    if [[ $line == *blackhole* ]]; then
      expect_ok "printed blackhole $dst is installed in table $table" grep -q "^blackhole ${dst%/32} proto 165" <<<"$routes"
    else
      mtu=$(grep -o 'mtu [0-9]*' <<<"$line")
      expect_ok "printed route $dst is installed in table $table (lwt, via, dev, $mtu)" \
        grep -q "^$dst *encap bpf xmit lwt_snat_xmit.* via 198.51.100.1 dev up0 proto 165 .*$mtu" <<<"$routes"
      expect_ok "printed route $dst names its device" grep -q "via 198.51.100.1 dev up0 " <<<"$line"
    fi
  done < <(grep '^  route ' <<<"$plan")

  # The rule: printed and installed exactly when a route is outside the main table.
  if grep -q '^  route .* table 421\( \|$\)' <<<"$plan"; then
    expect_ok "printed rule is installed" \
      bash -c "grep -q '^  rule priority 210 lookup 421$' <<<'$plan' && ip -n $gw rule | grep -q '^210:.*lookup 421 proto 165'"
  else
    expect_ok "no rule printed" bash -c "! grep -q '^  rule ' <<<'$plan'"
    expect_ok "no rule installed" bash -c "! ip -n $gw rule | grep -q 'lookup 421\|proto 165'"
  fi

  after_pol=$(ip -n "$gw" xfrm policy | grep -c '^src' || true)
  n_comp=$(grep -c '^  xfrm policy ' <<<"$plan" || true)
  expect_ok "printed companion policies == policies added ($n_comp)" test $((after_pol - before_pol)) == "$n_comp"
  expect_ok "six companions (fwd and in for the LAN, fwd for the uplink's address; two destinations)" test "$n_comp" == 6
  while read -r _ _ _ src _ dst _ dir _; do
    expect_ok "printed companion $src -> $dst dir $dir is installed" \
      bash -c "ip -n $gw xfrm policy | grep -A1 '^src $src dst $dst' | grep -q 'dir $dir'"
  done < <(grep '^  xfrm policy ' <<<"$plan")
}

# --no-daemon: no host process to move the routes when another tool adds a rule, so they go to
# ipsnat's table 421 behind rule 210.
plan=$(t_in "$gw" "$IPSNAT" attach up0 --no-daemon --forward udp:5353=172.16.5.10:53)
echo "$plan" | sed 's/^/  | /'
dry=$(t_in "$gw" "$IPSNAT" attach up0 --no-daemon --forward udp:5353=172.16.5.10:53 --dry-run)
expect_ok "attach prints the same lines as --dry-run" test "$plan" == "$dry"
for dst in 10.128.0.0/12 10.200.0.0/16; do
  expect_ok "--no-daemon: an LWT route for $dst is printed in table 421" grep -q "^  route $dst table 421 " <<<"$plan"
done
check_printed "$plan"

expect_ok "the translations are printed" \
  bash -c "[[ \$(grep -c '^  translate policy [0-9]* 10.77.0.9/32 -> 10.\(128.0.0/12\|200.0.0/16\): napt 172.16.5.0/24 -> 10.77.0.9$' <<<'$plan') == 2 ]]"
expect_ok "the forward is printed" grep -q '^  forward udp 10.77.0.9:5353 -> 172.16.5.10:53$' <<<"$plan"
expect_ok "the printed forward is in ipsnat_fwd" \
  bash -c "bpftool -j map dump pinned $IPSNAT_PIN_ROOT/ipsnat_fwd | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d) == 1 and d[0][\"formatted\"][\"key\"][\"port\"] == 0xe914 else 1)'"

json=$(t_in "$gw" "$IPSNAT" -j attach up0 --no-daemon --forward udp:5353=172.16.5.10:53)
expect_ok "-j: the same plan as JSON, carried out" python3 -c '
import json, sys
j = json.loads(sys.argv[1]); text = sys.argv[2].splitlines()
assert j["dry_run"] is False and j["mode"] == "policy", j
steps = [s["text"] for s in j["steps"]]
assert steps == [l[2:] for l in text if l.startswith(("  tc ", "  route ", "  rule ", "  xfrm policy "))], steps
assert len(j["translations"]) == 2 and j["forwards"] == ["udp:10.77.0.9:5353=172.16.5.10:53"], j
' "$json" "$plan"
out=$(t_in "$gw" "$IPSNAT" attach up0 --no-daemon -q --forward udp:5353=172.16.5.10:53 2>&1)
expect_ok "-q prints nothing ($out)" test -z "$out"

expect_ok "detach" t_in "$gw" "$IPSNAT" detach up0
expect_ok "detach removed the printed routes" test -z "$(ip -n "$gw" route show table all proto 165)"
expect_ok "detach removed the printed rule" bash -c "! ip -n $gw rule | grep -q 'lookup 421'"
expect_ok "detach removed the printed companions" test "$(ip -n "$gw" xfrm policy | grep -c '^src' || true)" == "$before_pol"

# With the host process, in a namespace without another rule: the routes go to the main table,
# without a rule; --dry-run prints the same plan.
dry=$(t_in "$gw" "$IPSNAT" attach up0 --forward udp:5353=172.16.5.10:53 --dry-run)
plan=$(t_in "$gw" "$IPSNAT" attach up0 --forward udp:5353=172.16.5.10:53)
echo "$plan" | sed 's/^/  | /'
expect_ok "host process: attach prints the same lines as --dry-run" test "$plan" == "$dry"
for dst in 10.128.0.0/12 10.200.0.0/16; do
  expect_ok "host process: an LWT route for $dst is printed in the main table" grep -q "^  route $dst table main " <<<"$plan"
done
check_printed "$plan"
expect_ok "detach (host process)" t_in "$gw" "$IPSNAT" detach up0
expect_ok "detach removed the printed routes from the main table" test -z "$(ip -n "$gw" route show table all proto 165)"
expect_ok "detach removed the printed companions" test "$(ip -n "$gw" xfrm policy | grep -c '^src' || true)" == "$before_pol"
finish
