#!/bin/bash
# vm-tier.sh [-v] [FILTER...]: the VM test tier as one command (what CTest runs):
# boots one VM with scripts/vm/ipsnat-vm and runs tests/vm/run-all.sh in it.
# The VM's time limit (IPSNAT_VM_TIMEOUT, default 1200 s) is below CTest's
# 1500 s, so a hang ends here, with the console log path printed.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd -P)
# Several arguments: ipsnat-vm runs them as an argument vector (no re-parsing).
exec "$root/scripts/vm/ipsnat-vm" -d "$root" -t "${IPSNAT_VM_TIMEOUT:-1200}" -- \
  bash "$root/tests/vm/run-all.sh" "$@"
