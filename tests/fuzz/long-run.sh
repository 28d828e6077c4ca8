#!/bin/bash
# The long fuzz run of docs/robustness.md: every target at once, each stopped (SIGINT, so that
# libFuzzer prints its final statistics) once it has used CPU_SECONDS of CPU time, or at
# WALL_SECONDS. usage: tests/fuzz/long-run.sh BUILD_DIR OUT_DIR [CPU_SECONDS=630] [WALL_SECONDS=3600]
# OUT_DIR/NAME/{log,corpus,crash-*}; OUT_DIR/summary.txt has one line per target.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1 out=$2 cpu_limit=${3:-630} wall_limit=${4:-3600}
hz=$(getconf CLK_TCK)
declare -A pid
for src in "$here"/fuzz_*.cpp; do
  name=$(basename "$src" .cpp)
  mkdir -p "$out/$name/corpus"
  "$build/tests/fuzz/$name" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -max_total_time="$wall_limit" -artifact_prefix="$out/$name/" "$out/$name/corpus" "$here/corpus/$name" \
    >"$out/$name/log" 2>&1 &
  pid[$name]=$!
done
cpu_of() { awk -v hz="$hz" '{ print int(($14 + $15) / hz) }' "/proc/$1/stat" 2>/dev/null || echo -1; }
start=$SECONDS
declare -A cpu
while :; do
  running=0
  for name in "${!pid[@]}"; do
    p=${pid[$name]}
    [[ -e /proc/$p ]] || continue
    c=$(cpu_of "$p")
    ((c >= 0)) && cpu[$name]=$c
    if ((c >= cpu_limit || SECONDS - start >= wall_limit)); then kill -INT "$p" 2>/dev/null || true
    else running=1; fi
  done
  ((running)) || break
  sleep 5
done
wait || true
{
  for name in "${!pid[@]}"; do
    log=$out/$name/log
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    crashes=$(find "$out/$name" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
    echo "$name cpu_s=${cpu[$name]:-?} wall_s=$((SECONDS - start)) execs=${execs:-?} $cov corpus=$(ls "$out/$name/corpus" | wc -l) findings=$crashes"
  done
} | sort | tee "$out/summary.txt"
