#!/bin/bash
# One bounded fuzz run: TARGET CORPUS WORKDIR SECONDS. New inputs go to WORKDIR/corpus (the
# committed CORPUS is read, never written); a crash leaves WORKDIR/crash-* and fails the test.
# The final line of libFuzzer's statistics is echoed so that CI logs carry execs and coverage.
set -euo pipefail
target=$1 corpus=$2 work=$3 seconds=$4
mkdir -p "$work/corpus"
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
status=0
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$corpus" >"$work/log" 2>&1 || status=$?
grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$work/log" | tail -n 1 || true
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$work/log" || true
if ((status)); then
  tail -n 60 "$work/log"
  ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null || true
fi
exit "$status"
