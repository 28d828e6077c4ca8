#!/bin/bash
# Per-packet forwarding cost of ipsnat against plain forwarding and nftables SNAT, measured as CPU
# time of the sending thread (see docs/benchmarks.md for the method and how to read the results).
#
#   scripts/bench/run.sh [--rounds N] [--quick] [--out DIR] [--ipsnat BIN] [--publish]
#
# --quick     smoke test of the script itself (2 rounds, small counts, < 60 s); numbers meaningless
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
  EST_PKTS=20000; NEW_PKTS=4000; TCP_CONNS=200; CT_FILL=100000
else
  EST_PKTS=200000; NEW_PKTS=40000; TCP_CONNS=2000; CT_FILL=1000000
fi
FLOWS=1000
SPD_SIZES=(1 100 10000)
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
  /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || missing+=(python3-matplotlib)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
  cc -O2 -Wall -Wextra -Werror -o "$WORK/sender" "$HERE/sender.c"
}

# ---------------------------------------------------------------------------------------------
# Topology: per variant V three namespaces ${PFX}V-src, -gw, -dst:
#   src s0 192.168.1.10/24 --- l0 192.168.1.1/24 [gw] u0 200.2.2.2/24 --- d0 200.2.2.1/24 dst
# dst owns all of 10.0.0.0/8 (local route on lo), so every destination of the new-flow workload
# is delivered locally. Every gw holds the same XFRM out-policy 10.20.30.2/32 -> 10.0.0.0/8 without
# templates (action allow): the kernel's own forward-path SPD lookup runs in every variant, and a
# translated packet matches it and passes in cleartext (this kernel has no ESP).
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
  ip -n "$gw" xfrm policy add src 10.20.30.2/32 dst 10.0.0.0/8 dir out priority 379519

  taskset -c "$OTHER_CPUS" nsenter --net="/run/netns/$dst" "$WORK/sender" sink-udp --port 9 &
  PIDS+=($!)
  taskset -c "$OTHER_CPUS" nsenter --net="/run/netns/$dst" "$WORK/sender" sink-tcp --port 80 &
  PIDS+=($!)
}

# Adds N-1 further out-policies around the benchmark's one: overlapping destination prefixes
# inside and outside 10.0.0.0/8 (/16, /24, /28, as sites' split tunnels have), other tunnels'
# virtual addresses as sources, priorities as strongSwan derives them (more specific = smaller
# value). None of them matches 10.20.30.2 -> 10.0.0.1/16-range more specifically with the same
# source, so the benchmark flows still translate to 10.20.30.2.
add_policies() {
  local v=$1 n=$2 gw file i a b
  gw=$(ns_of "$v" gw)
  ((n > 1)) || return 0
  file="$WORK/policies-$v"
  : >"$file"
  for ((i = 1; i < n; i++)); do
    a=$(((i / 250) % 250 + 1)); b=$((i % 250 + 1))
    case $((i % 4)) in
      0) echo "xfrm policy add src 10.21.$a.$b/32 dst 10.$a.0.0/16 dir out priority $((379000 - 16 * 256))" ;;
      1) echo "xfrm policy add src 10.21.$a.$b/32 dst 10.$a.$b.0/24 dir out priority $((379000 - 24 * 256))" ;;
      2) echo "xfrm policy add src 10.20.30.2/32 dst 172.$((16 + a / 16)).$b.$((a % 16 * 16))/28 dir out priority $((379000 - 28 * 256))" ;;
      3) echo "xfrm policy add src 192.168.$a.0/24 dst 10.$a.$b.0/24 dir out priority $((379000 - 24 * 256 - 8))" ;;
    esac
  done >"$file"
  ip -n "$gw" -batch "$file"
}

# ---------------------------------------------------------------------------------------------
# Variants: what is added on gw.
setup_nft_snat() {  # B
  local gw; gw=$(ns_of "$1" gw)
  in_ns "$gw" nft -f - <<'EOF'
table ip ipsb_nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 192.168.1.0/24 ip daddr 10.0.0.0/8 oifname "u0" snat to 10.20.30.2
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
# C: ipsnat attached on gw. Sets C_STATUS to "measured" when the datapath translates.
setup_ipsnat() {
  local v=$1 gw pin
  gw=$(ns_of "$v" gw)
  pin=/sys/fs/bpf/ipsb$$-$v
  PIN_ROOTS+=("$pin")
  if [[ ! -x $IPSNAT_BIN ]]; then
    C_STATUS="not measured: no ipsnat binary at $IPSNAT_BIN"
    return 1
  fi
  in_ns "$gw" env IPSNAT_PIN_ROOT="$pin" "$IPSNAT_BIN" --pin-root "$pin" attach u0 >"$WORK/attach-$v.log" 2>&1 || {
    C_STATUS="not measured: 'ipsnat attach u0' failed: $(head -c 300 "$WORK/attach-$v.log")"
    return 1
  }
}

# What happens to 10 packets from src in variant V: prints translated (they reached dst from
# 10.20.30.2), untranslated (from 192.168.1.10) or lost.
translation_of() {
  local v=$1 dst src
  dst=$(ns_of "$v" dst); src=$(ns_of "$v" src)
  in_ns "$dst" nft -f - <<'EOF'
table ip ipsb_check {
  counter translated {}
  counter untranslated {}
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 7 ip saddr 10.20.30.2 counter name translated
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
    udp-est|spd|ct) args=(udp --flows "$FLOWS" --packets "$EST_PKTS") ;;
    udp-new) args=(udp --new --base $((round * NEW_PKTS)) --dst 10.1.0.0 --packets "$NEW_PKTS") ;;
    tcp-cc) args=(tcp --dport 80 --count "$TCP_CONNS" --dst "10.$((2 + round / 250)).$((round % 250)).1")
            [[ $v == Z* ]] && args+=(--no-wait) ;;
  esac
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
  # Cct: ipsnat with its conntrack table filled to CT_FILL entries.
  local variants=(A B C Z) spd_variants=() c_ok=0
  for v in A B C Z A10000; do make_topology "$v"; done
  setup_nft_snat B
  setup_drop Z
  add_policies A10000 10000
  if setup_ipsnat C; then
    local how; how=$(translation_of C)
    if [[ $how == translated ]]; then
      c_ok=1
      C_STATUS="measured"
    else
      C_STATUS="not measured: ipsnat attached but packets were $how"
    fi
  fi
  # The comparison means something only if A forwards untranslated and B translates.
  local a b
  a=$(translation_of A); b=$(translation_of B)
  [[ $a == untranslated && $b == translated ]] || { log "sanity check failed: A $a, B $b"; exit 1; }
  log "variant C: $C_STATUS"
  if ((c_ok)); then
    for n in 100 10000; do
      make_topology "C$n"; add_policies "C$n" "$n"; setup_ipsnat "C$n"
      [[ $(translation_of "C$n") == translated ]] || { log "C$n does not translate"; exit 1; }
      spd_variants+=("C$n")
    done
  fi
  log "setup done in $((SECONDS - started)) s"

  echo "round,workload,variant,packets,cpu_ns,wall_ns" >"$CSV"
  local round w v
  for ((round = 1; round <= ROUNDS; round++)); do
    for w in udp-est udp-new tcp-cc; do
      for v in "${variants[@]}"; do
        [[ $v == C ]] && ((!c_ok)) && continue
        measure "$round" "$w" "$v"
      done
    done
    for v in A C "${spd_variants[@]}" A10000 Z; do
      [[ $v == C ]] && ((!c_ok)) && continue
      measure "$round" spd "$v"
    done
    log "round $round/$ROUNDS done ($((SECONDS - started)) s)"
  done

  machine_info >"$OUT/machine.txt"
  echo "$C_STATUS" >"$OUT/c_status.txt"
  /usr/bin/python3 "$HERE/report.py" "$OUT"
  if ((PUBLISH)); then
    mkdir -p "$REPO/docs/bench"
    cp "$OUT"/{results.csv,summary.md,chart.png,machine.txt} "$REPO/docs/bench/"
    log "published to docs/bench/"
  fi
  log "done in $((SECONDS - started)) s: $OUT/summary.md"
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
