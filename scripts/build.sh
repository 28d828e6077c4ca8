#!/bin/bash
# Configures and builds ipsnat into build/ (or $IPSNAT_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${IPSNAT_BUILD_DIR:-build}
launcher=()
# ccache, when installed, lets worktrees and rebuilds share compiled objects;
# BASEDIR makes its keys independent of where the checkout lives.
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
# IPSNAT_BUILD_TARGETS: only these targets (space-separated), e.g. for the sanitizer job.
targets=()
for t in ${IPSNAT_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
