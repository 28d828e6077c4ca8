#!/bin/bash
# Protocols without ports (GRE, IPv6 in IPv4) against the netfilter recipe as the oracle: the
# same packets of two LAN hosts go through the seed's gateway translated by ipsnat and by the
# recipe in its place, and what the remote side's and the LAN's captures show must agree. Before
# IPsec: ipsnat in route mode on the uplink against nft `snat to` (the policy's address); the
# masquerade: `ipsnat attach eth0 --masquerade` against nft `oifname eth0 masquerade`. For each:
# the first LAN host's packet reaches the remote side from the translated address, the remote
# side's answer reaches that host, and the second host's packet to the same remote address with
# the same protocol meets the same fate under both. Policy mode before IPsec: the kernel's
# ACQUIRE names the translated source for GRE (no ESP here to carry it further).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_recipe_gateway
t_tmpdir
ip -n "$wan" route add "$nat/32" via 200.2.2.2 src "$remote" # the remote side answers
uplink=200.2.2.2
internet=200.2.2.1

# raw NS SRC DST PROTO: one packet of protocol PROTO from SRC to DST (a GRE header for 47, an
# IPv6 header's first bytes for 41), sent through a raw socket in namespace NS.
raw() {
  t_in "$1" python3 -c '
import socket, sys
src, dst, proto = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
s.bind((src, 0))
body = b"\x00\x00\x08\x00" + b"ipsnat-portless" if proto == 47 else b"\x60" + b"\x00" * 39
s.sendto(body, (dst, 0))
' "$2" "$3" "$4" >/dev/null 2>&1 || true
}

# captured NS DEV FILTER CMD...: runs CMD while NS captures FILTER on DEV; prints the source
# address of the first packet captured within 2 s, or "none".
captured() {
  local ns=$1 dev=$2 filter=$3 out
  shift 3
  out=$(mktemp "$T_TMP/cap.XXXXXX")
  : >"$out.err"
  timeout 10 ip netns exec "$ns" tcpdump -l -n -i "$dev" --immediate-mode "$filter" >"$out" 2>"$out.err" &
  local pid=$!
  T_PIDS+=("$pid")
  t_wait_capturing "$out.err"
  "$@"
  t_wait_for 2 test -s "$out" || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk '$2 == "IP" {print $3; found = 1; exit} END {if (!found) print "none"}' "$out"
}

# outcome PROTO DST ADDR: what becomes of host1's and then host2's packet to DST: the source the
# remote side saw, the source host1 saw on the answer DST sends to ADDR (the translated address),
# and the source the remote side saw of host2's packet.
outcome() {
  local proto=$1 dst=$2 addr=$3
  echo "$(captured "$wan" eth1 "ip proto $proto and dst host $dst" raw "$lan" "$host1" "$dst" "$proto")" \
    "$(captured "$lan" lan1 "ip proto $proto and dst host $host1" raw "$wan" "$dst" "$addr" "$proto")" \
    "$(captured "$wan" eth1 "ip proto $proto and dst host $dst" raw "$lan" "$host2" "$dst" "$proto")"
}

compare() {
  local what=$1 want=$2 ours theirs
  ours=$3 theirs=$4
  read -r o1 oback o2 <<<"$ours"
  read -r t1 tback t2 <<<"$theirs"
  expect_eq "$what: the recipe: host1's packet left as $want" "$t1" "$want"
  expect_eq "$what: ipsnat: host1's packet left as the recipe's ($t1)" "$o1" "$t1"
  expect_eq "$what: ipsnat: the answer reached host1 as the recipe's did (from $tback)" "$oback" "$tback"
  expect_eq "$what: ipsnat: host2's packet to the same address as the recipe's ($t2)" "$o2" "$t2"
}

# Before IPsec: route mode against `snat to`.
expect_ok "attach in route mode succeeds" t_in "$gw" "$IPSNAT" attach eth0 --mode route --no-daemon
gre_ipsnat=$(outcome 47 "$remote" "$nat")
sit_ipsnat=$(outcome 41 "$remote" "$nat")
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
ip -n "$gw" xfrm policy flush # the recipe's packets would be held before netfilter keeps their binding
t_recipe_snat "$gw"
gre_recipe=$(outcome 47 "$remote" "$nat")
sit_recipe=$(outcome 41 "$remote" "$nat")
t_recipe_del "$gw"
compare "GRE to $remote" "$nat" "$gre_ipsnat" "$gre_recipe"
compare "IPv6 in IPv4 to $remote" "$nat" "$sit_ipsnat" "$sit_recipe"

# The masquerade: ipsnat's own against netfilter's (new LAN bindings: another remote address).
t_seed_policies "$gw"
expect_ok "attach --masquerade succeeds" t_in "$gw" "$IPSNAT" attach eth0 --masquerade
masq_ipsnat=$(outcome 47 "$internet" "$uplink")
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
ip netns exec "$gw" conntrack -F >/dev/null 2>&1 || true
ip netns exec "$gw" nft -f - <<EOF
table ip recipe {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "eth0" masquerade
  }
}
EOF
masq_recipe=$(outcome 47 "$internet" "$uplink")
t_recipe_del "$gw"
compare "masqueraded GRE to $internet" "$uplink" "$masq_ipsnat" "$masq_recipe"

# Policy mode: the xfrm lookup after ipsnat's LWT program sees GRE from the policy's address.
expect_ok "attach in policy mode succeeds" t_in "$gw" "$IPSNAT" attach eth0
acq=$(t_acquires_while "$gw" "$lan" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
s.sendto(b"\x00\x00\x08\x00ipsnat", ("'"$remote"'", 0))
')
expect_ok "policy mode: the ACQUIRE names GRE from $nat" grep -q "sel src $nat/32 dst $remote/32 proto gre" <<<"$acq"
[[ $acq == *"sel src $nat/32"* ]] || echo "$acq" >&2
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
finish
