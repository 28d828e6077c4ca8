#!/bin/bash
# Per-packet forwarding cost of ipsnat against plain forwarding and nftables SNAT, measured as CPU
# time of the sending thread (see docs/benchmarks.md for the method and how to read the results).
#
#   scripts/bench/run.sh [--rounds N] [--quick] [--out DIR] [--ipsnat BIN] [--publish]
#
# --quick     smoke test of the script itself (2 rounds, small counts, ~1 min); numbers meaningless
# --out DIR   results directory (default: ${IPSNAT_BUILD_DIR:-build}/bench-results/<UTC time>)
# --ipsnat    the ipsnat binary for variant C (default: ${IPSNAT_BUILD_DIR:-build}/loader/ipsnat);
#             without a usable one, C is reported as "not measured"
# --publish   copy the results to docs/bench/ (the committed latest run)
#
# Everything runs in namespaces this script creates (prefix ipsb<pid>-) and removes on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${IPSNAT_BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"

ROUNDS=8
QUICK=0
PUBLISH=0
OUT=""
IPSNAT_BIN="$BUILD_DIR/loader/ipsnat"
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --ipsnat) IPSNAT_BIN=$2; shift 2 ;;
    --publish) PUBLISH=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || { echo "run.sh: needs root (namespaces, nftables, BPF)" >&2; exit 1; }
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1)) || { echo "run.sh: --rounds must be >= 1" >&2; exit 2; }

# Workload sizes. Full: each measurement 0.1-0.5 s of CPU; quick: just enough to exercise the code.
if ((QUICK)); then
  ((ROUNDS > 2)) && [[ " $* " != *" --rounds "* ]] && ROUNDS=2
  EST_PKTS=20000; NEW_PKTS=4000; TCP_CONNS=200; CT_FILL=100000; SPD_BIG=1000; PROF_RUNS=10000
else
  EST_PKTS=100000; NEW_PKTS=40000; TCP_CONNS=2000; CT_FILL=1000000; SPD_BIG=10000; PROF_RUNS=50000
fi
# Cct's conntrack size (ipsnat attach --ct-max): the fill plus room for the measured flows.
CT_MAX=1024
while ((CT_MAX < CT_FILL + 16384)); do CT_MAX=$((CT_MAX * 2)); done
FLOWS=1000
# The sender runs on the last CPU; sinks and this script on the others.
SEND_CPU=$(($(nproc) - 1))
OTHER_CPUS=0-$((SEND_CPU > 0 ? SEND_CPU - 1 : 0))

OUT=${OUT:-$BUILD_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/ipsnat-bench.XXXXXX)
PFX="ipsb$$-"
NAMESPACES=()
PIDS=()
PIN_ROOTS=()

cleanup() {
  local p ns r
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  for r in "${PIN_ROOTS[@]}"; do rm -rf "$r" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }

# ---------------------------------------------------------------------------------------------
# Tools
ensure_tools() {
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v bpftool >/dev/null || missing+=(bpftool)
  command -v cc >/dev/null || missing+=(gcc)
  command -v clang >/dev/null || missing+=(clang)
  command -v perf >/dev/null || missing+=(linux-perf)
  [[ -f /usr/include/bpf/libbpf.h ]] || missing+=(libbpf-dev)
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || missing+=(python3-matplotlib)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
  cc -O2 -Wall -Wextra -Werror -o "$WORK/sender" "$HERE/sender.c"
  cc -O2 -Wall -Wextra -Werror -o "$WORK/progtime" "$HERE/progtime.c" -lbpf
  CTFILL=""
  if [[ -f $REPO/maps/ct.h ]]; then
    cc -O2 -Wall -Wextra -Werror -I"$REPO" -o "$WORK/ctfill" "$HERE/ctfill.c" -lbpf
    CTFILL="$WORK/ctfill"
  fi
}

# ---------------------------------------------------------------------------------------------
# Topology: per variant V three namespaces ${PFX}V-src, -gw, -dst:
#   src s0 192.168.1.10/24 --- l0 192.168.1.1/24 [gw] u0 200.2.2.2/24 --- d0 200.2.2.1/24 dst
# dst owns all of 10.0.0.0/8 (local route on lo), so every destination of the new-flow workload
# is delivered locally. Every gw holds an XFRM out-policy 10.20.30.2/32 -> 10.0.0.0/8, so the
# kernel's forward-path SPD lookup runs in every variant:
#  - A, B, Z: without templates (action allow): B's translated packets match it in the NAT's
#    re-lookup and pass in cleartext (this kernel has no ESP, IPsec states cannot exist);
#  - C: with an ESP tunnel template, so ipsnat's SPD mirror sees a real IPsec policy (a policy
#    without templates is a bypass and implies no NAT). ipsnat runs in route mode on u0: SNAT at
#    TC egress of u0, reverse at TC ingress. That is the point just before encryption: on a real
#    xfrm interface the device's xfrm lookup and ESP would follow; on the veth the packet goes on
#    to dst in cleartext. (Policy mode would reroute into the xfrm lookup, where the packet dies
#    in an acquire for lack of a state, so it cannot be measured end to end here.)
#  - Bm, Cm: the gateway's masquerade of traffic no IPsec policy covers (the policy is a bypass, as
#    in A): Bm `oifname "u0" masquerade` in nftables, Cm `ipsnat attach u0 --masquerade` (policy
#    mode: the leak guard's SPD lookup, then NAPT to 200.2.2.2 at TC egress).
ns_of() { echo "${PFX}$1-$2"; }

make_topology() {
  local v=$1 src gw dst
  src=$(ns_of "$v" src); gw=$(ns_of "$v" gw); dst=$(ns_of "$v" dst)
  for ns in "$src" "$gw" "$dst"; do
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
  done
  ip link add s0 netns "$src" type veth peer name l0 netns "$gw"
  ip link add u0 netns "$gw" type veth peer name d0 netns "$dst"
  ip -n "$src" addr add 192.168.1.10/24 dev s0
  ip -n "$src" link set s0 up
  ip -n "$src" route add default via 192.168.1.1
  ip -n "$gw" addr add 192.168.1.1/24 dev l0
  ip -n "$gw" addr add 200.2.2.2/24 dev u0
  ip -n "$gw" link set l0 up
  ip -n "$gw" link set u0 up
  ip -n "$gw" route add 10.0.0.0/8 via 200.2.2.1
  in_ns "$gw" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$dst" addr add 200.2.2.1/24 dev d0
  ip -n "$dst" link set d0 up
  ip -n "$dst" route add local 10.0.0.0/8 dev lo
  ip -n "$dst" route add 192.168.1.0/24 via 200.2.2.2
  ip -n "$dst" route add 10.20.30.2/32 via 200.2.2.2
  in_ns "$src" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  # Static neighbours: no ARP traffic inside a timed loop.
  local mac
  mac=$(ip -n "$gw" -br link show l0 | awk '{print $3}')
  ip -n "$src" neigh replace 192.168.1.1 lladdr "$mac" dev s0 nud permanent
  mac=$(ip -n "$dst" -br link show d0 | awk '{print $3}')
  ip -n "$gw" neigh replace 200.2.2.1 lladdr "$mac" dev u0 nud permanent
  mac=$(ip -n "$gw" -br link show u0 | awk '{print $3}')
  ip -n "$dst" neigh replace 200.2.2.2 lladdr "$mac" dev d0 nud permanent
  mac=$(ip -n "$src" -br link show s0 | awk '{print $3}')
  ip -n "$gw" neigh replace 192.168.1.10 lladdr "$mac" dev l0 nud permanent
  if [[ $v == C* && $v != Cm ]]; then
    ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519 \
      tmpl src 200.2.2.2 dst 200.2.2.1 proto esp reqid 1 mode tunnel
  else
    ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519
  fi

  taskset -c "$OTHER_CPUS" nsenter --net="/run/netns/$dst" "$WORK/sender" sink-udp --port 9 &
  PIDS+=($!)
  taskset -c "$OTHER_CPUS" nsenter --net="/run/netns/$dst" "$WORK/sender" sink-tcp --port 80 &
  PIDS+=($!)
}

# Adds N-1 further out-policies around the benchmark's one, as a hub with many sites would have:
# per site block 10.A.0.0/16 one policy, then /24s inside it and /28s inside those, each with its
# own virtual address as source and an ESP tunnel template; priorities as strongSwan derives them
# (more specific = smaller value). They nest, so lookups must pick among overlapping prefixes, but
# no destination is covered by more than 4 translating policies (the /8, a /16, a /24, a /28),
# which is what ipsnat's SPD mirror represents. None covers a benchmark flow (10.0.0.0/16 and the
# 10.1/10.2 ranges stay free), before or after translation.
add_policies() {
  local v=$1 n=$2 gw file k A B tmpl
  gw=$(ns_of "$v" gw)
  ((n > 1)) || return 0
  file="$WORK/policies-$v"
  for ((k = 1; k < n; k++)); do
    A=$((3 + (k / 250) % 250)); B=$((k % 250))
    tmpl="tmpl src 200.2.2.2 dst 200.3.$A.$B proto esp reqid $((k + 1)) mode tunnel"
    if ((B == 0)); then
      echo "xfrm policy add src 10.21.$A.0/32 dst 10.$A.0.0/16 dir out priority $((379519 - 16 * 512)) $tmpl"
    elif ((B % 2)); then
      echo "xfrm policy add src 10.21.$A.$B/32 dst 10.$A.$B.0/24 dir out priority $((379519 - 24 * 512)) $tmpl"
    else
      echo "xfrm policy add src 10.22.$A.$B/32 dst 10.$A.$((B - 1)).16/28 dir out priority $((379519 - 28 * 512)) $tmpl"
    fi
  done >"$file"
  ip -n "$gw" -batch "$file"
}

# ---------------------------------------------------------------------------------------------
# Variants: what is added on gw.
# setup_nft_nat V RULE: one nftables postrouting NAT rule on V's gw. B: `ip saddr 192.168.1.0/24
# ip daddr 10.0.0.0/8 oifname "u0" snat to 10.20.30.2`; Bm: `oifname "u0" masquerade`.
setup_nft_nat() {
  local gw; gw=$(ns_of "$1" gw)
  in_ns "$gw" nft -f - <<EOF
table ip ipsb_nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    $2
  }
}
EOF
  # New-flow workloads create unreplied UDP entries; expire them well before the table is full.
  in_ns "$gw" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=10
}

setup_drop() {  # Z: drop on entry to gw, before any forwarding work
  local gw; gw=$(ns_of "$1" gw)
  in_ns "$gw" nft -f - <<'EOF'
table netdev ipsb_drop {
  chain in {
    type filter hook ingress device "l0" priority 0; policy drop;
  }
}
EOF
}

C_STATUS="not measured"
# C: ipsnat attached on gw's uplink u0 in route mode, its own pin root. Sets C_STATUS on failure.
pin_of() { echo "/sys/fs/bpf/ipsb$$-$1"; }
setup_ipsnat() {
  local v=$1 gw pin extra=(--mode route)
  [[ $v == Cct ]] && extra+=(--ct-max "$CT_MAX")
  [[ $v == Cm ]] && extra=(--mode policy --masquerade)
  gw=$(ns_of "$v" gw)
  pin=$(pin_of "$v")
  PIN_ROOTS+=("$pin")
  mkdir -p "$pin"
  if [[ -x $IPSNAT_BIN ]] &&
      in_ns "$gw" env IPSNAT_PIN_ROOT="$pin" "$IPSNAT_BIN" --pin-root "$pin" attach u0 "${extra[@]}" \
        >"$WORK/attach-$v.log" 2>&1; then
    return 0
  fi
  C_STATUS="not measured: 'ipsnat attach u0 --mode route' failed: $(tr '\n' ' ' <"$WORK/attach-$v.log" | head -c 400)"
  return 1
}
ct_map_of() { find "$(pin_of "$1")" -name ipsnat_ct 2>/dev/null | head -n1; }

# What happens to 10 packets from src in variant V: prints translated (they reached dst from
# NAT, default 10.20.30.2), untranslated (from 192.168.1.10) or lost.
translation_of() {
  local v=$1 nat=${2:-10.20.30.2} dst src
  dst=$(ns_of "$v" dst); src=$(ns_of "$v" src)
  in_ns "$dst" nft -f - <<EOF
table ip ipsb_check {
  counter translated {}
  counter untranslated {}
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 7 ip saddr $nat counter name translated
    udp dport 7 ip saddr 192.168.1.10 counter name untranslated
  }
}
EOF
  in_ns "$src" "$WORK/sender" udp --dport 7 --flows 10 --packets 10 >/dev/null
  local xl plain
  xl=$(in_ns "$dst" nft list counter ip ipsb_check translated | awk '/packets/ {print $2}')
  plain=$(in_ns "$dst" nft list counter ip ipsb_check untranslated | awk '/packets/ {print $2}')
  in_ns "$dst" nft delete table ip ipsb_check
  if ((xl >= 10)); then echo translated; elif ((plain >= 10)); then echo untranslated; else echo lost; fi
}

# ---------------------------------------------------------------------------------------------
# Measurement: one sender run in V's src namespace, one CSV row.
CSV="$OUT/results.csv"
measure() {
  local round=$1 workload=$2 v=$3 src args line
  src=$(ns_of "$v" src)
  case $workload in
    udp-est) args=(udp --flows "$FLOWS" --packets "$EST_PKTS") ;;
    udp-new) args=(udp --new --base $((round * NEW_PKTS)) --dst 10.1.0.0 --packets "$NEW_PKTS") ;;
    tcp-cc) args=(tcp --dport 80 --count "$TCP_CONNS" --dst "10.$((2 + round / 250)).$((round % 250)).1")
            [[ $v == Z* ]] && args+=(--no-wait) ;;
  esac
  # ipsnat's table has a fixed size and no GC runs here (no daemon): start the new-flow workload
  # from an empty table each time, as B effectively does with its short UDP timeout.
  if [[ $workload == udp-new && $v == C* && -n $CTFILL ]]; then
    "$CTFILL" flush "$(ct_map_of "$v")"
  fi
  if ! line=$(in_ns "$src" "$WORK/sender" "${args[@]}" --cpu "$SEND_CPU" 2>"$WORK/err"); then
    log "round $round $workload $v: sender failed: $(cat "$WORK/err") $line"
    return 1
  fi
  local cpu wall pkts
  cpu=$(sed -n 's/.*cpu_ns=\([0-9]*\).*/\1/p' <<<"$line")
  wall=$(sed -n 's/.*wall_ns=\([0-9]*\).*/\1/p' <<<"$line")
  pkts=$(sed -n 's/.*packets=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$round,$workload,$v,$pkts,$cpu,$wall" >>"$CSV"
}

# ---------------------------------------------------------------------------------------------
main() {
  local started=$SECONDS
  ensure_tools
  log "results in $OUT (rounds $ROUNDS, quick $QUICK)"
  # Topologies. A/B/C/Z: the main comparison. C100/C10000: the same ipsnat with a larger SPD;
  # A10000: plain forwarding with the 10,000-policy SPD (the kernel's own lookup grows too).
  # Cct: ipsnat with its conntrack table filled to CT_FILL entries (or the table's capacity).
  local variants=(A B C Z) spd_variants=() ct_variants=() c_ok=0 v n
  for v in A B C Z "A$SPD_BIG"; do make_topology "$v"; done
  setup_nft_nat B 'ip saddr 192.168.1.0/24 ip daddr 10.0.0.0/8 oifname "u0" snat to 10.20.30.2'
  setup_drop Z
  add_policies "A$SPD_BIG" "$SPD_BIG"
  # The comparison means something only if A forwards untranslated and B translates.
  local a b
  a=$(translation_of A); b=$(translation_of B)
  [[ $a == untranslated && $b == translated ]] || { log "sanity check failed: A $a, B $b"; exit 1; }
  if setup_ipsnat C; then
    local how; how=$(translation_of C)
    if [[ $how == translated ]]; then
      c_ok=1
      C_STATUS="measured ('ipsnat attach u0 --mode route', SPD mirror live)"
    else
      C_STATUS="not measured: ipsnat attached but packets were $how"
    fi
  fi
  log "variant C: $C_STATUS"
  # The masquerade pair: measured only when both translate to the uplink's address.
  make_topology Bm; make_topology Cm
  setup_nft_nat Bm 'oifname "u0" masquerade'
  local bm cm="attach failed"
  bm=$(translation_of Bm 200.2.2.2)
  setup_ipsnat Cm && cm=$(translation_of Cm 200.2.2.2)
  if [[ $bm == translated && $cm == translated ]]; then
    variants=(A B C Bm Cm Z)
  else
    log "masquerade pair not measured: Bm $bm, Cm $cm"
  fi
  : >"$OUT/extra.md"
  if ((c_ok)); then
    for n in 100 "$SPD_BIG"; do
      make_topology "C$n"; add_policies "C$n" "$n"
      local got="attach failed"
      setup_ipsnat "C$n" && got=$(translation_of "C$n")
      if [[ $got == translated ]]; then
        spd_variants+=("C$n")
      else
        log "C$n: packets $got; attach said: $(tr '\n' ' ' <"$WORK/attach-C$n.log" | head -c 600)"
        echo "SPD size $n: not measured (with $n policies the benchmark flow was $got)." >>"$OUT/extra.md"
      fi
    done
  fi
  if ((c_ok)); then
    if [[ -n $CTFILL ]]; then
      make_topology Cct; setup_ipsnat Cct
      fill_ct Cct && ct_variants+=(Cct)
    else
      echo "conntrack fill: not measured (ctfill was not built: no maps/ct.h)" >>"$OUT/extra.md"
    fi
  fi
  log "setup done in $((SECONDS - started)) s"

  echo "round,workload,variant,packets,cpu_ns,wall_ns" >"$CSV"
  # One round: every workload, and within it every variant, A first and Z last. The SPD-size
  # and conntrack-fill variants run the established-flow packets, so they sit in udp-est's round.
  local round w est_variants=(A B C "${spd_variants[@]}" "A$SPD_BIG" "${ct_variants[@]}" Z)
  ((c_ok)) || est_variants=(A B "A$SPD_BIG" Z)
  if [[ " ${variants[*]} " == *" Cm "* ]]; then unset 'est_variants[-1]'; est_variants+=(Bm Cm Z); fi
  for ((round = 1; round <= ROUNDS; round++)); do
    for v in "${est_variants[@]}"; do measure "$round" udp-est "$v"; done
    for w in udp-new tcp-cc; do
      for v in "${variants[@]}"; do
        [[ $v == C ]] && ((!c_ok)) && continue
        measure "$round" "$w" "$v"
      done
    done
    log "round $round/$ROUNDS done ($((SECONDS - started)) s)"
  done
  ((c_ok)) && profile C

  machine_info >"$OUT/machine.txt"
  echo "$C_STATUS" >"$OUT/c_status.txt"
  /usr/bin/python3 "$HERE/report.py" "$OUT" >/dev/null
  if ((PUBLISH)); then
    mkdir -p "$REPO/docs/bench"
    cp "$OUT"/{results.csv,ratios.csv,summary.md,chart.png,machine.txt} "$REPO/docs/bench/"
    log "published to docs/bench/"
  fi
  log "done in $((SECONDS - started)) s: $OUT/summary.md"
}

# Fills V's conntrack map to CT_FILL entries or to its capacity, whichever is smaller, and
# records the map's memory before and after.
fill_ct() {
  local v=$1 map max want before after
  map=$(ct_map_of "$v")
  [[ -n $map ]] || { echo "conntrack fill: not measured (no pinned ipsnat_ct under $(pin_of "$v"))" >>"$OUT/extra.md"; return 1; }
  max=$(bpftool map show pinned "$map" | sed -n 's/.*max_entries \([0-9]*\).*/\1/p')
  before=$(bpftool map show pinned "$map" | sed -n 's/.*memlock \([0-9]*\)B.*/\1/p')
  want=$CT_FILL
  # Leave room for the benchmark's own 1,000 flows (two entries each) and the TCP workload's.
  ((want > max - 4 * FLOWS)) && want=$((max - 4 * FLOWS))
  local t0=$SECONDS fill_s
  "$CTFILL" fill "$map" "$want"
  fill_s=$((SECONDS - t0))
  after=$(bpftool map show pinned "$map" | sed -n 's/.*memlock \([0-9]*\)B.*/\1/p')
  {
    echo "## Conntrack table filled"
    echo
    echo "Variant Cct: ipsnat's \`ipsnat_ct\` (max_entries $max) filled with $want entries ($((want / 2)) flows, both"
    echo "directions) by scripts/bench/ctfill before the rounds; the 1,000 measured flows come on top."
    echo "The map was created with \`ipsnat attach u0 --mode route --ct-max $CT_MAX\` (preallocated: its"
    echo "memory is taken at creation, so empty and filled differ only by what the kernel allocates lazily)."
    echo "Fill time: ${fill_s} s through \`bpf_map_update_batch\` (no packets)."
    if ((want < CT_FILL)); then
      echo "**$CT_FILL entries were asked for but the map holds at most $max**: the table was filled to"
      echo "its capacity instead."
    fi
    echo
    echo "| | entries | memlock (bpftool) | bytes per slot (memlock / max_entries) |"
    echo "|---|---|---|---|"
    echo "| empty | 0 | $before B | $((before / max)) |"
    echo "| filled | $want | $after B | $((after / max)) |"
    echo
  } >>"$OUT/extra.md"
}

# Where the cost of ipsnat goes: run time of each attached program under real traffic
# (kernel.bpf_stats_enabled), and tc_snat_egress alone under BPF_PROG_TEST_RUN.
profile() {
  local v=$1 gw src ids id name old_stats ifindex
  gw=$(ns_of "$v" gw); src=$(ns_of "$v" src)
  ids=$(in_ns "$gw" bpftool -j net show | /usr/bin/python3 -c '
import json, sys
for ns in json.load(sys.stdin):
    for kind in ("tc", "tcx"):
        for e in ns.get(kind, []):
            print(e.get("id") or e.get("prog_id"), e.get("name", "?"), e.get("devname", "?"), e.get("kind", "?"))
' | sort -u)
  ifindex=$(ip -n "$gw" -o link show u0 | cut -d: -f1)
  {
    echo "## Profile of variant C"
    echo
    echo "Programs attached in gw: $(echo "$ids" | awk '{printf "%s%s (id %s, %s %s)", sep, $2, $1, $3, $4; sep=", "}')."
    echo
    echo "Run time per invocation with real traffic (\`bpftool prog show\` run_time_ns / run_cnt with"
    echo "kernel.bpf_stats_enabled=1, during one extra, unrecorded sender run per workload):"
    echo
    echo "| workload | program | invocations | ns per invocation | sender ns/packet in that run |"
    echo "|---|---|---|---|---|"
  } >>"$OUT/extra.md"
  old_stats=$(sysctl -n kernel.bpf_stats_enabled)
  sysctl -qw kernel.bpf_stats_enabled=1
  local w args line t0 t1 c0 c1 ns_pkt
  for w in udp-est udp-new; do
    [[ $w == udp-new ]] && "$CTFILL" flush "$(ct_map_of "$v")" 2>/dev/null || true
    declare -A rt0=() rc0=()
    for id in $(echo "$ids" | awk '{print $1}'); do
      read -r rt0[$id] rc0[$id] < <(prog_stats "$id")
    done
    if [[ $w == udp-est ]]; then args=(udp --flows "$FLOWS" --packets "$EST_PKTS")
    else args=(udp --new --base $(((ROUNDS + 1) * NEW_PKTS)) --dst 10.1.0.0 --packets "$NEW_PKTS"); fi
    line=$(in_ns "$src" "$WORK/sender" "${args[@]}" --cpu "$SEND_CPU")
    ns_pkt=$(awk -F'[= ]' '{printf "%.0f", $2 / $6}' <<<"$line")
    while read -r id name _; do
      [[ -n $id ]] || continue
      read -r t1 c1 < <(prog_stats "$id")
      t0=${rt0[$id]}; c0=${rc0[$id]}
      ((c1 > c0)) && echo "| $w | $name | $((c1 - c0)) | $(((t1 - t0) / (c1 - c0))) | $ns_pkt |" >>"$OUT/extra.md"
    done <<<"$ids"
  done
  sysctl -qw kernel.bpf_stats_enabled="$old_stats"
  {
    echo
    echo "tc_snat_egress alone, BPF_PROG_TEST_RUN with a fresh 60-byte UDP frame per run (repeat = 1),"
    echo "ctx ifindex = u0, in gw's namespace (scripts/bench/progtime):"
    echo
    echo '```'
  } >>"$OUT/extra.md"
  id=$(echo "$ids" | awk '$2 ~ /snat_egress/ {print $1; exit}')
  if [[ -n $id ]]; then
    local pt=(in_ns "$gw" "$WORK/progtime" --id "$id" --ifindex "$ifindex" --runs "$PROF_RUNS") empty_id
    if clang -g -O2 -target bpf -I"/usr/include/$(cc -print-multiarch)" -c "$HERE/empty.bpf.c" -o "$WORK/empty.o" 2>/dev/null &&
        bpftool prog load "$WORK/empty.o" "$(pin_of "$v")/bench_empty" type classifier 2>/dev/null; then
      empty_id=$(bpftool -j prog show pinned "$(pin_of "$v")/bench_empty" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
      echo "empty TC program (the floor of this timing):       $("$WORK/progtime" --id "$empty_id" --runs "$PROF_RUNS")" >>"$OUT/extra.md"
    fi
    "$CTFILL" flush "$(ct_map_of "$v")" 2>/dev/null || true
    {
      echo "destination not covered by the SPD (pass):         $("${pt[@]}" --flows 1 --dst 11.0.0.1)"
      echo "one established flow:                              $("${pt[@]}" --flows 1)"
      echo "1,000 established flows (first pass creates them): $("${pt[@]}" --flows "$FLOWS")"
      echo "new 5-tuple every run:                             $("${pt[@]}" --new --dst 10.3.0.0)"
    } >>"$OUT/extra.md"
    echo "$(bpftool prog show id "$id" | head -2 | tr -s ' \n\t' ' ')" >>"$OUT/extra.md"
    "$CTFILL" flush "$(ct_map_of "$v")" 2>/dev/null || true
  else
    echo "tc_snat_egress not found among the attached programs" >>"$OUT/extra.md"
  fi
  echo '```' >>"$OUT/extra.md"
  echo >>"$OUT/extra.md"
  if ((QUICK)); then
    echo "perf profile skipped in --quick mode." >>"$OUT/extra.md"
  else
    perf_diff "$v" udp-est
    perf_diff "$v" udp-new
  fi
}

# perf (cpu-clock sampling of the sender task, softirq included) for A and V on one workload,
# then the per-symbol difference in ns/packet.
perf_diff() {
  local v=$1 w=$2 x args line ns_a ns_v
  command -v perf >/dev/null || { echo "perf not installed: no symbol profile" >>"$OUT/extra.md"; return 0; }
  for x in A "$v"; do
    [[ $w == udp-new && $x == C* ]] && { "$CTFILL" flush "$(ct_map_of "$x")" 2>/dev/null || true; }
    if [[ $w == udp-est ]]; then args=(udp --flows "$FLOWS" --packets "$EST_PKTS")
    else args=(udp --new --base $(((ROUNDS + 2) * NEW_PKTS)) --dst 10.1.0.0 --packets "$NEW_PKTS"); fi
    line=$(perf record -q -e cpu-clock -o "$WORK/perf-$x.data" -- \
      nsenter --net="/run/netns/$(ns_of "$x" src)" "$WORK/sender" "${args[@]}" --cpu "$SEND_CPU" 2>/dev/null)
    printf -v "ns_$([[ $x == A ]] && echo a || echo v)" '%s' "$(awk -F'[= ]' '{printf "%.0f", $2 / $6}' <<<"$line")"
  done
  {
    echo "perf, $w: sender task sampled (cpu-clock) in A and in $v; each symbol's share of samples times"
    echo "the run's ns/packet (symbols of the JITed programs are bpf_prog_<tag>_<name>):"
    echo
    /usr/bin/python3 "$HERE/perfdiff.py" "$WORK/perf-A.data" "$ns_a" "$WORK/perf-$v.data" "$ns_v" 25 2>&1
    echo
  } >>"$OUT/extra.md"
}

prog_stats() {  # prints "run_time_ns run_cnt" of program id $1
  bpftool -j prog show id "$1" | /usr/bin/python3 -c '
import json, sys
p = json.load(sys.stdin)
print(p.get("run_time_ns", 0), p.get("run_cnt", 0))'
}

machine_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel: $(uname -r)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rounds: $ROUNDS; udp-est packets: $EST_PKTS over $FLOWS flows; udp-new packets: $NEW_PKTS; tcp connections: $TCP_CONNS"
  echo "ipsnat: $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown) (variant C: $C_STATUS)"
}

main
