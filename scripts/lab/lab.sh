# shellcheck shell=bash
# lab.sh: the ipsnat lab network (scripts/lab/lab.topo) built with the lab library's primitives
# (scripts/lab/netns.sh), plus its variants, ESP tunnels and captures. Source it; it defines
# functions and LAB_* variables and runs nothing.
#
#   lanhost  (lan0 .10) ┐
#   lanhost2 (lan0 .11) ┴ lansw (bridge br0) ── gw (lan0 LAN .1 | eth0 WAN) ── transit (the
#   internet router; no route to private nets) ── cgw (eth0 | lan0) ── chost (lan0)
#
# Variants on top of lab_up: lab_gw_lan_bridge (gw's LAN on a bridge, a second LAN prefix),
# lab_ipv6_up (dual stack on the homeworker side; lab_esp_policy6 adds an IPv6 out-policy;
# lab_ipv6_company_up adds the company side's IPv6 LAN).
# The transit router's far address (LAB_TRANSIT_CGW_IP) doubles as an internet host.
#
# Usable on any kernel with netns/veth/bridge (host netns tests, the demo); only
# the lab_esp_* functions need ESP (run lab_esp_supported first, e.g. to skip).
# All addresses are variables: `lab_profile seed` (the HOWTO's addresses, the
# default) or `lab_profile alt` (other prefixes, SPIs, reqid, if_id, VTI key, so
# nothing may hard-code the seed), from scripts/lab/seed.profile and alt.profile. LAB_PROFILE=alt in the environment selects the
# alternative at source time; a LAB_* variable already set in the environment
# overrides its profile value then.
#
# Names, namespaced commands (lab_nsenter, lab_exec) and cleanup (lab_down: exactly the
# namespaces of LAB_PREFIX, the processes in them, LAB_STATE) come from scripts/lab/netns.sh.
# Every traffic generator here is bounded in count and time.

[[ -n ${_LAB_SH_LOADED:-} ]] && return 0
_LAB_SH_LOADED=1

export LAB_PREFIX=${LAB_PREFIX:-ipsnat-lab$$}
LAB_STATE=${LAB_STATE:-${TMPDIR:-/tmp}/$LAB_PREFIX.lab}   # pcaps, pids
# shellcheck source=netns.sh
source "${BASH_SOURCE[0]%/*}/netns.sh"

# lab_profile seed|alt [--keep-env]: set every address/ESP parameter from scripts/lab/NAME.profile.
# With --keep-env, variables already set keep their value (used at source time).
lab_profile() {
  local keep=${2:-} n v file=$LAB_DIR/${1:-}.profile
  [[ -n ${1:-} && -f $file ]] || { echo "lab_profile: unknown profile '${1:-}' (seed|alt)" >&2; return 2; }
  while IFS='=' read -r n v; do          # builtins only: cheap under TCG
    [[ -z $n || $n == \#* ]] && continue
    [[ $keep == --keep-env && -n ${!n:-} ]] && continue
    printf -v "$n" '%s' "$v"
  done <"$file"
  LAB_PROFILE=$1
  LAB_GW_LAN_DEV=lan0                    # gw's LAN device (lab_gw_lan_bridge: br-lan)
  # GCM-128: 16-byte key + 4-byte salt; one key per direction.
  LAB_KEY_OUT=${LAB_KEY_OUT:-0x$(printf '%040x' 0x1111)}
  LAB_KEY_IN=${LAB_KEY_IN:-0x$(printf '%040x' 0x2222)}
  LAB_AEAD=${LAB_AEAD:-rfc4106(gcm(aes))}
}
lab_profile "${LAB_PROFILE:-seed}" --keep-env

# --- topology ----------------------------------------------------------------
# lab_up: the lab network of scripts/lab/lab.topo (after removing any lab of this prefix).
lab_up() {
  lab_down
  mkdir "$LAB_STATE"
  lab_topology "$LAB_DIR/lab.topo"
}

# lab_gw_addr_add ADDR [DEV]: a local /32 on the gateway, like the virtual IP that
# strongSwan installs on the uplink (default DEV: eth0).
lab_gw_addr_add() { _lab_ip gw addr add "$1/32" dev "${2:-eth0}"; }

# lab_gw_lan_bridge: the LAN on a bridge on gw (br-lan, lan0 its port), as on a router whose
# LAN ports are bridged, with a second LAN prefix (LAB_LAN2_NET) on the same bridge;
# lanhost2 gets an address in it too (LAB_LANHOST2_LAN2_IP).
lab_gw_lan_bridge() {
  _lab_batch gw <<EOF
link add name br-lan type bridge
link set br-lan addrgenmode none
addr del $LAB_GW_LAN_IP/$LAB_LAN_PLEN dev lan0
link set lan0 master br-lan
addr add $LAB_GW_LAN_IP/$LAB_LAN_PLEN dev br-lan
addr add $LAB_GW_LAN2_IP/${LAB_LAN2_NET#*/} dev br-lan
link set br-lan up
EOF
  _lab_ip lanhost2 addr add "$LAB_LANHOST2_LAN2_IP/${LAB_LAN2_NET#*/}" dev lan0
  LAB_GW_LAN_DEV=br-lan
  # The bridge's operational state turns UP only when the kernel's link watch gets to it (a
  # second or more after its port forwards; later on a busy VM): until then `ip link` says
  # UNKNOWN, and a snapshot of gw taken meanwhile differs from any later one. At most 20 s.
  local end=$((SECONDS + 20))
  while ((SECONDS < end)); do
    [[ $(_lab_ip gw -o link show br-lan) == *" state UP "* ]] && return 0
    sleep 0.1
  done
  echo "lab: br-lan on gw not UP after 20 s: $(_lab_ip gw -o link show br-lan)" >&2
}

# lab_ipv6_up: dual stack on the homeworker side: IPv6 on lanhost, gw (LAN and uplink) and
# transit's gw link, a default route each way, forwarding on gw. No DAD; the link-local
# addresses are set by hand (the links have addrgenmode none), since a router resolves a
# forwarded packet's next hop from its link-local address.
lab_ipv6_up() {
  _lab_batch gw <<EOF
addr add fe80::1/64 dev $LAB_GW_LAN_DEV nodad
addr add $LAB_GW_LAN6_IP/${LAB_LAN6_NET#*/} dev $LAB_GW_LAN_DEV nodad
addr add fe80::2/64 dev eth0 nodad
addr add $LAB_GW_WAN6_IP/64 dev eth0 nodad
route add ::/0 via $LAB_TRANSIT_GW6_IP dev eth0
EOF
  _lab_batch lanhost <<EOF
addr add fe80::10/64 dev lan0 nodad
addr add $LAB_LANHOST_IP6/${LAB_LAN6_NET#*/} dev lan0 nodad
route add ::/0 via $LAB_GW_LAN6_IP dev lan0
EOF
  _lab_batch transit <<EOF
addr add fe80::3/64 dev to-gw nodad
addr add $LAB_TRANSIT_GW6_IP/64 dev to-gw nodad
EOF
  lab_nsenter gw sysctl -qw net.ipv6.conf.all.forwarding=1
}

# lab_ipv6_lanhost2_up: lanhost2 on the IPv6 LAN too (LAB_LANHOST2_IP6), as lab_ipv6_up sets up
# lanhost. Needs lab_ipv6_up.
lab_ipv6_lanhost2_up() {
  _lab_batch lanhost2 <<EOF
addr add fe80::11/64 dev lan0 nodad
addr add $LAB_LANHOST2_IP6/${LAB_LAN6_NET#*/} dev lan0 nodad
route add ::/0 via $LAB_GW_LAN6_IP dev lan0
EOF
}

# lab_ipv6_company_up: the company's IPv6 LAN: cgw (LAB_CGW_LAN_IP6) and chost (LAB_CHOST_IP6)
# on lan0, forwarding on cgw, link-local addresses by hand as in lab_ipv6_up. As for IPv4, chost
# has no default route, only one to the IPv6 NAT address via cgw: it can answer the tunnel only.
# cgw gets no IPv6 uplink: IPv6 reaches it inside the IPv4 tunnel or not at all.
lab_ipv6_company_up() {
  _lab_batch cgw <<EOF
addr add fe80::fe/64 dev lan0 nodad
addr add $LAB_CGW_LAN_IP6/$LAB_CLAN6_PLEN dev lan0 nodad
EOF
  _lab_batch chost <<EOF
addr add fe80::1/64 dev lan0 nodad
addr add $LAB_CHOST_IP6/$LAB_CLAN6_PLEN dev lan0 nodad
route add $LAB_NAT_IP6/128 via $LAB_CGW_LAN_IP6 dev lan0
EOF
  lab_nsenter cgw sysctl -qw net.ipv6.conf.all.forwarding=1
}

# lab_transit_ndp_proxy ADDR: transit answers neighbour solicitations for ADDR on its gw link
# (proxy NDP), as an uplink whose router takes on-link traffic would. strongSwan's route for a
# remote IPv6 network over IPv4 peers is on-link (table 220: REMOTE6 dev eth0, no gateway), so
# without this a cleartext packet to ADDR stops at neighbour discovery on gw and never reaches
# the capture; with it, it leaves gw and transit drops it (no route). Needs lab_ipv6_up.
lab_transit_ndp_proxy() {
  lab_nsenter transit sysctl -qw net.ipv6.conf.to-gw.forwarding=1 net.ipv6.conf.to-gw.proxy_ndp=1
  _lab_ip transit -6 neigh add proxy "$1" dev to-gw
}

# lab_esp_policy6: what strongSwan adds on gw for a second (IPv6) virtual IP over the same
# IPv4 peers: LAB_NAT_IP6 on eth0, out NAT_IP6/128 -> COMPANY6_NET and in/fwd back, tunnel
# templates with the IPv4 endpoints. No IPv6 SA: nothing of the LAN's may match it anyway.
lab_esp_policy6() {
  {
    echo "addr add $LAB_NAT_IP6/128 dev eth0 nodad"
    _lab_policies "$LAB_NAT_IP6/128" "$LAB_COMPANY6_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP"
  } | _lab_batch gw
}

# --- traffic (bounded) -------------------------------------------------------
# lab_ping NS DEST [ping options...]: LAB_PING_COUNT (3) echoes 0.2 s apart,
# 1 s wait for the last (so at most ~count*0.2+1 s). Succeeds if any reply arrived.
lab_ping() {
  local ns=$1 dst=$2; shift 2
  lab_nsenter "$ns" ping -n -q -c "${LAB_PING_COUNT:-3}" -i 0.2 -W 1 "$@" "$dst" >/dev/null 2>&1
}

# --- ESP (needs a kernel with esp4 + GCM; in the VM, or a host that has them) --
# lab_esp_supported: 0 if this kernel accepts a GCM ESP tunnel SA.
lab_esp_supported() {
  local ns=$LAB_PREFIX-probe ok=1
  [[ -d /sys/module/esp4 ]] || modprobe -q esp4 2>/dev/null || true
  ip netns add "$ns" 2>/dev/null || return 1
  ip -n "$ns" xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 1 mode tunnel \
    aead "$LAB_AEAD" "$LAB_KEY_OUT" 128 2>/dev/null && ok=0
  ip netns del "$ns"
  return $ok
}

# _lab_sa_pair LOCAL REMOTE SPI_OUT KEY_OUT SPI_IN KEY_IN [extra state args]:
# prints the two `xfrm state add` lines (for _lab_batch). LAB_SA_FLAGS (e.g. af-unspec: the SA
# carries both inner families over its outer one, as strongSwan's dual-stack CHILD_SAs do) is
# given to every SA of both gateways.
_lab_sa_pair() {
  local l=$1 r=$2 so=$3 ko=$4 si=$5 ki=$6 f=${LAB_SA_FLAGS:+flag $LAB_SA_FLAGS}; shift 6
  echo "xfrm state add src $l dst $r proto esp spi $so reqid $LAB_REQID mode tunnel aead $LAB_AEAD $ko 128 $f $*"
  echo "xfrm state add src $r dst $l proto esp spi $si reqid $LAB_REQID mode tunnel aead $LAB_AEAD $ki 128 $f $*"
}

# _lab_policies LOCAL_NET REMOTE_NET TUN_LOCAL TUN_REMOTE [extra policy args]:
# prints out LOCAL->REMOTE, in and fwd REMOTE->LOCAL, tunnel-mode ESP templates.
_lab_policies() {
  local ln=$1 rn=$2 tl=$3 tr=$4 d; shift 4
  echo "xfrm policy add src $ln dst $rn dir out $* tmpl src $tl dst $tr proto esp reqid $LAB_REQID mode tunnel"
  for d in in fwd; do
    echo "xfrm policy add src $rn dst $ln dir $d $* tmpl src $tr dst $tl proto esp reqid $LAB_REQID mode tunnel"
  done
}

# The gateway's SAs, optionally with extra selector args (if_id N).
_lab_gw_sas() {
  _lab_sa_pair "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP" "$LAB_SPI_OUT" "$LAB_KEY_OUT" "$LAB_SPI_IN" "$LAB_KEY_IN" "$@"
}

# The company side is the same for every gateway style: a policy-based peer
# protecting COMPANY_NET <-> NAT_IP/32.
_lab_esp_cgw() {
  {
    _lab_sa_pair "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP" "$LAB_SPI_IN" "$LAB_KEY_IN" "$LAB_SPI_OUT" "$LAB_KEY_OUT"
    _lab_policies "$LAB_COMPANY_NET" "$LAB_NAT_IP/32" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
  } | _lab_batch cgw
}

# lab_esp_policy_tunnel: manual-key, policy-based ESP tunnel as strongSwan would
# install it: on gw out NAT_IP/32 -> COMPANY_NET, in/fwd back; cgw mirrors.
lab_esp_policy_tunnel() {
  {
    _lab_gw_sas
    _lab_policies "$LAB_NAT_IP/32" "$LAB_COMPANY_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP"
  } | _lab_batch gw
  _lab_esp_cgw
}

# _lab_esp_route_based DEV "LINK ADD ARGS" "SA ARGS" "POLICY ARGS": a route-based tunnel device
# DEV on gw (LAB_TUN_MTU, if set, is its MTU; kernel default otherwise), the SAs and policies with
# the extra selector arguments, COMPANY_NET routed into DEV; cgw mirrors.
_lab_esp_route_based() {
  local dev=$1 link=$2 sa=$3 pol=$4
  {
    echo "link add name $dev $link"
    [[ -z ${LAB_TUN_MTU:-} ]] || echo "link set $dev mtu $LAB_TUN_MTU"
    echo "link set $dev up"
    # shellcheck disable=SC2086 # the extra arguments are words
    _lab_gw_sas $sa
    # shellcheck disable=SC2086
    _lab_policies "$LAB_NAT_IP/32" "$LAB_COMPANY_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP" $pol
    echo "route add $LAB_COMPANY_NET dev $dev"
  } | _lab_batch gw
  _lab_esp_cgw
}

# lab_esp_xfrmi [DEV]: route-based with an xfrm interface (default ipsec0) on gw:
# SAs and policies carry if_id LAB_IF_ID.
lab_esp_xfrmi() {
  _lab_esp_route_based "${1:-ipsec0}" "type xfrm dev eth0 if_id $LAB_IF_ID" "if_id $LAB_IF_ID" "if_id $LAB_IF_ID"
}

# lab_esp_vti [DEV]: route-based with a VTI (default vti0) on gw, ikey=okey=
# LAB_VTI_KEY; the policies carry that value as mark (the SAs need none).
lab_esp_vti() {
  _lab_esp_route_based "${1:-vti0}" "type vti local $LAB_GW_WAN_IP remote $LAB_CGW_WAN_IP key $LAB_VTI_KEY" "" \
    "mark $LAB_VTI_KEY mask 0xffffffff"
}

# --- captures on the transit router (the next hop: where leaks are judged) ----

# lab_capture_start NAME [IFACE] [NS]: tcpdump into $LAB_STATE/NAME.pcap (default
# IFACE any, NS transit). With "any", a forwarded packet is seen twice.
lab_capture_start() {
  local name=$1 ifc=${2:-any} ns=${3:-transit} i pid l
  local pcap=$LAB_STATE/$name.pcap err=$LAB_STATE/$name.err
  [[ -d $LAB_STATE ]] || mkdir -p "$LAB_STATE"
  # A capture of the same NAME before left its pcap and its "listening on" line: the poll
  # below would see that line before the new tcpdump (slow to start under TCG) had opened
  # either file, and the count would read the old capture. Nothing of it may remain.
  rm -f "$pcap" "$err"
  # --immediate-mode + -U: nothing buffered, so stopping loses no packets.
  # -Z root: Debian's tcpdump drops to user tcpdump, which could not write here.
  # nsenter itself, not through lab_nsenter: a function in the background is a subshell, and
  # $! would be that subshell, whose end leaves tcpdump running (and the capture growing).
  nsenter --net="/run/netns/$(lab_ns "$ns")" -- tcpdump -n -i "$ifc" -Z root --immediate-mode -U -s 256 -w "$pcap" \
    </dev/null >/dev/null 2>"$err" &
  pid=$!
  disown "$pid"                          # no "Terminated" job notice from bash
  echo "$pid" >"$LAB_STATE/$name.pid"
  echo "$ns" >"$LAB_STATE/$name.ns"
  for ((i = 0; i < 300; i++)); do        # until the socket is open (<= 30 s)
    if [[ -f $err ]]; then
      while read -r l; do [[ $l == *'listening on'* ]] && return 0; done <"$err"
    fi
    kill -0 "$pid" 2>/dev/null || break
    _lab_sleep 0.1
  done
  echo "lab_capture_start: tcpdump did not start: $(_lab_first_line "$err")" >&2
  return 1
}

# lab_capture_stop NAME: stop the capture; prints the pcap path.
lab_capture_stop() {
  local name=$1 pid i
  pid=$(_lab_first_line "$LAB_STATE/$name.pid")
  [[ -n $pid ]] || { echo "lab_capture_stop: no capture $name" >&2; return 1; }
  _lab_sleep 0.3                         # let in-flight packets reach the socket
  # TERM, not INT: background jobs of a non-interactive shell ignore SIGINT.
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; _lab_sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  : >"$LAB_STATE/$name.pid"
  echo "$LAB_STATE/$name.pcap"
}

# lab_capture_count NAME FILTER...: packets in the capture matching a pcap filter.
lab_capture_count() { _lab_capture_lines "$1" "" "${@:2}"; }

# lab_capture_seen NAME FILTER...: 1 if a packet in the capture matches, else 0. tcpdump stops
# at the first match: for "some ESP went each way" checks on a capture of bulk transfers, where
# printing every matching packet to count it costs tens of seconds of emulated CPU under TCG.
lab_capture_seen() { _lab_capture_lines "$1" 1 "${@:2}"; }

# _lab_capture_lines NAME LIMIT FILTER...: matching packets, at most LIMIT (empty: all).
_lab_capture_lines() {
  local name=$1 limit=$2; shift 2
  [[ -f $LAB_STATE/$name.pcap ]] || { echo "lab_capture_count: no capture $name" >&2; return 1; }
  # wc, not a `read` loop: bash reads a pipe byte by byte, minutes for a bulk transfer under TCG.
  { tcpdump ${limit:+-c "$limit"} -q -n -r "$LAB_STATE/$name.pcap" "$@" 2>/dev/null || true; } | wc -l
}

# lab_capture_show NAME [FILTER...]: the capture as text (for failure messages),
# read inside the namespace it was taken in so interface names are right.
lab_capture_show() {
  local name=$1; shift
  lab_nsenter "$(_lab_first_line "$LAB_STATE/$name.ns")" \
    tcpdump -n -r "$LAB_STATE/$name.pcap" "$@" 2>/dev/null || true
}

# lab_cleartext_filter [NET...]: pcap filter for IP packets that are not ESP and
# involve any of NETs (default: company net, NAT address, LAN net) — private
# addresses that must only ever cross the transit inside ESP.
lab_cleartext_filter() {
  local -a nets=("$@")
  local n f=
  ((${#nets[@]})) || nets=("$LAB_COMPANY_NET" "$LAB_NAT_IP/32" "$LAB_LAN_NET" "$LAB_LAN2_NET")
  for n in "${nets[@]}"; do f+="${f:+ or }net $n"; done
  echo "ip and not esp and ($f)"
}

# lab_capture_cleartext NAME [NET...]: count of leaked cleartext packets.
lab_capture_cleartext() {
  local name=$1; shift
  lab_capture_count "$name" "$(lab_cleartext_filter "$@")"
}

# lab_cleartext6_filter: pcap filter for IPv6 packets that are not ESP and involve the company's
# IPv6 prefix or the LAN's (the IPv6 counterpart of lab_cleartext_filter), neighbour discovery
# (ICMPv6 133-137) aside: the gateway's probes of an on-link neighbour carry no one's data.
lab_cleartext6_filter() {
  echo "ip6 and not esp and not (icmp6 and ip6[40] >= 133 and ip6[40] <= 137) and (net $LAB_COMPANY6_NET or net $LAB_LAN6_NET)"
}

# lab_capture_cleartext6 NAME: count of leaked cleartext IPv6 packets.
lab_capture_cleartext6() { lab_capture_count "$1" "$(lab_cleartext6_filter)"; }

# lab_capture_natt NAME SRC DST: count of UDP-encapsulated ESP (NAT-T, port 4500; non-ESP
# markers and IKE included) from SRC to DST.
lab_capture_natt() { lab_capture_count "$1" "udp and port 4500 and src host $2 and dst host $3"; }

# lab_capture_esp NAME [SRC DST]: count of ESP packets (optionally one direction).
lab_capture_esp() {
  if (($# == 3)); then lab_capture_count "$1" "esp and src host $2 and dst host $3"
  else lab_capture_count "$1" esp; fi
}
