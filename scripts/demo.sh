#!/bin/bash
# The main job: installs what is needed, builds, and shows ipsnat on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "demo.sh: run as root (packages, BPF, namespaces)" >&2; exit 1; }
scripts/install-deps.sh
[[ $(stat -f -c %T /sys/fs/bpf) == bpf_fs ]] || mount -t bpf bpf /sys/fs/bpf
scripts/build.sh
IPSNAT=build/loader/ipsnat
"$IPSNAT" --version
"$IPSNAT" check
