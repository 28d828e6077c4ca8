#!/bin/bash
# NAPT over a pool of NAT addresses end to end in route mode (docs/datapath.md "NAPT pools",
# docs/config.md [[nat]]). The tunnel device is a veth given --mode route, as in
# t_attach_binat.sh (this kernel has no ESP).
# (a) Unequal sizes: the out-policy's source is a /29, the LAN a /24. `ipsnat attach` plans NAPT
#     over the /29; twelve LAN hosts send two UDP flows each; the far side's kernel (its server
#     sockets' peer addresses) sees only addresses inside the /29, the same one for both flows of
#     a host, several in all; every reply reaches its host; `ipsnat status` counts the bindings
#     per NAT address, the addresses the far side saw. In the first run the gateway holds an
#     address of the /29 (a virtual IP, its second address): the plan's pool leaves it out and
#     the far side never sees a LAN flow from it.
# (b) A pool from the config: `ipsnat run` with a [[nat]] rule `to = "FIRST-LAST"` spreads the
#     hosts over exactly those addresses; status per address.
# (c) A pool outside the policy's source selector: the daemon logs one line naming the file and
#     line, and translates nothing.
# Run for two sets of prefixes (nothing in the product may know the seed).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_tmpdir
tmp=$T_TMP
peer=$IPSNAT_SRC/tests/netns/echo_peer.py

# send LAN REMOTE PORT HOST...: from each LAN host one UDP datagram to REMOTE:PORT and one to
# REMOTE:PORT+1; prints "HOST SEEN SEEN" per host, SEEN being the source the far side saw ("-":
# no reply reached the host within 3 s).
send() {
  ip netns exec "$1" timeout 120 python3 - "${@:2}" <<'PY'
import socket, sys
remote, port = sys.argv[1], int(sys.argv[2])
for h in sys.argv[3:]:
    seen = []
    for p in (port, port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.bind((h, 0))
        s.sendto(b"pool" * 16, (remote, p))
        try:
            seen.append(s.recv(4096).decode().split()[0])
        except OSError:
            seen.append("-")
        s.close()
    print(h, *seen)
PY
}

# servers WAN REMOTE PORT COUNT: a UDP server answering COUNT datagrams on PORT and one on PORT+1.
servers() {
  local p
  for p in "$3" "$(($3 + 1))"; do
    ip netns exec "$1" timeout 60 python3 "$peer" server udp "$2" "$p" "$4" 2>/dev/null &
    T_PIDS+=("$!")
    t_wait_listening "$1" udp "$p"
  done
}

# judge NAME OUT FIRST LAST MIN_ADDRS: every host got replies on both flows, from one address
# inside FIRST..LAST, at least MIN_ADDRS addresses in all; prints the addresses used.
judge() {
  python3 - "$@" <<'PY'
import ipaddress, sys
name, out, first, last, want = sys.argv[1], sys.argv[2], *map(ipaddress.ip_address, sys.argv[3:5]), int(sys.argv[5])
used, bad = set(), []
for line in out.splitlines():
    host, a, b = line.split()
    if a == "-" or a != b or not (first <= ipaddress.ip_address(a) <= last):
        bad.append(line)
    used.add(a)
print(" ".join(sorted(used)))
sys.exit(1 if bad or len(out.splitlines()) != 12 or len(used) < want else 0)
PY
}

# by_address: the NAT addresses `ipsnat status` lists with their bindings, "ADDR=N ..." sorted.
by_address() {
  t_in "$gw" "$IPSNAT" -j status --state-dir "$tmp/run" |
    t_json '" ".join(sorted("%s=%d" % (a["nat_address"], a["bindings"]) for a in s["limits"]["nat_ports"]["by_address"]))'
}

# pool_case NAME NET24 REMOTE REMOTE_NET GW_WAN WAN BLOCK29 RULE_FIRST RULE_LAST [LOCAL]
# LOCAL: the gateway's own address, the /29's second one, which the pool then leaves out.
pool_case() {
  local name=$1 net=$2 remote=$3 rnet=$4 gww=$5 wanip=$6 block=$7 rfirst=$8 rlast=$9 local=${10:-}
  local hosts=() i out used want
  lan=$(t_netns "$name-lan") gw=$(t_netns "$name-gw") wan=$(t_netns "$name-wan")
  t_gateway "$lan" "$gw" "$wan" host="$net.10/24" gw_lan="$net.1" gw_wan="$gww/24" wan="$wanip" \
    remote="$remote" remote_net="$rnet"
  for i in $(seq 10 21); do
    hosts+=("$net.$i")
    [[ $i == 10 ]] || ip -n "$lan" addr add "$net.$i/24" dev lan1
  done
  ip -n "$wan" route add "$block" via "$gww" src "$remote"
  ip -n "$gw" xfrm policy add src "$block" dst "$rnet" dir out \
    tmpl src "$gww" dst "$wanip" proto esp reqid 1 mode tunnel
  local first last
  first=${block%/*}
  last=${first%.*}.$((${first##*.} + 7))
  if [[ -n $local ]]; then
    ip -n "$gw" addr add "$local/32" dev lo
    first=${first%.*}.$((${first##*.} + 2))
  fi

  # (a) unequal sizes, the pool the SPD implies (without the gateway's own address).
  expect_ok "$name: dry-run plans napt over the /29${local:+ without $local}" \
    bash -c "nsenter --net=/run/netns/$gw $IPSNAT attach tun0 --mode route --dry-run | grep -q 'napt $net.0/24 -> $first-$last'"
  expect_ok "$name: attach" t_in "$gw" "$IPSNAT" attach tun0 --mode route --no-daemon -q
  servers "$wan" "$remote" 7000 12
  out=$(send "$lan" "$remote" 7000 "${hosts[@]}")
  [[ -n ${T_KEEP:-} ]] && echo "$out"
  used=$(judge "$name" "$out" "$first" "$last" 3) && ok=1 || ok=0
  if [[ $ok == 0 ]]; then echo "$out"; { t_in "$gw" "$IPSNAT" status --state-dir "$tmp/run" | sed -n "/^counters:/,/^limits/p"; t_in "$gw" "$IPSNAT" flows | head -4; } || true; fi
  expect_ok "$name: the far side saw each of 12 hosts from one address of $first-$last for both flows, replies reached them all ($used)" test $ok == 1
  want=$(python3 -c "import sys,collections; c=collections.Counter(l.split()[1] for l in sys.argv[1].splitlines()); print(' '.join(sorted(f'{a}={2*n}' for a,n in c.items())))" "$out")
  expect_ok "$name: status counts the bindings per NAT address ($(by_address) == $want)" test "$(by_address)" == "$want"
  expect_ok "$name: detach" t_in "$gw" "$IPSNAT" detach tun0
  rm -rf "$IPSNAT_PIN_ROOT"

  # (b) a pool the config names, inside the policy's /29.
  cat >"$tmp/$name.toml" <<CONF
state_dir = "$tmp/run"
inside = ["$net.0/24"]
[[device]]
name = "tun0"
mode = "route"
[[nat]]
inside = "$net.0/24"
to = "$rfirst-$rlast"
CONF
  nsenter --net="/run/netns/$gw" "$IPSNAT" run --config "$tmp/$name.toml" 2>"$tmp/$name.log" &
  local daemon=$!
  T_PIDS+=("$daemon")
  hooked() { tc -n "$gw" filter show dev tun0 egress | grep -q tc_snat_egress; }
  expect_ok "$name: the daemon attached tun0" t_wait_for 15 hooked
  servers "$wan" "$remote" 7100 12
  out=$(send "$lan" "$remote" 7100 "${hosts[@]}")
  [[ -n ${T_KEEP:-} ]] && echo "$out"
  used=$(judge "$name" "$out" "$rfirst" "$rlast" 2) && ok=1 || ok=0
  expect_ok "$name: [[nat]] to = \"$rfirst-$rlast\": the far side saw only those two, one per host ($used)" test $ok == 1
  want=$(python3 -c "import sys,collections; c=collections.Counter(l.split()[1] for l in sys.argv[1].splitlines()); print(' '.join(sorted(f'{a}={2*n}' for a,n in c.items())))" "$out")
  expect_ok "$name: status per pool address ($(by_address) == $want)" test "$(by_address)" == "$want"

  # (c) a pool reaching beyond the policy's /29: one line naming the file and line, no NAT.
  first=${block%/*}
  local beyond=${first%.*}.$((${first##*.} + 6))-${first%.*}.$((${first##*.} + 9))
  sed -i "s/^to = .*/to = \"$beyond\"/" "$tmp/$name.toml"
  kill -HUP "$daemon"
  logged() { grep -q "nat rule $tmp/$name.toml:6: pool $beyond is not inside the policy's source selector $block" "$tmp/$name.log"; }
  expect_ok "$name: to = \"$beyond\": the daemon names the file and line" t_wait_for 10 logged
  kill "$daemon"
  wait "$daemon" 2>/dev/null || true
  t_in "$gw" "$IPSNAT" detach tun0 >/dev/null 2>&1 || true
  rm -rf "$IPSNAT_PIN_ROOT"
}

pool_case alt 172.22.5 10.64.1.1 10.64.0.0/10 198.51.100.2 198.51.100.1 100.70.8.8/29 100.70.8.10 100.70.8.11 100.70.8.9
pool_case seed 192.168.1 10.0.0.1 10.0.0.0/8 200.2.2.2 200.2.2.1 10.20.30.0/29 10.20.30.2 10.20.30.3
finish
