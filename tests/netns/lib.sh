# Sourced by netns-tier scenarios: unique namespace names, cleanup on any exit, assertions.
# Namespaces, topologies and their cleanup are the lab library's (scripts/lab/netns.sh), the same
# the VM lab and the demo use; so are the assertions (scripts/lab/assert.sh, also the VM tier's).
# This file adds the netns tier's gateway options.
# IPSNAT (the binary) and IPSNAT_SRC come from CTest; defaults serve a manual run from build/.
set -eEuo pipefail
# set -e ends a test at an unexpected failing command: name it, or the log just stops.
# (Only the top shell: failures inside $(...) are the caller's to judge.)
trap '_err_rc=$?; ((BASH_SUBSHELL)) || echo "   error: \"$BASH_COMMAND\" exited $_err_rc (${BASH_SOURCE[0]##*/}:$LINENO)" >&2' ERR
IPSNAT=${IPSNAT:-$(dirname "${BASH_SOURCE[0]}")/../../build/loader/ipsnat}
IPSNAT_BPF_OBJ=${IPSNAT_BPF_OBJ:-$(dirname "${BASH_SOURCE[0]}")/../../build/generated/bpf/ipsnat_bpf.bpf.o}
IPSNAT_SRC=${IPSNAT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
# shellcheck source=../../scripts/lab/netns.sh
source "${BASH_SOURCE[0]%/*}/../../scripts/lab/netns.sh"
# shellcheck source=../../scripts/lab/assert.sh
source "${BASH_SOURCE[0]%/*}/../../scripts/lab/assert.sh"
LAB_PREFIX="ipsnat-t$$"   # every namespace of the scenario: ipsnat-tPID-ROLE
LAB_STATE=                # no lab state directory (t_tmpdir is the scratch space)

T_PIDS=()
T_TMP=
daemon_pid=   # a scenario's `ipsnat run`, killed on exit
t_cleanup() {
  local pid f
  [[ -n $daemon_pid ]] && kill -KILL "$daemon_pid" 2>/dev/null || true
  for pid in "${T_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Host processes a hand-run attach started (their pid is in the state records; ours only if
  # its command line names this scenario's private pin root).
  for f in "${IPSNAT_STATE_DIR:-/nonexistent}"/*.json; do
    [[ -f $f && -n ${IPSNAT_PIN_ROOT:-} ]] || continue
    pid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get('daemon_pid',0))" "$f" 2>/dev/null || echo 0)
    [[ $pid != 0 ]] && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qx -- "$IPSNAT_PIN_ROOT" &&
      kill "$pid" 2>/dev/null || true
  done
  if [[ -n $T_TMP && $T_TMP == /tmp/ipsnat-t* ]]; then rm -rf "$T_TMP"; fi
  lab_down   # by prefix: also what `ns=$(t_netns x)` created in a subshell, and its processes
  if [[ -n ${IPSNAT_PIN_ROOT:-} && $IPSNAT_PIN_ROOT == /sys/fs/bpf/ipsnat-t* ]]; then rm -rf "$IPSNAT_PIN_ROOT"; fi
  if [[ -n ${IPSNAT_STATE_DIR:-} && $IPSNAT_STATE_DIR == /tmp/ipsnat-state-t* ]]; then
    while mountpoint -q "$IPSNAT_STATE_DIR"; do umount -l "$IPSNAT_STATE_DIR" || break; done  # a scenario's bind mount
    rm -rf "$IPSNAT_STATE_DIR"
  fi
}
trap t_cleanup EXIT

# t_ipv6_on NS...: IPv6 on in each namespace, without router advertisements (addresses are static).
t_ipv6_on() {
  local ns
  for ns in "$@"; do
    t_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
  done
}

# t_ipv6_gateway LAN WAN: namespaces $lan, $gw and $wan with IPv6 on (static addresses): the LAN
# host LAN::a/64 behind the gateway's l0 (LAN::1), the gateway's uplink eth0 (WAN::1/64) to the
# WAN's eth1 (WAN::2), its default route; the gateway forwards. LAN and WAN are /64 prefixes
# without the "::/64", e.g. fd00:61:1 and 2001:db8:ff61.
t_ipv6_gateway() {
  local lannet=$1 wannet=$2
  lan=$(t_netns lan) gw=$(t_netns gw) wan=$(t_netns wan)
  t_ipv6_on "$lan" "$gw" "$wan"
  ip link add l1 netns "$lan" type veth peer name l0 netns "$gw"
  ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
  ip -n "$lan" addr add "$lannet::a/64" dev l1 nodad
  ip -n "$gw" addr add "$lannet::1/64" dev l0 nodad
  ip -n "$gw" addr add "$wannet::1/64" dev eth0 nodad
  ip -n "$wan" addr add "$wannet::2/64" dev eth1 nodad
  t_links_up "$lan:l1" "$gw:l0" "$gw:eth0" "$wan:eth1"
  ip -n "$lan" -6 route add default via "$lannet::1"
  ip -n "$gw" -6 route add default via "$wannet::2"
  t_in "$gw" sysctl -qw net.ipv6.conf.all.forwarding=1
  T_WAN6=$wannet
}

# t_out6 REQID PRIORITY SRC DST [selector words...]: an IPv6 out-policy on t_ipv6_gateway's $gw,
# tunnel mode from its uplink to the WAN's address (no SA: a packet it covers raises an ACQUIRE).
t_out6() {
  local reqid=$1 prio=$2 src=$3 dst=$4
  shift 4
  ip -n "$gw" xfrm policy add src "$src" dst "$dst" "$@" dir out priority "$prio" \
    tmpl src "$T_WAN6::1" dst "$T_WAN6::2" proto esp reqid "$reqid" mode tunnel
}

# t_tmpdir: a scratch directory in $T_TMP, removed on exit.
t_tmpdir() { T_TMP=$(mktemp -d "/tmp/ipsnat-t$$-XXXXXX"); }

# t_netns ROLE: creates namespace ipsnat-tPID-ROLE with lo up; prints its name.
t_netns() {
  lab_netns "$LAB_PREFIX-$1"
  echo "$LAB_PREFIX-$1"
}

# t_in NS command...: the netns tier's name for lab_in (nsenter --net: bpffs pins resolve).
t_in() { lab_in "$@"; }

# t_wait_for SECONDS command...: until the command succeeds (polled every 0.2 s); 1 on timeout.
t_wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.2; done
}
# t_wait_listening NS tcp|udp PORT: until a socket in NS listens on (is bound to) PORT, at most
# 10 s; a server started in the background is ready only then (python starts slowly under load).
t_wait_listening() {
  local flag=-Hlnt
  [[ $2 == udp ]] && flag=-Hlnu
  t_wait_for 10 eval "[[ -n \$(ip netns exec '$1' ss $flag 'sport = :$3') ]]"
}
# t_wait_links_up NS...: until every device with carrier in each NS is operationally up with its
# qdisc attached (linkwatch has run: a packet sent before meets the noop qdisc), at most 5 s each;
# goes on either way (a device that stays down is for the test's own checks to find).
t_wait_links_up() {
  local ns
  for ns; do
    t_wait_for 5 eval "ip -n '$ns' -o link show | awk '/LOWER_UP/ && !/LOOPBACK/ &&
      (/ qdisc noop / || / state (DOWN|LOWERLAYERDOWN) /) {bad = 1} END {exit bad}'" || true
  done
}
# t_wait_subscribed PID: until the background command PID (e.g. `timeout 10 ip -n NS xfrm monitor
# acquire`), or its child, holds a netlink socket bound to a multicast group: from then on the
# kernel queues every event of the group for it. At most 10 s; 1 on timeout.
_t_subscribed() {
  local p fd l
  # shellcheck disable=SC2046 # the children are words
  for p in "$1" $(pgrep -P "$1"); do
    for fd in /proc/"$p"/fd/*; do
      l=$(readlink "$fd" 2>/dev/null) || continue
      [[ $l == socket:\[*\] ]] || continue
      l=${l#socket:[} l=${l%]}
      awk -v i="$l" '$10 == i && $4 != "00000000" {f = 1} END {exit !f}' /proc/"$p"/net/netlink 2>/dev/null && return 0
    done
  done
  return 1
}
t_wait_subscribed() { t_wait_for 10 _t_subscribed "$1"; }
# t_acquire_count FILE...: the ACQUIREs in the output files of `ip xfrm monitor acquire`.
# t_wait_acquire N FILE...: until they hold more than N (a packet sent after the count raised its
# ACQUIRE), at most 2 s; 1 on timeout.
t_acquire_count() { cat "$@" | grep -c '^acquire' || true; }
_t_more_acquires() { local n=$1; shift; (($(t_acquire_count "$@") > n)); }
t_wait_acquire() { t_wait_for 2 _t_more_acquires "$@"; }
# t_acquires_while GW LAN CMD...: the ACQUIREs GW's kernel raises while namespace LAN runs CMD
# (GW's larval states flushed first, so the SA is asked for again); CMD sends a packet, whose
# ACQUIRE is awaited at most 2 s.
t_acquires_while() {
  local gw=$1 lan=$2 acq mon
  shift 2
  acq=$(mktemp)
  ip -n "$gw" xfrm state flush
  timeout 10 ip -n "$gw" xfrm monitor acquire >"$acq" &
  mon=$!
  t_wait_subscribed "$mon" || true
  t_in "$lan" "$@" >/dev/null 2>&1 || true
  t_wait_acquire 0 "$acq" || true
  kill "$mon" 2>/dev/null || true
  wait "$mon" 2>/dev/null || true
  cat "$acq"
  rm -f "$acq"
}
# t_wait_capturing FILE: until the tcpdump whose stderr goes to FILE says "listening on" (its
# filter is in place: what arrives from then on is captured). At most 10 s; 1 on timeout.
t_wait_capturing() { t_wait_for 10 grep -q '^listening on' "$1"; }
# t_json EXPR: EXPR of the JSON document on stdin (python, the document is `s`).
t_json() { python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }


# A private pin root and state directory for this scenario (removed on exit): never the real ones.
t_private_roots() {
  export IPSNAT_PIN_ROOT="/sys/fs/bpf/ipsnat-t$$"
  export IPSNAT_STATE_DIR="/tmp/ipsnat-state-t$$"
}

# Everything attach/detach may touch in a namespace, for before/after comparison.
t_snapshot() {
  local ns=$1 dev
  ip -n "$ns" -d link show
  ip -n "$ns" addr show
  tc -n "$ns" qdisc show
  for dev in $(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
    echo "== $dev"
    tc -n "$ns" filter show dev "$dev" ingress 2>/dev/null || true
    tc -n "$ns" filter show dev "$dev" egress 2>/dev/null || true
  done
  ip -n "$ns" route show table all
  ip -n "$ns" rule show
  ip -n "$ns" xfrm policy show
}

# bpffs must be mounted for pins; CI machines may start without it.
t_require_bpffs() {
  if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf
  fi
}

# t_veth_pair NS A B: a veth pair A<->B inside NS, both up (a device to attach to, no traffic).
t_veth_pair() {
  ip -n "$1" link add "$2" type veth peer name "$3"
  ip -n "$1" link set "$2" up
  ip -n "$1" link set "$3" up
}

# t_links_up NS:DEV...: sets each device up in its namespace.
t_links_up() {
  local l
  for l; do ip -n "${l%%:*}" link set "${l#*:}" up; done
}

# t_pinned_map_id NAME: the kernel id of the map pinned as $IPSNAT_PIN_ROOT/NAME.
t_pinned_map_id() {
  bpftool -j map show pinned "$IPSNAT_PIN_ROOT/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# t_stop_background: stop the helpers a test started in the background (T_PIDS) and wait for them,
# so their output files are complete.
t_stop_background() {
  local pid
  for pid in "${T_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  T_PIDS=()
}

# t_set_dev_mark NS DEV MARK: ipsnat_dev[DEV].mark = MARK, as `attach` writes it for a VTI whose
# okey is MARK (maps/config.h: mode, if_id, mark are its first three words). This kernel has no
# VTI module, so the VTI tests attach a veth in route mode and give it the VTI's mark this way.
t_set_dev_mark() {
  local ns=$1 dev=$2 mark=$3 i key value
  i=$(ip -n "$ns" -o link show "$dev" | cut -d: -f1)
  key=$(printf '0x%02x 0x%02x 0x%02x 0x%02x' $((i & 255)) $((i >> 8 & 255)) 0 0)
  # shellcheck disable=SC2086
  value=$(bpftool -j map lookup pinned "$IPSNAT_PIN_ROOT/ipsnat_dev" key $key | python3 -c '
import json, sys
v = [int(b, 16) for b in json.load(sys.stdin)["value"]]
v[8:12] = int(sys.argv[1]).to_bytes(4, "little")
print(" ".join("0x%02x" % b for b in v))' "$mark")
  # shellcheck disable=SC2086
  bpftool map update pinned "$IPSNAT_PIN_ROOT/ipsnat_dev" key $key value $value
}

# t_mark_arrivals NS DEV MARK: packets arriving on DEV in NS carry MARK from prerouting on, so
# NS's forward path makes its xfrm lookup with it, as ip_vti's does with its okey (the VTI tests'
# stand-in for the VTI's own lookup).
t_mark_arrivals() {
  t_in "$1" nft -f - <<EOF
table inet vti {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    iifname "$2" meta mark set $3
  }
}
EOF
}

# t_gateway_netns: the three namespaces of t_gateway, named in $lan, $gw and $wan.
t_gateway_netns() {
  lan=$(t_netns lan)
  gw=$(t_netns gw)
  wan=$(t_netns wan)
}

# t_gateway_scenario: what a gateway scenario starts with: bpffs, private roots, the three
# namespaces ($lan, $gw, $wan) and a scratch directory ($tmp).
t_gateway_scenario() {
  t_require_bpffs
  t_private_roots
  t_gateway_netns
  t_tmpdir
  tmp=$T_TMP
}

# t_gateway LAN GW WAN [OPTION=VALUE...]: the seed's gateway (scripts/lab/gateway.topo) in the
# namespaces LAN, GW and WAN: LAN host (lan1) -- (lan0) GW (UPLINK) -- (eth1) WAN, the remote
# network's address on WAN's lo. Options and their seed defaults:
#   uplink=tun0 host=192.168.1.10/24 gw_lan=192.168.1.1 gw_wan=200.2.2.2/24 wan=200.2.2.1
#   remote=10.0.0.1 remote_net=10.0.0.0/8 (GW's route to WAN; "default" for a default route)
#   nat= (if set: WAN routes NAT/32 back to GW, from REMOTE)
t_gateway() {
  local lan=$1 gw=$2 wan=$3
  shift 3
  local uplink=tun0 host=192.168.1.10/24 gw_lan=192.168.1.1 gw_wan=200.2.2.2/24 wan_ip=200.2.2.1
  local remote=10.0.0.1 remote_net=10.0.0.0/8 nat=
  while (($#)); do
    case $1 in
      uplink=*) uplink=${1#*=} ;; host=*) host=${1#*=} ;; gw_lan=*) gw_lan=${1#*=} ;;
      gw_wan=*) gw_wan=${1#*=} ;; wan=*) wan_ip=${1#*=} ;; remote=*) remote=${1#*=} ;;
      remote_net=*) remote_net=${1#*=} ;; nat=*) nat=${1#*=} ;;
      *) echo "t_gateway: unknown option $1" >&2; return 1 ;;
    esac
    shift
  done
  # gateway.topo's variables: devices, and the addresses apart from their prefix lengths.
  local lan_dev=lan1 gw_lan_dev=lan0 wan_dev=eth1 lan_plen=${host#*/} wan_plen=${gw_wan#*/}
  host=${host%/*} gw_wan=${gw_wan%/*}
  lab_topology "$LAB_DIR/gateway.topo" lan="$lan" gw="$gw" wan="$wan"
  if [[ -n $nat ]]; then ip -n "$wan" route add "$nat/32" via "$gw_wan" src "$remote"; fi
}

# t_seed_out_policy GW: the seed's IPv4 out-policy on GW (10.20.30.2 -> 10.0.0.0/8, ESP tunnel
# 200.2.2.2 -> 100.1.1.1, reqid 1), as strongSwan installs it.
t_seed_out_policy() {
  ip -n "$1" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519 \
    tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
}

# t_seed_policies GW: the policies strongSwan installs for the seed's virtual IP 10.20.30.2
# (out to 10.0.0.0/8 and its in-policy, tunnel 200.2.2.2 <-> 100.1.1.1, reqid 1), no SA: a flow
# the out-policy matches makes the kernel send an ACQUIRE.
t_seed_policies() {
  ip -n "$1" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519 \
    tmpl src 200.2.2.2 dst 100.1.1.1 proto esp reqid 1 mode tunnel
  ip -n "$1" xfrm policy add src 10.0.0.0/8 dst 10.20.30.2/32 dir in priority 379519 \
    tmpl src 100.1.1.1 dst 200.2.2.2 proto esp reqid 1 mode tunnel
}

# t_policy_gateway: the seed's gateway for policy mode (uplink eth0, the default route to WAN)
# with t_seed_policies, in namespaces named in $lan, $gw and $wan.
t_policy_gateway() {
  t_gateway_netns
  t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default
  t_seed_policies "$gw"
}

# t_dual_stack_policy_gateway: the dual-stack lab of IPv6 policy mode in $lana, $gw, $wan. A LAN
# on gw's bridge br0 (172.16.77.0/24, fd00:77:1::/64), the uplink eth0 (198.18.77.1/24,
# 2001:db8:ff77::1/64) towards wan (.2/::2); out-policies 10.77.0.2/32 -> 10.77.9.0/24 (reqid 1),
# 2001:db8:77::5/128 -> 2001:db8:e77::/48 (reqid 2: NAT66 to strongSwan's virtual IPv6, not
# local) and 2001:db8:d77:1::/64 -> 2001:db8:b77::/48 (reqid 3: NPTv6 with --binat); wan answers
# on 2001:db8:e77::1 and 2001:db8:b77::1 and routes the LAN and 2001:db8:77::/48 back to gw.
t_dual_stack_policy_gateway() {
  lana=$(t_netns lana) gw=$(t_netns gw) wan=$(t_netns wan)
  for ns in "$lana" "$gw" "$wan"; do
    t_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
  done
  ip -n "$gw" link add br0 type bridge
  ip link add a1 netns "$lana" type veth peer name a0 netns "$gw"
  ip -n "$gw" link set a0 master br0
  ip link add eth0 netns "$gw" type veth peer name eth1 netns "$wan"
  ip -n "$gw" addr add 172.16.77.1/24 dev br0
  ip -n "$gw" addr add fd00:77:1::1/64 dev br0 nodad
  ip -n "$lana" addr add 172.16.77.10/24 dev a1
  ip -n "$lana" addr add fd00:77:1::a/64 dev a1 nodad
  ip -n "$gw" addr add 198.18.77.1/24 dev eth0
  ip -n "$gw" addr add 2001:db8:ff77::1/64 dev eth0 nodad
  ip -n "$wan" addr add 198.18.77.2/24 dev eth1
  ip -n "$wan" addr add 2001:db8:ff77::2/64 dev eth1 nodad
  for l in "$lana a1" "$gw a0" "$gw br0" "$gw eth0" "$wan eth1"; do
    set -- $l
    ip -n "$1" link set "$2" up
  done
  ip -n "$lana" route add default via 172.16.77.1
  ip -n "$lana" -6 route add default via fd00:77:1::1
  ip -n "$gw" route add default via 198.18.77.2
  ip -n "$gw" -6 route add default via 2001:db8:ff77::2
  ip -n "$wan" -6 addr add 2001:db8:e77::1/128 dev lo
  ip -n "$wan" -6 addr add 2001:db8:b77::1/128 dev lo
  ip -n "$wan" -6 route add fd00:77:1::/64 via 2001:db8:ff77::1
  ip -n "$wan" -6 route add 2001:db8:77::/48 via 2001:db8:ff77::1
  t_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ip -n "$gw" xfrm policy add src 10.77.0.2/32 dst 10.77.9.0/24 dir out \
    tmpl src 198.18.77.1 dst 198.18.77.2 proto esp reqid 1 mode tunnel
  ip -n "$gw" xfrm policy add src 2001:db8:77::5/128 dst 2001:db8:e77::/48 dir out \
    tmpl src 2001:db8:ff77::1 dst 2001:db8:ff77::2 proto esp reqid 2 mode tunnel
  ip -n "$gw" xfrm policy add src 2001:db8:d77:1::/64 dst 2001:db8:b77::/48 dir out \
    tmpl src 2001:db8:ff77::1 dst 2001:db8:ff77::2 proto esp reqid 3 mode tunnel
  t_wait_links_up "$lana" "$gw" "$wan"
  t_in "$lana" ping -6 -c 2 -i 0.3 -W 2 2001:db8:e77::1 >/dev/null || true  # neighbours resolved
}

# t_icmp6_port_unreachable NS HOST REMOTE: HOST (an address in NS) sends REMOTE the ICMPv6 port
# unreachable it would send about a reply of its UDP flow HOST:40077 -> REMOTE:7400 (REMOTE's
# port 7400 to HOST's 40077 quoted; the kernel fills in the ICMPv6 checksum of a raw socket).
t_icmp6_port_unreachable() {
  t_in "$1" timeout 5 python3 -c "
import socket, struct, sys
lan, remote = socket.inet_pton(socket.AF_INET6, sys.argv[1]), socket.inet_pton(socket.AF_INET6, sys.argv[2])
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff or 0xffff
udp = struct.pack('!HHHH', 7400, 40077, 16, 0) + b'reply...'
udp = udp[:6] + struct.pack('!H', csum(remote + lan + struct.pack('!I3xB', len(udp), 17) + udp)) + udp[8:]
quote = struct.pack('!IHBB', 6 << 28, len(udp), 17, 63) + remote + lan + udp
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.bind((sys.argv[1], 0))
s.sendto(struct.pack('!BBHI', 1, 4, 0, 0) + quote, (sys.argv[2], 0))" "$2" "$3" || true
}

# t_recipe_gateway: t_policy_gateway for comparisons with the netfilter recipe, with the seed's
# addresses in $nat and $remote, and a second LAN host address, $host2 beside $host1 (two LAN
# hosts to tell apart by translation). WAN has no route back to $nat: nothing answers, so no
# reset ends a binding under test (netfilter frees a tuple at once on a reset, ipsnat's
# conntrack keeps it until its GC expires it).
t_recipe_gateway() {
  nat=10.20.30.2 remote=10.0.0.1 host1=192.168.1.10 host2=192.168.1.11
  t_gateway_netns
  t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default
  t_seed_policies "$gw"
  ip -n "$lan" addr add "$host2/24" dev lan1
  t_wait_links_up "$lan" "$gw" "$wan"
}

# t_recipe_snat GW: adds the recipe's first rule to GW (nft table ip recipe): the LAN's traffic to
# the remote network SNATed to $nat in postrouting, where netfilter looks the policy up again
# after the NAT. t_recipe_del GW removes the table.
t_recipe_snat() {
  ip netns exec "$1" nft -f - <<EOF
table ip recipe {
  chain post {
    type nat hook postrouting priority srcnat;
    ip saddr 192.168.1.0/24 ip daddr 10.0.0.0/8 snat to $nat
  }
}
EOF
}
t_recipe_del() { ip netns exec "$1" nft delete table ip recipe; }
