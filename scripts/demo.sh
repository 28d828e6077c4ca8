#!/bin/bash
# The main job: installs what is needed, builds, checks the kernel, and runs the lab demo: the seed
# network in namespaces, a real IKEv2/ESP tunnel (strongSwan), `ipsnat attach eth0`, traffic, and
# what happened (scripts/demo-esp.sh). ESP needs esp4 in the kernel; when this machine's kernel has
# none, the demo runs inside a throw-away VM that boots Debian's kernel (scripts/vm/ipsnat-vm).
# Without a usable VM (or with --no-vm) it falls back to scripts/demo-lab.sh on this kernel, where
# the proof is the kernel's xfrm ACQUIRE for the translated flow instead of an encrypted tunnel.
# usage: demo.sh [--no-vm] [seed|alt]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "demo.sh: run as root (packages, BPF, namespaces)" >&2; exit 1; }
use_vm=1
[[ ${1:-} == --no-vm ]] && { use_vm=0; shift; }
profile=${1:-seed}
scripts/install-deps.sh
[[ $(stat -f -c %T /sys/fs/bpf) == bpf_fs ]] || mount -t bpf bpf /sys/fs/bpf
scripts/build.sh
build/loader/ipsnat --version
build/loader/ipsnat check

export LAB_PREFIX=ipsnat-demo$$
source scripts/lab/lab.sh
if lab_esp_supported; then
  echo "demo.sh: this kernel has ESP: real tunnel here"
  exec scripts/demo-esp.sh "$profile"
fi
if ((use_vm)); then
  echo "demo.sh: this kernel has no ESP: booting a VM with Debian's kernel (scripts/vm/ipsnat-vm; a few minutes under TCG)"
  rc=0
  scripts/vm/ipsnat-vm -t "${IPSNAT_DEMO_VM_TIMEOUT:-900}" -- bash scripts/demo-esp.sh "$profile" || rc=$?
  # 125: the VM itself could not run (no qemu, no kernel image, ...): fall back below.
  ((rc == 125)) || exit "$rc"
  echo "demo.sh: the VM is unusable here; falling back to the demo on this kernel (no ESP)" >&2
fi
echo "demo.sh: demo on this kernel without ESP (proof: the kernel's xfrm ACQUIRE)"
exec scripts/demo-lab.sh "$profile"
