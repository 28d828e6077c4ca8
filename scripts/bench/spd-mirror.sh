#!/bin/bash
# SPD mirror benchmarks (not part of CI): policy change -> map update latency (p50/p99 over
# >= 1000 changes), full resync time for 10k and 100k policies, map memory per 10k policies.
# Runs in throwaway network namespaces; needs root. Usage: scripts/bench/spd-mirror.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${1:-${IPSNAT_BUILD_DIR:-build}}
BIN="$BUILD_DIR/tests/ipsnat_netns_tests"
[[ -x $BIN ]] || { echo "spd-mirror.sh: $BIN not built (scripts/build.sh)" >&2; exit 1; }
"$BIN" --gtest_also_run_disabled_tests --gtest_filter='SpdBench.*' | grep -E '^BENCH|FAILED|OK'
