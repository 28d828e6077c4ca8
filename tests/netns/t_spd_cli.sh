#!/bin/bash
# `ipsnat policies` and `ipsnat explain` read the kernel's SPD in a namespace; bad input gives a
# one-line error. Second scenario uses other prefixes (nothing seed-specific in the product).
source "$(dirname "$0")/lib.sh"
ns=$(t_netns spdcli)
t_in "$ns" ip xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519 \
  tmpl src 200.2.2.2 dst 100.1.1.1 proto esp mode tunnel reqid 1
t_in "$ns" ip xfrm policy add src 172.31.0.0/24 dst 198.51.100.0/24 dir out priority 5 \
  tmpl src 203.0.113.1 dst 203.0.113.2 proto esp mode tunnel reqid 9
t_in "$ns" ip xfrm policy add src fd00::/64 dst fd01::/64 dir out priority 7
t_in "$ns" ip xfrm policy add src 2001:db8:a:1::/64 dst 2001:db8:f00::/40 dir out priority 9 \
  tmpl src 2001:db8:ff::1 dst 2001:db8:ff::2 proto esp mode tunnel reqid 11

json=$(t_in "$ns" "$IPSNAT" -j policies --inside 192.168.1.0/24 --inside 10.99.0.0/24 --inside fd00:9:9:9::/64)
expect_ok "policies -j lists all four (IPv6 included)" \
  test "$(jq '.policies | length' <<<"$json")" = 4
expect_ok "implied NPTv6 from the IPv6 inside prefix of the same length" \
  test "$(jq -r '.policies[] | select(.src=="2001:db8:a:1::/64") | .nat.kind + " " + .nat.inside + " " + .nat.to' <<<"$json")" = "nptv6 fd00:9:9:9::/64 2001:db8:a:1::/64"
expect_ok "policies prints the NPTv6 line" \
  grep -q "nat nptv6 fd00:9:9:9::/64 -> 2001:db8:a:1::/64" <<<"$(t_in "$ns" "$IPSNAT" policies --inside fd00:9:9:9::/64)"
expect_ok "implied NAPT to the /32 source" \
  test "$(jq -r '.policies[] | select(.src=="10.20.30.2/32") | .nat.kind + " " + .nat.to' <<<"$json")" = "napt 10.20.30.2/32"
expect_ok "implied 1:1 prefix map for the /24 source" \
  test "$(jq -r '.policies[] | select(.src=="172.31.0.0/24") | .nat.kind + " " + .nat.inside' <<<"$json")" = "prefix 192.168.1.0/24"

# NAT66 (a one-address IPv6 source) takes every IPv6 inside prefix; policies and explain agree.
t_in "$ns" ip xfrm policy add src 2001:db8:b:7::5/128 dst 2001:db8:e00::/40 dir out priority 9 \
  tmpl src 2001:db8:ff::1 dst 2001:db8:ff::2 proto esp mode tunnel reqid 12
json6=$(t_in "$ns" "$IPSNAT" -j policies --inside fd00:9:9:9::/64 --inside fd42:6:7::/48)
expect_ok "implied NAT66 from both IPv6 inside prefixes" \
  test "$(jq -r '.policies[] | select(.src=="2001:db8:b:7::5/128") | .nat.kind + " " + .nat.inside + " " + .nat.to' <<<"$json6")" = "nat66 fd00:9:9:9::/64, fd42:6:7::/48 2001:db8:b:7::5/128"
ex6=$(t_in "$ns" "$IPSNAT" -j explain fd42:6:7:8::21 2001:db8:e00::1 udp 4000 53 --inside fd00:9:9:9::/64 --inside fd42:6:7::/48)
expect_ok "explain: the second prefix's host is translated to the policy's address" \
  test "$(jq -r .translation.to <<<"$ex6")" = "2001:db8:b:7::5"
ex6=$(t_in "$ns" "$IPSNAT" -j explain fd42:6:8::21 2001:db8:e00::1 udp 4000 53 --inside fd00:9:9:9::/64 --inside fd42:6:7::/48)
expect_ok "explain: a source in no inside prefix is not" \
  grep -q 'source not in an IPv6 inside prefix' <<<"$ex6"
t_in "$ns" ip xfrm policy del src 2001:db8:b:7::5/128 dst 2001:db8:e00::/40 dir out

ex=$(t_in "$ns" "$IPSNAT" -j explain 192.168.1.10 10.0.0.1 udp 4000 53 --inside 192.168.1.0/24)
expect_ok "explain: cleartext before" test "$(jq -r .before.verdict <<<"$ex")" = "no out-policy: leaves in cleartext"
expect_ok "explain: translated to 10.20.30.2" test "$(jq -r .translation.to <<<"$ex")" = "10.20.30.2"
expect_ok "explain: protected after" test "$(jq -r .after.verdict <<<"$ex")" = "protected"
ex2=$(t_in "$ns" "$IPSNAT" -j explain 192.168.1.77 198.51.100.9 tcp 1 2 --inside 192.168.1.0/24)
expect_ok "explain: 1:1 map keeps the host part" test "$(jq -r .translation.to <<<"$ex2")" = "172.31.0.77"

err=$(t_in "$ns" "$IPSNAT" explain 192.168.1.300 10.0.0.1 2>&1 >/dev/null || true)
expect_ok "bad address: one-line error" test "$(wc -l <<<"$err")" = 1
expect_ok "bad address: names the input" grep -q "192.168.1.300" <<<"$err"
expect_ok "bad port exits 1" bash -c "! nsenter --net=/run/netns/$ns $IPSNAT explain 1.1.1.1 2.2.2.2 tcp 1 70000 2>/dev/null"
finish
