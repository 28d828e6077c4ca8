#!/bin/bash
# harness_panic.sh: scripts/vm/ipsnat-vm ends a guest whose kernel is stuck or crashed at once and
# shows why. One boot: the guest reports the settings that turn a soft lockup or an RCU stall into
# a panic (the kernel's own sysctls), then crashes its kernel (sysrq c). The harness must return
# its failure status (125) with "guest kernel panic", the panic's call trace in the output, well
# before the time limit. A real lockup cannot be provoked from user space on Debian's kernel (no
# lkdtm, no test_lockup): the lockup settings are checked as the kernel reports them, the panic
# path with a real panic.
set -uo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd -P)
limit=300
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail() { echo "FAIL: $*"; echo "--- output of ipsnat-vm:"; cat "$out"; exit 1; }

start=$SECONDS
"$root/scripts/vm/ipsnat-vm" -d "$root" -t "$limit" -- \
  'sysctl kernel.softlockup_panic kernel.softlockup_all_cpu_backtrace kernel.watchdog_thresh kernel.panic_on_rcu_stall
   echo "rcu_cpu_stall_timeout = $(cat /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout)"
   echo "console_loglevel = $(cut -f1 /proc/sys/kernel/printk)"
   echo c >/proc/sysrq-trigger' >"$out" 2>&1
rc=$?
took=$((SECONDS - start))

for want in 'kernel.softlockup_panic = 1' 'kernel.softlockup_all_cpu_backtrace = 1' 'kernel.watchdog_thresh = 30' \
  'kernel.panic_on_rcu_stall = 1' 'rcu_cpu_stall_timeout = 60' 'console_loglevel = 5'; do
  grep -qF "$want" "$out" || fail "the guest does not report '$want'"
  echo "ok: guest reports $want"
done
((rc == 125)) || fail "exit status $rc, want 125 (the harness's failure)"
grep -q 'ipsnat-vm: guest kernel panic' "$out" || fail "no 'guest kernel panic' reason"
grep -q 'Call Trace:' "$out" || fail "no call trace of the panic in the output"
grep -q 'sysrq_handle_crash' "$out" || fail "the call trace does not name the crash"
((took < limit - 30)) || fail "took ${took}s, near the ${limit}s limit: the panic did not end the VM"
echo "ok: the crashed guest ended in ${took}s with status 125, 'guest kernel panic' and its call trace"
