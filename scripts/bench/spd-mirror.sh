#!/bin/bash
# SPD mirror benchmarks (not part of CI): policy change -> map update latency (p50/p99 over
# >= 1000 changes at 100, 10,000 and 100,000 policies), full resync time for 10k and 100k
# policies, map memory per 10k policies. Runs in throwaway network namespaces; needs root.
# Usage: scripts/bench/spd-mirror.sh [BUILD_DIR] [OUT]   (OUT: also write the report there,
# e.g. docs/bench/spd-mirror.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:-${IPSNAT_BUILD_DIR:-build}}
OUT=${2:-/dev/null}
BIN="$BUILD_DIR/tests/ipsnat_netns_tests"
[[ -x $BIN ]] || { echo "spd-mirror.sh: $BIN not built (scripts/build.sh)" >&2; exit 1; }
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -r); nproc: $(nproc); ipsnat: $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BIN" --gtest_also_run_disabled_tests --gtest_filter='SpdBench.*' | grep -E '^BENCH|FAILED|OK'
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT"
