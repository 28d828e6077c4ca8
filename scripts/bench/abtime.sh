#!/bin/bash
# A/B cost of the datapath's hot paths (scripts/bench/abtime.cpp, docs/benchmarks.md): builds the
# datapath object of git revision REF (A, default main) as cmake/Bpf.cmake does, and times it
# against this build's object (B, or the object B_OBJ names).
#
#   sudo scripts/bench/abtime.sh [REF] [ipsnat_abtime options: --case, --rounds, --packets, --flows]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${IPSNAT_BUILD_DIR:-build}
ref=main
if [[ $# -gt 0 && $1 != --* ]]; then ref=$1; shift; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$ref" bpf maps | tar -x -C "$work"
clang=$(command -v clang || command -v clang-19 || command -v clang-14)
"$clang" -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -I"$work" -I"$work/bpf" \
  -I"/usr/include/$(cc -print-multiarch)" -c "$work/bpf/ipsnat.bpf.c" -o "$work/a.bpf.o"
echo "A: $ref ($(git rev-parse --short "$ref")); B: ${B_OBJ:-$BUILD_DIR/generated/bpf/ipsnat_bpf.bpf.o} (worktree $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- bpf maps || echo ', modified'))"
"$BUILD_DIR/scripts/bench/ipsnat_abtime" --a "$work/a.bpf.o" --b "${B_OBJ:-$BUILD_DIR/generated/bpf/ipsnat_bpf.bpf.o}" "$@"
