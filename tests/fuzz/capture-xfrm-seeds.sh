#!/bin/bash
# Regenerates tests/fuzz/corpus/fuzz_xfrm_policy/{dump,event}-*.bin from this kernel's real
# XFRM policy messages, inside a throwaway network namespace (root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ns=ipsnat-fuzzseed-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
nsenter --net=/run/netns/"$ns" python3 "$here/capture-xfrm-seeds.py" "$here/corpus/fuzz_xfrm_policy"
