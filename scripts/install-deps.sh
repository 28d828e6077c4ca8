#!/bin/bash
# Installs every Debian 12 package that building, the demo and all test tiers need.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "install-deps: run as root (apt-get needs it)" >&2; exit 1; }

BUILD=(cmake make g++ clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
       libcli11-dev libspdlog-dev libfmt-dev googletest libgtest-dev libgmock-dev
       libmnl-dev nlohmann-json3-dev libtomlplusplus-dev)
TEST=(iproute2 tcpdump nftables iputils-ping socat kmod cpio python3 ethtool jq)
VM=(linux-image-amd64 qemu-system-x86 busybox-static strongswan-charon strongswan-swanctl)

missing=()
for p in "${BUILD[@]}" "${TEST[@]}" "${VM[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
