#!/bin/bash
# Source ports against the netfilter recipe as the oracle. The same LAN flows go through the
# seed's gateway twice, from two LAN hosts one after the other with the same source port to the
# same remote endpoint (the second collides with the first's binding): once translated by ipsnat,
# once by the 2.6-era recipe (nft `snat to` the policy's address in postrouting) in its place.
# The remote side's capture shows the source port each flow left with. Where the recipe keeps a
# port, ipsnat must keep it; where the recipe gives another, ipsnat must give another of the
# same class: 1-511, 600-1023 (a privileged port stays privileged: an NFS export's default
# "secure" option and rsh trust only those) or 1024-65535. IKE's port 500 is the exception:
# ipsnat never hands it out.
# No ESP here, so both must leave in cleartext to be seen: ipsnat runs in route mode on the
# uplink (translated after the xfrm lookup, by the NAPT of every mode: bpf/lib/nat.h), and the
# recipe runs without the out-policy, which would hold its packets before netfilter keeps their
# binding. The port choice depends on neither.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots
t_recipe_gateway
t_tmpdir

# class PORT: where netfilter's NAT searches a taken source port (nf_nat_l4proto_unique_tuple).
class() {
  if (($1 < 512)); then echo low; elif (($1 < 1024)); then echo privileged; else echo high; fi
}

cap=$T_TMP/remote.cap
start_capture() {
  : >"$cap"
  timeout 120 ip netns exec "$wan" tcpdump -l -n -i eth1 --immediate-mode \
    "dst host $remote and (udp or tcp[tcpflags] & tcp-syn != 0)" >"$cap" 2>"$cap.err" &
  capture=$!
  T_PIDS+=("$capture")
  t_wait_capturing "$cap.err"
}
stop_capture() { kill "$capture" 2>/dev/null || true; wait "$capture" 2>/dev/null || true; }

# sent_port SRC SPORT PROTO DPORT: the source port SRC:SPORT's first packet to $remote:DPORT
# reached the remote side with ("none": none came within 2 s; "from:ADDRESS.PORT": not from $nat).
_lines_to() { grep -c "> $remote\.$1:" "$cap" || true; }
_more_lines() { (($(_lines_to "$1") > $2)); }
sent_port() {
  local n line
  n=$(_lines_to "$4")
  t_in "$lan" python3 -c '
import socket, sys
src, sport, proto, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.settimeout(0.3)
try:
    s.sendto(b"probe", (dst, dport)) if proto == "udp" else s.connect((dst, dport))
except OSError:
    pass
' "$1" "$2" "$3" "$remote" "$4" >/dev/null 2>&1 || true
  t_wait_for 2 _more_lines "$4" "$n" || { echo none; return; }
  line=$(grep "> $remote\.$4:" "$cap" | sed -n "$((n + 1))p")
  [[ $line == *" IP $nat."* ]] || { echo "from:$(awk '{print $3}' <<<"$line")"; return; }
  sed 's/.* IP [0-9.]*\.\([0-9]*\) > .*/\1/' <<<"$line"
}

# The flows: protocol and source port; each to its own remote port, first host then second.
flows=("udp 700" "udp 111" "udp 550" "tcp 1023" "udp 40000" "tcp 100" "udp 500")
run_flows() {
  local i proto port
  for i in "${!flows[@]}"; do
    read -r proto port <<<"${flows[i]}"
    echo "$proto $port $(sent_port "$host1" "$port" "$proto" $((2000 + i))) $(sent_port "$host2" "$port" "$proto" $((2000 + i)))"
  done
}
numbers() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]]; }

expect_ok "attach in route mode succeeds" t_in "$gw" "$IPSNAT" attach eth0 --mode route --no-daemon
start_capture
mapfile -t with_ipsnat < <(run_flows)
stop_capture
expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0

ip -n "$gw" xfrm policy flush
t_recipe_snat "$gw"
start_capture
mapfile -t with_recipe < <(run_flows)
stop_capture
t_recipe_del "$gw"

for i in "${!flows[@]}"; do
  read -r proto port r1 r2 <<<"${with_recipe[i]}"
  read -r _ _ i1 i2 <<<"${with_ipsnat[i]}"
  expect_ok "recipe: $proto $port: both flows left from $nat ($r1 $r2)" numbers "$r1" "$r2"
  expect_ok "ipsnat: $proto $port: both flows left from $nat ($i1 $i2)" numbers "$i1" "$i2"
  numbers "$r1" "$r2" && numbers "$i1" "$i2" || continue
  for h in 1 2; do
    r=r$h x=i$h
    if ((port == 500 || port == 4500)); then
      # Where ipsnat differs on purpose: IKE's and NAT-T's ports are never handed out on the NAT
      # address (docs/datapath.md, NAPT), which may be the gateway's own.
      expect_ok "$proto $port, host $h: never the IKE port (${!x}; the recipe ${!r})" test "${!x}" != "$port"
      expect_eq "$proto $port, host $h: of its class (${!x})" "$(class "${!x}")" "$(class "$port")"
    elif [[ ${!r} == "$port" ]]; then
      expect_eq "$proto $port, host $h: the port kept, as by the recipe" "${!x}" "$port"
    else
      expect_ok "$proto $port, host $h: another port, as by the recipe (${!x}; the recipe ${!r})" test "${!x}" != "$port"
      expect_eq "$proto $port, host $h: of the recipe's class (${!x}, the recipe ${!r})" "$(class "${!x}")" "$(class "${!r}")"
    fi
  done
  expect_ok "$proto $port: two bindings ($i1 $i2)" test "$i1" != "$i2"
done
finish
