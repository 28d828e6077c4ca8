#!/bin/bash
# vm-tier.sh [-v] [FILTER...]: the VM test tier as one command (what CTest runs).
# Boots scripts/vm/ipsnat-vm and runs tests/vm/run-all.sh in it. Under TCG a
# scenario takes minutes and mostly keeps one CPU busy, so the scenarios are
# split into IPSNAT_VM_SHARDS groups (default: one per CPU, at most 2), each
# run by its own VM at the same time; a scenario's "# vm-cost: SECONDS" header
# (its emulated CPU seconds, qemu user+sys measured with the scenario alone in
# the VM; default 120) balances the groups. Each VM's time limit (IPSNAT_VM_TIMEOUT,
# default 1500 s) is below CTest's 1560 s, so a hang ends here, with the
# console log path printed.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd -P)
vm=("$root/scripts/vm/ipsnat-vm" -d "$root" -t "${IPSNAT_VM_TIMEOUT:-1500}" --)
# Each scenario's output, written as it runs into the build directory the VM shares
# (run-all.sh IPSNAT_VM_LOGDIR): after a VM that hung, its log names the last step (and a
# randomized scenario's seed).
logs=${IPSNAT_VM_LOGDIR:-${IPSNAT_BUILD_DIR:-$root/build}/vm-logs}
case $(readlink -m "$logs")/ in
  "$root"/*) mkdir -p "$logs" && rm -f "$logs"/*.log && export IPSNAT_VM_LOGDIR=$logs ;;
  *) logs= ;;   # outside the directory the VM shares: the guest could not write there
esac
runner=(bash "$root/tests/vm/run-all.sh")

verbose=()
[[ ${1:-} == -v ]] && { verbose=(-v); shift; }
mapfile -t scenarios < <("${runner[@]}" --list "$@")
shards=${IPSNAT_VM_SHARDS:-$(nproc)}
((shards > 2)) && shards=2
((${#scenarios[@]} < shards)) && shards=${#scenarios[@]}
if ((shards <= 1)); then
  # Several arguments: ipsnat-vm runs them as an argument vector (no re-parsing).
  exec "${vm[@]}" "${runner[@]}" "${verbose[@]}" "$@"
fi

# Longest first, each to the currently lightest shard.
declare -a load names
for ((s = 0; s < shards; s++)); do load[s]=0; names[s]=; done
while read -r cost file; do
  best=0
  for ((s = 1; s < shards; s++)); do ((load[s] < load[best])) && best=$s; done
  load[best]=$((load[best] + cost))
  names[best]+=" $(basename "$file" .sh)"
done < <(for f in "${scenarios[@]}"; do
  c=$(sed -n 's/^# vm-cost: *\([0-9]*\).*/\1/p' "$f" | head -1)
  echo "${c:-120} $f"
done | sort -rn)

out=$(mktemp -d "${TMPDIR:-/tmp}/vm-tier.XXXXXX")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait || true; rm -rf "$out"' EXIT
trap 'exit 143' TERM INT
for ((s = 0; s < shards; s++)); do
  echo "vm shard $s (~${load[s]}s):${names[s]}"
  IPSNAT_VM_ONLY=${names[s]# } "${vm[@]}" "${runner[@]}" "${verbose[@]}" >"$out/$s" 2>&1 &
  pids+=($!)
done
rc=0 pass=0 failn=0 skipn=0
for ((s = 0; s < shards; s++)); do
  st=0
  wait "${pids[s]}" || st=$?
  echo "--- vm shard $s (exit $st)"
  grep -v '^vm: [0-9]* passed' "$out/$s" || true
  line=$(grep -o '^vm: [0-9]* passed, [0-9]* failed\(, [0-9]* skipped\)\?' "$out/$s" | tail -1 || true)
  if [[ -z $line ]]; then
    echo "vm shard $s: no summary (VM failed?)${logs:+; the output so far of each scenario is in $logs}"
    failn=$((failn + 1))
  fi
  read -r p f k < <(sed -E 's/vm: ([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?/\1 \2 \4/' <<<"$line")
  pass=$((pass + ${p:-0})) failn=$((failn + ${f:-0})) skipn=$((skipn + ${k:-0}))
  ((st == 0)) || rc=1
done
summary="vm: $pass passed, $failn failed"
((skipn == 0)) || summary+=", $skipn skipped"
echo "$summary"
((failn == 0)) || rc=1
exit "$rc"
