#!/bin/bash
# SPD mirror benchmarks (not part of CI): policy change -> map update latency (p50/p99 over
# >= 1000 changes at 100, 10,000 and 100,000 policies), full sync and resync of 10k and 100k
# policies, map memory per 10k policies. Every figure comes with the CPU time (user + system)
# of the mirror's thread next to the wall time, and the load average is printed at the start
# and end of each case: on a shared machine wall times mostly measure the run queue.
# Runs unattended in throwaway network namespaces (root). About 40-80 s on a shared 2-core
# machine (most of it is `ip -batch` inserting the policies and the kernel's own per-change cost).
#
# Usage: scripts/bench/spd-mirror.sh [-o OUT] [-c CHANGES] [-l "SIZES"] [-r "SIZES"] [BUILD_DIR]
#   -o OUT      also write the report to OUT (e.g. docs/bench/spd-mirror.txt)
#   -c CHANGES  policy changes per latency case (default 1000)
#   -l SIZES    SPD sizes of the latency cases (default "100 10000 100000")
#   -r SIZES    SPD sizes of the sync cases (default "10000 100000")
#   BUILD_DIR   default $IPSNAT_BUILD_DIR or build
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=/dev/null
export IPSNAT_BENCH_CHANGES=1000 IPSNAT_BENCH_LATENCY_SIZES="100 10000 100000" IPSNAT_BENCH_RESYNC_SIZES="10000 100000"
while getopts "o:c:l:r:h" opt; do
  case $opt in
    o) OUT=$OPTARG ;;
    c) IPSNAT_BENCH_CHANGES=$OPTARG ;;
    l) IPSNAT_BENCH_LATENCY_SIZES=$OPTARG ;;
    r) IPSNAT_BENCH_RESYNC_SIZES=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
BUILD_DIR=${1:-${IPSNAT_BUILD_DIR:-build}}
BIN="$BUILD_DIR/tests/ipsnat_netns_tests"
[[ -x $BIN ]] || { echo "spd-mirror.sh: $BIN not built (scripts/build.sh)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "spd-mirror.sh: needs root (network namespaces, BPF maps)" >&2; exit 1; }
start=$SECONDS
report=$(mktemp)
trap 'rm -f "$report"' EXIT
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r); nproc: $(nproc); ipsnat: $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)"
  echo "options: changes=$IPSNAT_BENCH_CHANGES latency sizes=\"$IPSNAT_BENCH_LATENCY_SIZES\" sync sizes=\"$IPSNAT_BENCH_RESYNC_SIZES\""
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BIN" --gtest_also_run_disabled_tests --gtest_filter='SpdBench.*' 2>&1 | grep -E '^BENCH|FAILED|Failure|^\[ +OK' || true
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - start)) s"
} | tee "$report"
cp "$report" "$OUT"
# Exit status: 1 when a case failed (the numbers of the others are still printed).
! grep -q FAILED "$report"
