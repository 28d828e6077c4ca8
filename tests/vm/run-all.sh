#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# run-all.sh: run every tests/vm/t_*.sh scenario in this (one) VM boot — a boot
# costs ~10-30 s under TCG, so scenarios share it and are isolated by lab_down
# between them instead. Normally started by tests/vm/vm-tier.sh inside
# scripts/vm/ipsnat-vm; on a host without ESP the scenarios SKIP.
#
# usage: run-all.sh [-v] [--list] [FILTER...]
#   FILTER: run only scenarios whose name (t_NAME.sh) contains one of them. Without one, every
#     scenario but those marked "# vm-ci: named" (IPSNAT_VM_ALL=1: those too).
#   -v: print every scenario's output, not only failing ones.
#   --list: print the selected scenario files and exit (no lab, no VM needed).
# Prints "PASS|FAIL|SKIP name (Ns)" per scenario and ends with the line
#   vm: N passed, M failed[, K skipped]
# exit status: 0 if none failed (and at least one ran or was skipped), else 1.
# env: IPSNAT_VM_SCENARIO_TIMEOUT (s, default 900) bounds each scenario;
#      IPSNAT_VM_LOGDIR keeps each scenario's output there as NAME.log, written while it runs
#      (in a directory the host shares: a VM that hangs or times out leaves the log so far).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
verbose=0 list=0
[[ ${1:-} == -v ]] && { verbose=1; shift; }
[[ ${1:-} == --list ]] && { list=1; shift; }

scenarios=()
# p_*.sh are pending scenarios (known failures being worked on): run with IPSNAT_VM_PENDING=1.
pending=()
[[ ${IPSNAT_VM_PENDING:-0} == 1 ]] && pending=("$here"/p_*.sh)
for t in "$here"/t_*.sh "${pending[@]}"; do
  [[ -e $t ]] || continue
  name=$(basename "$t" .sh); name=${name#[tp]_}
  if (($#)); then
    keep=0
    for f in "$@"; do [[ $name == *"${f#t_}"* ]] && keep=1; done
    ((keep)) || continue
  fi
  # A scenario with the header "# vm-ci: named" runs only when a FILTER names it or with
  # IPSNAT_VM_ALL=1, not in the default run (CI), for time: CI is CPU-bound on 2 cores.
  if ((!$#)) && [[ ${IPSNAT_VM_ALL:-0} != 1 && -z ${IPSNAT_VM_ONLY:-} ]] && grep -q '^# vm-ci: named' "$t"; then continue; fi
  # IPSNAT_VM_ONLY: exact scenario names (t_x ...), how vm-tier.sh hands a shard its share.
  if [[ -n ${IPSNAT_VM_ONLY:-} && " $IPSNAT_VM_ONLY " != *" $(basename "$t" .sh) "* ]]; then continue; fi
  scenarios+=("$t")
done
if ((list)); then
  ((${#scenarios[@]} == 0)) || printf '%s\n' "${scenarios[@]}"
  exit 0
fi

# One prefix for the runner and all scenarios, so the runner's lab_down also
# removes whatever a crashed or timed-out scenario left behind.
export LAB_PREFIX=ipsnat-vm$$
# shellcheck source=../../scripts/lab/lab.sh
source "$here/../../scripts/lab/lab.sh"

logdir=${IPSNAT_VM_LOGDIR:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vm-tests.XXXXXX")
trap 'lab_down; rm -rf "$tmp"' EXIT
[[ -z $logdir ]] || mkdir -p "$logdir"

pass=0 failn=0 skipn=0
for t in "${scenarios[@]}"; do
  name=$(basename "$t" .sh)
  log=$tmp/$name.log
  [[ -z $logdir ]] || log=$logdir/$name.log
  start=$SECONDS
  # A child bash per scenario: its own traps/variables; timeout bounds a hang.
  set +e
  timeout -k 10 "${IPSNAT_VM_SCENARIO_TIMEOUT:-900}" bash "$t" </dev/null >"$log" 2>&1
  rc=$?
  set -e
  lab_down
  secs=$((SECONDS - start))
  case $rc in
    0) verdict=PASS; pass=$((pass + 1)) ;;
    77) verdict=SKIP; skipn=$((skipn + 1)) ;;
    124 | 137) verdict=FAIL; failn=$((failn + 1)); echo "TIMEOUT after ${secs}s" >>"$log" ;;
    *) verdict=FAIL; failn=$((failn + 1)) ;;
  esac
  echo "$verdict $name (${secs}s)"
  if [[ $verdict == FAIL ]] || ((verbose)); then sed 's/^/    /' "$log"; fi
  if [[ $verdict == SKIP ]] && ((!verbose)); then grep -m1 '^SKIP:' "$log" | sed 's/^/    /' || true; fi
done

summary="vm: $pass passed, $failn failed"
((skipn == 0)) || summary+=", $skipn skipped"
echo "$summary"
if ((${#scenarios[@]} == 0)); then echo "run-all: no scenario matches: $*" >&2; exit 1; fi
((failn == 0))
