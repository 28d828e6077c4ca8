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
# The full run (no arguments, as CI calls it) adds the ASan/UBSan + fuzz job (scripts/sanitize.sh).
# Its build runs at nice 19 beside the tiers, most of which wait on timers and the network: it
# takes the CPU they leave (CFS gives nice 19 about 1.5 % of a contended CPU), so their timing is
# what it is without it. Its tests run after the tiers.
sanitize_log=$(mktemp "${TMPDIR:-/tmp}/ipsnat-sanitize-build.XXXXXX")
if (($# == 0)); then
  default=(-LE bench)
  IPSNAT_SANITIZE_STEP=build nice -n 19 scripts/sanitize.sh >"$sanitize_log" 2>&1 &
  sanitize_build=$!
fi
# -j2: the VM tier (its own kernel) runs beside the host tiers; those hold RESOURCE_LOCK host and
# so run one at a time (tests/CMakeLists.txt).
(cd "${IPSNAT_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 1500 -j2 "${default[@]}" "$@") || status=$?
if (($# == 0)); then
  built=0
  wait "$sanitize_build" || built=$?
  tail -n 40 "$sanitize_log"
  if ((built == 0)); then IPSNAT_SANITIZE_STEP=test scripts/sanitize.sh || status=1; else status=1; fi
fi
rm -f "$sanitize_log"
exit "$status"
