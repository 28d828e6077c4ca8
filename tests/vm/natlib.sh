# shellcheck shell=bash source-path=SCRIPTDIR
# natlib.sh: shared by the t_nat_*.sh scenarios (the product on real ESP).
# Sources common.sh (lab, assertions), finds the ipsnat binary, runs it in the
# gateway namespace with a private pin root and state dir, and provides the
# checks every tunnel style repeats: translated ping, the company host's view,
# TCP both ways with checksums, UDP echo, NAPT with two LAN hosts, and a
# before/after comparison of the gateway around attach/detach.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NAT_TOOL=$VM_TESTS_DIR/nattool.py
NAT_PIN_ROOT=/sys/fs/bpf/ipsnat-vmt$$
NAT_STATE_DIR=${TMPDIR:-/tmp}/ipsnat-vmt$$.state

# ipsnat_find_binary: $IPSNAT when set (CTest sets it), else the newest of
# build/loader/ipsnat and build-*/loader/ipsnat in the repository.
ipsnat_find_binary() {
  if [[ -n ${IPSNAT:-} ]]; then
    [[ -x $IPSNAT ]] || { echo "IPSNAT=$IPSNAT is not an executable" >&2; return 1; }
    echo "$IPSNAT"
    return 0
  fi
  local c best=
  for c in "$REPO_ROOT"/build/loader/ipsnat "$REPO_ROOT"/build-*/loader/ipsnat; do
    [[ -x $c ]] || continue
    if [[ -z $best || $c -nt $best ]]; then best=$c; fi
  done
  [[ -n $best ]] || { echo "no ipsnat binary: build it (scripts/build.sh) or set IPSNAT" >&2; return 1; }
  echo "$best"
}

nat_cleanup() {
  local st=$?
  lab_down
  rm -rf "$NAT_PIN_ROOT" "$NAT_STATE_DIR" 2>/dev/null || true
  exit "$st"
}
trap nat_cleanup EXIT

# nat_require: ESP in this kernel and a built binary, else SKIP (not a failure:
# outside the VM there is no ESP; without a build there is nothing to test).
nat_require() {
  require_esp
  IPSNAT_BIN=$(ipsnat_find_binary) || skip "no ipsnat binary (build first, or set IPSNAT)"
  echo "   using $IPSNAT_BIN"
}

# ipsnat_gw ARGS...: the product in the gateway namespace. nsenter keeps /sys,
# so the pins land on the real bpffs (docs/datapath.md, "Kernel path").
ipsnat_gw() {
  lab_nsenter gw env IPSNAT_PIN_ROOT="$NAT_PIN_ROOT" IPSNAT_STATE_DIR="$NAT_STATE_DIR" "$IPSNAT_BIN" "$@"
}

# _nat_reason_counts: "REASON PACKETS" for each non-zero datapath counter (summed over CPUs,
# named as `ipsnat status` names them, e.g. pass-wrong-sa), from its text ("  REASON N pkts B
# bytes"): awk, not python parsing the JSON, which takes seconds to start under TCG.
_nat_reason_counts() {
  ipsnat_gw status 2>/dev/null | awk '$3 == "pkts" { print $1, $2 }' || true
}

# nat_stats: the non-zero datapath counters, for diagnostics.
nat_stats() {
  _nat_reason_counts | while read -r name n; do echo "      stat $name: $n packets"; done
}

# nat_reason_count REASON: packets counted for REASON, 0 if none.
nat_reason_count() {
  _nat_reason_counts | awk -v r="$1" '$1 == r { n = $2 } END { print n + 0 }'
}

# nat_diag: what to look at when an expectation failed.
nat_diag() {
  echo "   --- diagnostics"
  nat_stats
  _lab_ip gw -s xfrm state 2>/dev/null | grep -E '^src|lifetime current|bytes' -A1 | head -20 | sed 's/^/      /'
  lab_exec gw cat /proc/net/xfrm_stat | awk '$2 != 0' | sed 's/^/      /'
  ipsnat_gw flows 2>&1 | head -20 | sed 's/^/      /' || true
}

# nat_gw_snapshot: the gateway's configuration that attach may change and detach
# must restore: links, qdiscs, filters, rules, routes, XFRM policies, nftables.
# Six processes whatever the number of devices (each exec costs ~0.1-0.3 s under TCG): every
# device's qdiscs and filters come from one `tc -batch`, rules and routes from one `ip -batch`.
nat_gw_snapshot() {
  local links l
  local -a devs=()
  links=$(_lab_ip gw -d link show)
  # Without counters and timers (a bridge's run down): state, not configuration.
  sed -E 's/ (promiscuity|allmulti) [0-9]+//g; s/ ([a-z_]*timer) +[0-9.]+/ \1/g' <<<"$links"
  while IFS= read -r l; do   # "N: NAME[@PEER]: <FLAGS> ..."
    [[ $l =~ ^[0-9]+:\ ([^:@ ]+)[@:] ]] && devs+=("${BASH_REMATCH[1]}")
  done <<<"$links"
  # tc prints no device names: the order (qdisc, ingress, egress per device) tells them apart.
  for l in "${devs[@]}"; do
    printf 'qdisc show dev %s\nfilter show dev %s ingress\nfilter show dev %s egress\n' "$l" "$l" "$l"
  done | tc -n "$LAB_PREFIX-gw" -force -batch - 2>&1
  printf 'rule show\nroute show table all\n' | _lab_batch gw
  # One line per policy, sorted: the kernel dumps newest first, so a policy an IKE daemon
  # re-installed moves without the configuration changing.
  _lab_ip gw xfrm policy show | awk '/^src / { if (b) print b; b = $0; next } { b = b " |" $0 } END { if (b) print b }' | sort
  # Without rule counters (iptables-nft rules carry them): traffic is not configuration.
  lab_nsenter gw nft list ruleset 2>&1 | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
}

# nat_expect_restored DESC BEFORE_FILE [SED_EXPR]: the snapshot now equals BEFORE_FILE (both
# passed through sed -E SED_EXPR when given, e.g. to ignore what an IKE daemon renewed).
nat_expect_restored() {
  local now=$LAB_STATE/snap.now
  nat_gw_snapshot >"$now"
  if [[ -n ${3:-} ]]; then
    sed -i -E "$3" "$now"
    sed -E "$3" "$2" >"$now.before"
    set -- "$1" "$now.before"
  fi
  if diff -u "$2" "$now" >"$now.diff"; then ok "$1"
  else fail "$1"; sed 's/^/      /' "$now.diff" | head -40; fi
}

# nat_gw_firewall [OUT_DEV [FWD_PORT]]: a stateful nftables firewall on gw (established/related
# accept, invalid drop, forward drop except LAN (LAB_GW_LAN_DEV) -> OUT_DEV new, and OUT_DEV -> lanhost:FWD_PORT
# new, the port a port-forward leads to, opened as a user would; OUT_DEV default eth0, the
# tunnel device in route mode). Conntrack must see one consistent flow for this to pass.
nat_gw_firewall() {
  local open_forward=
  [[ -n ${2:-} ]] && open_forward="iifname \"${1:-eth0}\" oifname \"$LAB_GW_LAN_DEV\" ip daddr $LAB_LANHOST_IP tcp dport $2 ct state new accept"
  lab_exec gw nft -f - <<EOF
table inet ipsnat_fw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "$LAB_GW_LAN_DEV" oifname "${1:-eth0}" ct state new accept
    $open_forward
  }
}
EOF
}
nat_gw_firewall_del() { lab_exec gw nft delete table inet ipsnat_fw; }

# nat_gw_masquerade add|del FORM: the seed gateway's second rule, source NAT for everything
# else leaving eth0, in one of its forms: iptables-nft-masquerade, iptables-nft-snat,
# iptables-legacy-masquerade, iptables-legacy-snat (SNAT --to-source LAB_GW_WAN_IP), or
# nft-masquerade (native nftables: oifname eth0 masquerade), or nft-inet-snat (one `table inet`
# for both families: SNAT to LAB_GW_WAN_IP and to LAB_GW_WAN6_IP). NAT_GW_NETFILTER_NAT says
# whether one is in place (nat_check_napt).
NAT_GW_NETFILTER_NAT=0
nat_gw_masquerade() {
  local op=-A target=(-j MASQUERADE)
  NAT_GW_NETFILTER_NAT=1
  [[ $1 == del ]] && op=-D NAT_GW_NETFILTER_NAT=0
  [[ $2 == *-snat ]] && target=(-j SNAT --to-source "$LAB_GW_WAN_IP")
  case $2 in
    iptables-nft-* | iptables-legacy-*)
      lab_exec gw "${2%-*}" -t nat "$op" POSTROUTING -o eth0 "${target[@]}"
      # iptables-nft leaves the table it created behind, empty.
      if [[ $1 == del && $2 == iptables-nft-* ]]; then lab_exec gw nft delete table ip nat; fi ;;
    nft-masquerade)
      if [[ $1 == del ]]; then lab_exec gw nft delete table ip seed_nat; return; fi
      lab_exec gw nft -f - <<EOF
table ip seed_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" masquerade
  }
}
EOF
      ;;
    nft-inet-snat)
      if [[ $1 == del ]]; then lab_exec gw nft delete table inet seed_nat; return; fi
      lab_exec gw nft -f - <<EOF
table inet seed_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "eth0" meta nfproto ipv4 snat ip to $LAB_GW_WAN_IP
    oifname "eth0" meta nfproto ipv6 snat ip6 to $LAB_GW_WAN6_IP
  }
}
EOF
      ;;
    *) echo "nat_gw_masquerade: unknown form $2" >&2; return 2 ;;
  esac
}

# nat_flush_detach: ipsnat's flows flushed, so that a next phase starts without bindings as
# netfilter's does after a conntrack flush (a UDP or echo binding would hold its NAT port into
# it), then `detach eth0`. NAT_FLUSHED: how many flows the flush removed.
nat_flush_detach() {
  local out
  NAT_FLUSHED=0
  if out=$(ipsnat_gw flows flush 2>&1); then ok "ipsnat's flows flushed ($out)"; else fail "ipsnat flows flush: $out"; fi
  # shellcheck disable=SC2034 # read by the scenarios
  [[ $out =~ ^([0-9]+)\  ]] && NAT_FLUSHED=${BASH_REMATCH[1]}
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
}

# nat_check_internet NS [PING_OPTIONS...]: NS reaches an internet host, transit's far address
# (transit has no route to private nets, so only the gateway's masquerade gets it an answer),
# and transit saw those pings from the gateway's public address and none from the LAN.
nat_check_internet() {
  local ns=$1; shift
  lab_capture_start inet to-gw
  expect_ok "$ns reaches the internet host $LAB_TRANSIT_CGW_IP $*" lab_ping "$ns" "$LAB_TRANSIT_CGW_IP" "$@"
  lab_capture_stop inet >/dev/null
  expect_gt "... its pings left as $LAB_GW_WAN_IP" \
    "$(lab_capture_count inet "icmp and src host $LAB_GW_WAN_IP and dst host $LAB_TRANSIT_CGW_IP")" 0
  expect_eq "... and none with a LAN source" \
    "$(lab_capture_count inet "ip and (src net $LAB_LAN_NET or src net $LAB_LAN2_NET)")" 0
}


# _nat_cgw_out_sa KEY: reqid or packet count (summed) of cgw's SAs towards gw.
_nat_cgw_out_sa() {
  _lab_ip cgw -s xfrm state list src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" | awk -v k="$1" '
    k == "reqid" { for (i = 1; i < NF; i++) if ($i == "reqid" && !r) r = $(i + 1) }
    /lifetime current:/ { cur = 1; next }
    cur { n += $2 + 0; cur = 0 }
    END { print (k == "reqid") ? r + 0 : n + 0 }'
}

# _nat_gw_accepted: what gw's kernel accepted for local delivery after its IPsec policy check,
# summed from /proc/net/snmp and /proc/net/snmp6: echo requests (IcmpMsg InType8,
# Icmp6InEchos), UDP to a closed port (Udp NoPorts, Udp6NoPorts), TCP answered with a reset (Tcp
# OutRsts, both families). Each is counted only after xfrm4/6_policy_check let the packet in.
# (/proc/net/snmp: a header line, then a value line; /proc/net/snmp6: "NAME VALUE" lines.)
_nat_gw_accepted() {
  lab_exec gw cat /proc/net/snmp /proc/net/snmp6 | awk '
    $1 !~ /:$/ { if ($1 == "Icmp6InEchos" || $1 == "Udp6NoPorts") v6 += $2; next }
    !($1 in hdr) { hdr[$1] = 1; for (i = 2; i <= NF; i++) name[$1, i] = $i; next }
    { for (i = 2; i <= NF; i++) v[$1 name[$1, i]] = $i }
    END { print v["IcmpMsg:InType8"] + v["Udp:NoPorts"] + v["Tcp:OutRsts"] + v6 }'
}

# nat_check_no_door [6]: the company side sends what nobody asked for through the real SA.
# cgw gets one extra out-policy COMPANY_NET -> LAN_NET on its SA's reqid, chost a route to the
# LAN; chost then pings lanhost and gw's LAN address and sends each a TCP SYN and UDP datagrams.
# Without ipsnat the kernel drops them (no in/fwd policy covers the LAN); after attach it must
# still: 0 packets from the company at lanhost (a capture on its lan0), 0 of them accepted by
# gw itself (kernel counters, _nat_gw_accepted). cgw's SA counting packets shows the probe
# really went through the tunnel. With 6: the same in IPv6 (COMPANY6_NET -> LAN6_NET, inside
# the IPv4 SA; lab_ipv6_up and lab_ipv6_company_up); cgw, which has no IPv6 route out, gets one
# for the LAN's prefix on eth0 for the time of the probe, so it reaches the xfrm lookup.
# shellcheck disable=SC2120 # the family argument is optional
nat_check_no_door() {
  local reqid sa0 acc0 n t cnet=$LAB_COMPANY_NET lnet=$LAB_LAN_NET via=$LAB_CGW_LAN_IP ip=ip
  local -a targets=("$LAB_LANHOST_IP" "$LAB_GW_LAN_IP")
  if [[ ${1:-} == 6 ]]; then
    cnet=$LAB_COMPANY6_NET lnet=$LAB_LAN6_NET via=$LAB_CGW_LAN_IP6 ip=ip6
    targets=("$LAB_LANHOST_IP6" "$LAB_GW_LAN6_IP")
  fi
  reqid=$(_nat_cgw_out_sa reqid)
  step "no door: chost probes ${targets[*]} through cgw's SA (reqid $reqid)"
  _lab_ip cgw xfrm policy add src "$cnet" dst "$lnet" dir out \
    tmpl src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" proto esp reqid "$reqid" mode tunnel
  _lab_ip chost route add "$lnet" via "$via"
  [[ $ip == ip ]] || _lab_ip cgw route add "$lnet" dev eth0
  sa0=$(_nat_cgw_out_sa packets) acc0=$(_nat_gw_accepted)
  lab_capture_start door lan0 lanhost
  for t in "${targets[@]}"; do
    lab_ping chost "$t" || true
    # shellcheck disable=SC2016 # expanded by the inner bash
    lab_exec chost timeout 2 bash -c 'for i in 1 2 3; do echo probe >/dev/udp/$0/9; done; : </dev/tcp/$0/22' "$t" \
      2>/dev/null || true
  done
  lab_capture_stop door >/dev/null
  n=$(lab_capture_count door "$ip and src net $cnet")
  expect_gt "no door: the probe went through cgw's SA (ESP packets)" "$(($(_nat_cgw_out_sa packets) - sa0))" 0
  expect_eq "no door: unsolicited packets from the company at lanhost" "$n" 0
  ((n == 0)) || lab_capture_show door "$ip and src net $cnet" | head -8 | sed 's/^/      /'
  expect_eq "no door: unsolicited packets gw accepted for itself (echo, UDP, TCP)" \
    "$(($(_nat_gw_accepted) - acc0))" 0
  _lab_ip cgw xfrm policy del src "$cnet" dst "$lnet" dir out
  _lab_ip chost route del "$lnet" via "$via"
  [[ $ip == ip ]] || _lab_ip cgw route del "$lnet" dev eth0
}

# nat_udp_flow_start NS PORT SPORT: one steady UDP flow from NS:SPORT to the echo server on
# chost:PORT (nat_udp_server), a datagram every 0.2 s; each echo's arrival time (epoch s) goes
# to $LAB_STATE/flow.times. nat_udp_flow_stop ends it (<= 120 s in any case).
nat_udp_flow_start() {
  rm -f "$LAB_STATE/flow.stop"
  lab_exec "$1" timeout 130 python3 -S "$NAT_TOOL" udp-flow "$LAB_CHOST_IP" "$2" "$3" "$LAB_STATE/flow.stop" 120 \
    >"$LAB_STATE/flow.times" &
  NAT_UDP_FLOW=$!
}
nat_udp_flow_stop() { : >"$LAB_STATE/flow.stop"; wait "$NAT_UDP_FLOW" || true; }
# nat_udp_flow_answers_after EPOCH: echoes of the flow that arrived after EPOCH.
nat_udp_flow_answers_after() { awk -v t="$1" '$1 > t { n++ } END { print n + 0 }' "$LAB_STATE/flow.times"; }

# nat_check_pmtu NS: NS learned a path MTU below 1500 towards the company host (the
# "fragmentation needed" error of the tunnel came back through the translation).
nat_check_pmtu() {
  local pmtu
  pmtu=$(lab_exec "$1" ip route get "$LAB_CHOST_IP" | sed -n 's/.* mtu \([0-9]*\).*/\1/p' | head -1)
  expect_gt "$1 learned a path MTU below 1500 (got ${pmtu:-none})" "$((1500 - ${pmtu:-1500}))" 0
}

# nat_check_sa_mtu NS: the SA's path MTU below the translation's route MTU: gw gets a route to
# cgw's public address with mtu 1280; a DF ping of 1328 bytes from NS fits gw's route towards
# the company, is translated, and meets the limit in the kernel's IPsec output. The
# "fragmentation needed" the kernel raises there must reach NS, which then knows a path MTU
# below 1328 (learned, not configured: the caches are flushed first).
nat_check_sa_mtu() {
  local pmtu
  nat_forget_pmtu
  _lab_ip gw route add "$LAB_CGW_WAN_IP/32" via "$LAB_TRANSIT_GW_IP" mtu 1280
  lab_exec "$1" ping -n -q -c 2 -i 0.5 -W 1 -M "do" -s 1300 "$LAB_CHOST_IP" >/dev/null 2>&1 || true
  pmtu=$(lab_exec "$1" ip route get "$LAB_CHOST_IP" | sed -n 's/.* mtu \([0-9]*\).*/\1/p' | head -1)
  expect_gt "SA MTU below the route's: $1 learned a path MTU below 1328 (got ${pmtu:-none})" \
    "$((1328 - ${pmtu:-1500}))" 0
  _lab_ip gw route del "$LAB_CGW_WAN_IP/32" via "$LAB_TRANSIT_GW_IP"
}

# nat_check_local_nat_pmtu NS PORT: the NAT address is also a local address of gw (strongSwan
# installs its virtual IP on eth0): the tunnel device's "fragmentation needed" for a translated
# packet is then addressed to gw itself and delivered over lo. A DF ping from NS larger than the
# SA's MTU and smaller than the device's (1460 bytes: xfrm interface 1500, VTI 1480, SA 1446 for
# ESP/GCM-128 over 1500) must bring NS the error: about its own packet (the quoted source is
# NS's address), with an MTU below 1460; NS then knows that path MTU, and TCP of 1 MiB each way
# (ports PORT, PORT+1) completes. The address is removed again afterwards.
nat_check_local_nat_pmtu() {
  local ns=$1 ip n mtu pmtu a b c d
  ip=$(lab_exec "$ns" ip -o -4 addr show dev lan0 | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
  IFS=. read -r a b c d <<<"$ip"
  step "NAT address $LAB_NAT_IP local on gw: the tunnel's fragmentation-needed reaches $ns ($ip)"
  lab_gw_addr_add "$LAB_NAT_IP"
  nat_forget_pmtu
  lab_capture_start fragneeded lan0 "$ns"
  lab_exec "$ns" ping -n -q -c 2 -i 0.5 -W 1 -M "do" -s 1432 "$LAB_CHOST_IP" >/dev/null 2>&1 || true
  lab_capture_stop fragneeded >/dev/null
  # ICMP 3/4 to NS whose quote (ICMP header 8 bytes, then the quoted IP header: source at 12)
  # names NS as the source.
  local f="icmp[0] = 3 and icmp[1] = 4 and dst host $ip and icmp[20:4] = $(((a << 24) | (b << 16) | (c << 8) | d))"
  n=$(lab_capture_count fragneeded "$f")
  expect_gt "local NAT address: $ns got fragmentation-needed about its own packet" "$n" 0
  mtu=$(lab_capture_show fragneeded -v "$f" | sed -n 's/.*need to frag (mtu \([0-9]*\)).*/\1/p' | head -1)
  expect_gt "... with an MTU below 1460 (got ${mtu:-none})" "$((1460 - ${mtu:-1460}))" 0
  pmtu=$(lab_exec "$ns" ip route get "$LAB_CHOST_IP" | sed -n 's/.* mtu \([0-9]*\).*/\1/p' | head -1)
  expect_gt "... and $ns learned a path MTU below 1460 (got ${pmtu:-none})" "$((1460 - ${pmtu:-1500}))" 0
  nat_forget_pmtu
  nat_check_tcp "$ns" 1 "$2"
  _lab_ip gw addr del "$LAB_NAT_IP/32" dev eth0
}

# nat_forget_pmtu: drop the learned path MTUs on the LAN host and the gateway, so the
# next transfer discovers it again.
nat_forget_pmtu() {
  lab_exec lanhost ip route flush cache
  lab_exec gw ip route flush cache
}

# --- traffic checks ---------------------------------------------------------
# nat_check_ping NS [DST]: ICMP echo from NS to the company host (DST, default LAB_CHOST_IP) works.
nat_check_ping() {
  expect_ok "$1 pings ${2:-$LAB_CHOST_IP}" lab_ping "$1" "${2:-$LAB_CHOST_IP}"
}

# nat_check_tcp NS MIB PORT [DST]: a file of MIB MiB sent NS -> chost and one chost -> NS,
# both over connections opened by NS; sha256 compared on both ends. DST: chost's address
# (default LAB_CHOST_IP; IPv6 when it has a colon).
nat_check_tcp() {
  local ns=$1 mib=$2 port=$3 dst=${4:-$LAB_CHOST_IP} d=$LAB_STATE/tcp.$1.$3 v=4
  [[ $dst == *:* ]] && v=6 dst="[$dst]"
  mkdir -p "$d"
  head -c "$((mib << 20))" /dev/urandom >"$d/up"
  head -c "$((mib << 20))" /dev/urandom >"$d/down"
  # upload: chost receives
  lab_exec chost timeout 120 socat -u "TCP$v-LISTEN:$port,reuseaddr" "CREATE:$d/up.rx" &
  local srv=$!
  nat_wait_listen "$port" t
  local t0=$SECONDS
  lab_exec "$ns" timeout 110 socat -u "OPEN:$d/up" "TCP$v:$dst:$port" || true
  wait "$srv" || true
  expect_eq "$ns -> chost${4:+ $4}: $mib MiB over TCP, sha256 ($((SECONDS - t0))s)" \
    "$(sha256sum <"$d/up.rx" 2>/dev/null | cut -c1-16)" "$(sha256sum <"$d/up" | cut -c1-16)"
  # download: chost sends on a connection NS opened
  lab_exec chost timeout 120 socat -u "OPEN:$d/down" "TCP$v-LISTEN:$((port + 1)),reuseaddr" &
  srv=$!
  nat_wait_listen "$((port + 1))" t
  t0=$SECONDS
  lab_exec "$ns" timeout 110 socat -u "TCP$v:$dst:$((port + 1))" "CREATE:$d/down.rx" || true
  wait "$srv" || true
  expect_eq "chost${4:+ $4} -> $ns: $mib MiB over TCP, sha256 ($((SECONDS - t0))s)" \
    "$(sha256sum <"$d/down.rx" 2>/dev/null | cut -c1-16)" "$(sha256sum <"$d/down" | cut -c1-16)"
  rm -rf "$d"
}

# nat_udp_server PORT OUTFILE [BIND]: the echo server on chost (on BIND, default 0.0.0.0; "::"
# for IPv6), in the background; it writes each peer it sees to OUTFILE at once.
# nat_udp_server_stop ends it: its own limit (120 s) only bounds a forgotten one, since under
# TCG on a loaded host starting python can take longer than any fixed window a check would give it.
nat_udp_server() {
  lab_exec chost timeout 120 python3 -S "$NAT_TOOL" udp-echo-server "$1" 110 "${3:-0.0.0.0}" >"$2" &
  NAT_UDP_SRV=$! NAT_UDP_PORT=$1
  nat_wait_listen "$1" u
}
nat_udp_server_stop() {
  pkill -f "udp-echo-server $NAT_UDP_PORT " 2>/dev/null || true
  wait "$NAT_UDP_SRV" 2>/dev/null || true
}

# nat_wait_listen PORT u|t [NS]: until NS (default chost) has a UDP/TCP socket bound to PORT
# (<= 90 s of the clock, however slow each probe is under TCG).
nat_wait_listen() {
  _nat_wait_port "${3:-chost}" "$1" "$2" || echo "   (${3:-chost}: nothing listening on port $1 after 90 s)"
}

# _nat_wait_port NS PORT u|t: one bash in NS reads /proc/net/{tcp,udp}[6] (the namespace's own
# sockets) with builtins every 0.1 s until a listening TCP socket (state 0A) or a bound UDP
# socket has local port PORT; <= 90 s. Two execs in all, where ss, grep and sleep per probe
# cost about a second of emulated CPU each round.
_nat_wait_port() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  lab_nsenter "$1" bash -c '
    printf -v hex "%04X" "$1"
    files=(/proc/net/tcp /proc/net/tcp6) want=0A
    [[ $2 == u ]] && files=(/proc/net/udp /proc/net/udp6) want=
    exec {z}<> <(:)
    end=$((SECONDS + 90))
    while ((SECONDS < end)); do
      for f in "${files[@]}"; do
        while read -r _ loc _ st _; do
          [[ $loc == *:"$hex" && ( -z $want || $st == "$want" ) ]] && exit 0
        done <"$f" 2>/dev/null
      done
      read -r -t 0.1 -u "$z" _ || true
    done
    exit 1' _nat_wait_port "$2" "$3"
}

# nat_check_udp NS PORT [DST SOURCE]: 20 datagrams echoed by chost (at DST, default
# LAB_CHOST_IP; IPv6 when it has a colon); with SOURCE, chost saw them all from SOURCE.
nat_check_udp() {
  local got peers=$LAB_STATE/udp.peers dst=${3:-$LAB_CHOST_IP} bind=0.0.0.0
  [[ $dst == *:* ]] && bind=::
  nat_udp_server "$2" "$peers" "$bind"
  got=$(lab_exec "$1" timeout 40 python3 -S "$NAT_TOOL" udp-echo-client "$dst" "$2" 20 || true)
  nat_udp_server_stop
  expect_eq "$1: UDP echoes from $dst" "${got:-0}" 20
  [[ -z ${4:-} ]] || expect_eq "... chost saw one peer, from $4" \
    "$(grep -c "^$4:" "$peers" || true)/$(wc -l <"$peers")" 1/1
}

# nat_check_napt PORT: both LAN hosts at once, with the same ICMP echo id, the same UDP
# source port and the same TCP source port, so the NAT must tell them apart by translation.
nat_check_napt() {
  local port=$1 peers=$LAB_STATE/napt.peers r1 r2 srv i f1=$LAB_STATE/napt.1 f2=$LAB_STATE/napt.2
  LAB_PING_COUNT=5 lab_ping lanhost "$LAB_CHOST_IP" -e 4242 & r1=$!
  LAB_PING_COUNT=5 lab_ping lanhost2 "$LAB_CHOST_IP" -e 4242 & r2=$!
  expect_ok "NAPT: lanhost ping (echo id 4242) answered" wait "$r1"
  expect_ok "NAPT: lanhost2 ping (same echo id) answered" wait "$r2"
  nat_udp_server "$port" "$peers"
  lab_exec lanhost timeout 40 python3 -S "$NAT_TOOL" udp-echo-client "$LAB_CHOST_IP" "$port" 10 40000 >"$f1" & r1=$!
  # Beside a netfilter NAT rule on gw (nat_gw_masquerade), netfilter binds the two hosts' racing
  # first datagrams (the VM has two CPUs) to the same port before either is confirmed and drops
  # the second at confirm (conntrack insert_failed/drop; the datagram never reaches ipsnat): the
  # second host starts once chost has seen the first (<= 20 s). Without such a rule both start
  # at once, and the race is ipsnat's own (BPF_NOEXIST on the REPLY entry).
  if ((NAT_GW_NETFILTER_NAT)); then
    for ((i = 0; i < 200; i++)); do [[ -s $peers ]] && break; sleep 0.1; done
  fi
  lab_exec lanhost2 timeout 40 python3 -S "$NAT_TOOL" udp-echo-client "$LAB_CHOST_IP" "$port" 10 40000 >"$f2" & r2=$!
  wait "$r1" || true
  wait "$r2" || true
  nat_udp_server_stop
  expect_eq "NAPT: lanhost UDP from port 40000 echoed" "$(cat "$f1")" 10
  expect_eq "NAPT: lanhost2 UDP from the same port echoed" "$(cat "$f2")" 10
  expect_eq "NAPT: chost saw two distinct peers, all from $LAB_NAT_IP" \
    "$(grep -c "^$LAB_NAT_IP:" "$peers" || true)/$(wc -l <"$peers")" 2/2
  # TCP: chost answers each connection with the peer it saw ("ADDR PORT": a colon would end
  # socat's SYSTEM command); both from source port 40100.
  # shellcheck disable=SC2016 # expanded by socat's shell
  lab_exec chost timeout 90 socat "TCP4-LISTEN:$((port + 1)),reuseaddr,fork" \
    SYSTEM:'echo $SOCAT_PEERADDR $SOCAT_PEERPORT' & srv=$!
  nat_wait_listen "$((port + 1))" t
  lab_exec lanhost timeout 30 socat -u "TCP4:$LAB_CHOST_IP:$((port + 1)),sourceport=40100,reuseaddr" STDOUT >"$f1" & r1=$!
  lab_exec lanhost2 timeout 30 socat -u "TCP4:$LAB_CHOST_IP:$((port + 1)),sourceport=40100,reuseaddr" STDOUT >"$f2" & r2=$!
  wait "$r1" || true
  wait "$r2" || true
  kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true
  local p1 p2
  p1=$(cat "$f1") p2=$(cat "$f2")
  expect_eq "NAPT: both TCP connections from source port 40100 seen from $LAB_NAT_IP" \
    "${p1%% *}/${p2%% *}" "$LAB_NAT_IP/$LAB_NAT_IP"
  expect_ok "NAPT: the two TCP connections got distinct NAT ports ($p1, $p2)" \
    test -n "${p1#* }" -a "${p1#* }" != "${p1}" -a "${p1#* }" != "${p2#* }"
}

# nat_chost_to_lanhost tcp|udp ADDR PORT INSIDE_PORT: chost connects to ADDR:PORT over TCP, or
# sends it a UDP datagram; a server on lanhost:INSIDE_PORT answers "PROTO PEER" with the address it saw. Prints
# chost's answer, empty when none came back (TCP gives up connecting after 4 s, UDP waits 3 s).
# IPv6 when ADDR has a colon (PEER then as socat gives it, in brackets).
nat_chost_to_lanhost() {
  local proto=$1 lport=$4 srv v=4 addr=$2 listen connect ss=t
  [[ $addr == *:* ]] && v=6 addr="[$addr]"
  listen=TCP$v-LISTEN connect=TCP$v:$addr:$3,connect-timeout=4
  [[ $proto == udp ]] && listen=UDP$v-RECVFROM connect=UDP$v:$addr:$3 ss=u
  # shellcheck disable=SC2016 # expanded by socat's shell
  # nsenter itself (it execs timeout), so that $! is what the kill below must end when nothing came.
  nsenter --net="/run/netns/$(lab_ns lanhost)" -- timeout 90 socat "$listen:$lport,reuseaddr" \
    SYSTEM:"echo $proto "'$SOCAT_PEERADDR' & srv=$!
  _nat_wait_port lanhost "$lport" "$ss" || true
  if [[ $proto == udp ]]; then echo probe | lab_exec chost timeout 20 socat -t 3 - "$connect" 2>/dev/null || true
  else lab_exec chost timeout 20 socat -u "$connect" STDOUT 2>/dev/null || true; fi
  kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true
}

# nat_check_forward NAT_PORT INSIDE_PORT: chost opens a TCP connection to NAT_IP:NAT_PORT
# (attach was given --forward tcp:NAT_PORT=LANHOST:INSIDE_PORT) and reaches a server on
# lanhost, which sees the company host's own address.
nat_check_forward() {
  expect_eq "port-forward: chost -> $LAB_NAT_IP:$1 reached lanhost:$2, which saw $LAB_CHOST_IP" \
    "$(nat_chost_to_lanhost tcp "$LAB_NAT_IP" "$1" "$2")" "tcp $LAB_CHOST_IP"
}

# nat_check_all MIB PORT: every check after ping, for lanhost (and lanhost2 for NAPT), with
# ports PORT..PORT+2 and the port-forward tcp:8080 -> lanhost:8000 given to attach: TCP of MIB
# MiB each way (the upload first: the PMTU case), the learned path MTU, UDP, NAPT, port-forward.
nat_check_all() {
  nat_check_tcp lanhost "$1" "$2"
  nat_check_pmtu lanhost
  nat_check_udp lanhost "$(($2 + 1))"
  nat_check_napt "$(($2 + 2))"
  nat_check_forward 8080 8000
}

# nat_chost_capture_check NAME: the company host saw the NAT address and never a
# LAN address (capture taken on chost's lan0).
nat_chost_capture_check() {
  expect_gt "chost saw packets from $LAB_NAT_IP" \
    "$(lab_capture_seen "$1" "ip and src host $LAB_NAT_IP")" 0
  expect_eq "chost saw no LAN source address" \
    "$(lab_capture_count "$1" "ip and (src net $LAB_LAN_NET or src net $LAB_LAN2_NET)")" 0
}

# dual_chost_sources_check CAPTURE: the company host (capture on its lan0) saw packets from both
# virtual addresses, and from no other source but itself and cgw (no LAN address of either family).
dual_chost_sources_check() {
  local other="(ip or ip6) and not src net fe80::/10"
  local a
  for a in "$LAB_NAT_IP" "$LAB_NAT_IP6" "$LAB_CHOST_IP" "$LAB_CHOST_IP6" "$LAB_CGW_LAN_IP" "$LAB_CGW_LAN_IP6"; do
    other+=" and not src host $a"
  done
  expect_gt "chost saw packets from $LAB_NAT_IP" "$(lab_capture_seen "$1" "ip and src host $LAB_NAT_IP")" 0
  expect_gt "chost saw packets from $LAB_NAT_IP6" "$(lab_capture_seen "$1" "ip6 and src host $LAB_NAT_IP6")" 0
  expect_eq "chost saw no other source (no LAN address of either family)" "$(lab_capture_count "$1" "$other")" 0
}

# dual_check_family DST NAT_ADDR PORT: ping, UDP (port PORT, from NAT_ADDR as chost sees it),
# TCP (PORT+1, PORT+2) from lanhost to chost's DST. TCP only after ping and UDP went through: a
# blocked connection would only wait out its time limits; it is then counted as failed.
dual_check_family() {
  local fails=$FAILS
  nat_check_ping lanhost "$1"
  nat_check_udp lanhost "$3" "$1" "$2"
  if ((FAILS == fails)); then nat_check_tcp lanhost 1 "$(($3 + 1))" "$1"
  else fail "lanhost <-> chost $1: 1 MiB TCP each way not tried (ping or UDP failed)"; fi
}

# route_nat PROFILE KIND DEV FULL [FIREWALL [MASQUERADE_FORM before|after [BRIDGE]]]: KIND
# xfrmi|vti (lab_esp_KIND sets it up, the device keeps its default MTU, so the first full-size
# segments need PMTU discovery through the translation). FULL=1 adds nat_check_local_nat_pmtu and
# nat_check_all to the ping and leak checks; FIREWALL=1 then puts a stateful firewall on gw, forgets the learned path MTUs and
# repeats ping and nat_check_all behind it. MASQUERADE_FORM: the seed's rule for everything else
# (nat_gw_masquerade) before or after attach, and the LAN must still reach the internet as the
# public address. BRIDGE=1: the LAN on a bridge on gw with a second prefix (lab_gw_lan_bridge);
# attach is still given only DEV, and a host in the second prefix must be translated too.
# Before the firewall, the company side probes the LAN and gw through the SA (nat_check_no_door).
route_nat() {
  local prof=$1 kind=$2 dev=$3 full=$4 fw=${5:-0} masq=${6:-} when=${7:-} bridge=${8:-0} before
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: $kind $dev, LAN $LAB_LAN_NET -> $LAB_COMPANY_NET as $LAB_NAT_IP${masq:+, $masq $when attach}"
  lab_up
  ((bridge)) && lab_gw_lan_bridge
  "lab_esp_$kind" "$dev"
  [[ $when == before ]] && nat_gw_masquerade add "$masq"
  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start transit
  lab_capture_start chost lan0 chost

  expect_fail "without ipsnat the LAN misses the policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP"
  expect_ok "ipsnat attach $dev --forward tcp:8080=$LAB_LANHOST_IP:8000" \
    ipsnat_gw attach "$dev" --forward "tcp:8080=$LAB_LANHOST_IP:8000"
  [[ $when == after ]] && nat_gw_masquerade add "$masq"
  nat_check_ping lanhost
  ((bridge)) && expect_ok "lanhost2 in the second LAN prefix ($LAB_LANHOST2_LAN2_IP) pings $LAB_CHOST_IP" \
    lab_ping lanhost2 "$LAB_CHOST_IP" -I "$LAB_LANHOST2_LAN2_IP"
  [[ -z $masq ]] || nat_check_internet lanhost
  nat_check_no_door
  if ((full && FAILS == FAILS_BEFORE)); then nat_check_local_nat_pmtu lanhost 5201; fi
  if ((full && FAILS == FAILS_BEFORE)); then nat_check_all 2 5001; fi
  if ((fw && FAILS == FAILS_BEFORE)); then
    step "$prof: $kind behind a stateful firewall on gw"
    nat_gw_firewall "$dev" 8000
    nat_forget_pmtu
    nat_check_ping lanhost
    nat_check_all 1 5101
    nat_gw_firewall_del
  fi
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost
  [[ $when == after ]] && nat_gw_masquerade del "$masq"

  step "$prof: detach"
  ((FAILS == FAILS_BEFORE)) || nat_diag
  expect_ok "ipsnat detach $dev" ipsnat_gw detach "$dev"
  nat_expect_restored "gateway as before attach" "$before"
  expect_fail "after detach the LAN misses the policy again" lab_ping lanhost "$LAB_CHOST_IP"
  lab_capture_stop transit >/dev/null
  expect_esp_both_ways "$kind" transit
  expect_no_leak "$kind: no cleartext on transit during the whole run" transit
  lab_down
}
