#!/bin/bash
# The sanitizer job (run by scripts/test.sh): the userspace built with clang, ASan and UBSan
# (-fno-sanitize-recover) and libFuzzer into build-asan/, then the unit tier under the
# sanitizers, every committed fuzz input once (fuzz_corpus.*, label unit) and each fuzz target
# for IPSNAT_FUZZ_SECONDS (default 60; label fuzz), two at a time. No root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${IPSNAT_ASAN_BUILD_DIR:-build-asan}
t0=$SECONDS
# Only what the job runs: the unit tests and fuzz targets (the whole userspace library).
CC=clang CXX=clang++ IPSNAT_BUILD_DIR=$dir IPSNAT_BUILD_TARGETS="ipsnat ipsnat_unit_tests fuzz_targets" \
  scripts/build.sh -DIPSNAT_FUZZ=ON -DIPSNAT_FUZZ_SECONDS="${IPSNAT_FUZZ_SECONDS:-60}"
t1=$SECONDS
cd "$dir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# unit.k8s_manifests checks YAML with node: nothing of ours is instrumented there.
status=0
ctest --output-on-failure -j2 -L 'unit|fuzz' -E '^unit\.k8s' "$@" || status=$?
echo "sanitize: build $((t1 - t0))s, tests $((SECONDS - t1))s"
exit "$status"
