#!/bin/bash
# The main job: installs what is needed, builds, checks the kernel, and runs the lab demo
# (scripts/demo-lab.sh: the seed network in namespaces, `ipsnat attach eth0`, traffic, proof).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "demo.sh: run as root (packages, BPF, namespaces)" >&2; exit 1; }
scripts/install-deps.sh
[[ $(stat -f -c %T /sys/fs/bpf) == bpf_fs ]] || mount -t bpf bpf /sys/fs/bpf
scripts/build.sh
build/loader/ipsnat --version
build/loader/ipsnat check
exec scripts/demo-lab.sh "$@"
