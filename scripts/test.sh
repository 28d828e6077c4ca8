#!/bin/bash
# The whole test suite: installs what it needs, builds, runs every tier (unit, bpf, netns, vm).
# usage: scripts/test.sh [-L LABEL-REGEX] [extra ctest args]   e.g. scripts/test.sh -L 'unit|bpf'
# The bench label (scripts/bench/run.py --quick end to end, over a minute on a busy machine) runs
# only when asked for: scripts/test.sh -L bench.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "test.sh: the bpf, netns and vm tiers need root" >&2; exit 1; }
scripts/install-deps.sh
# CI machines may start without a BPF filesystem; pins need one.
[[ $(stat -f -c %T /sys/fs/bpf) == bpf_fs ]] || mount -t bpf bpf /sys/fs/bpf
scripts/build.sh
status=0
default=()
(($# == 0)) && default=(-LE bench)
(cd "${IPSNAT_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1500 "${default[@]}" "$@") || status=$?
# The full run (no arguments, as CI calls it) adds the ASan/UBSan + fuzz job (scripts/sanitize.sh).
if (($# == 0)); then scripts/sanitize.sh || status=1; fi
exit "$status"
