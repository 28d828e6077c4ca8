#!/bin/bash
# Installs every Debian 12 package that building, the demo and all test tiers need.
# Idempotent: packages already present are skipped by apt-get.
# --build-only: just what compiling needs (the container image's build stage).
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "install-deps: run as root (apt-get needs it)" >&2; exit 1; }

BUILD=(cmake make g++ clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config
       libcli11-dev libspdlog-dev libfmt-dev googletest libgtest-dev libgmock-dev
       libmnl-dev nlohmann-json3-dev libtomlplusplus-dev)
TEST=(iproute2 tcpdump nftables iptables iputils-ping socat kmod cpio python3 ethtool jq curl libcap2-bin util-linux podman
      groff-base man-db zsh  # the man page and completion tests (tests/docs)
      dpkg-dev  # dpkg-shlibdeps for the .deb's Depends (tests/package)
      libclang-rt-14-dev)  # libFuzzer + ASan/UBSan runtimes of clang 14 (scripts/sanitize.sh)
# The unit tier validates deploy/kubernetes with node (tests/k8s); a preinstalled node is fine.
command -v node >/dev/null && command -v npm >/dev/null || TEST+=(nodejs npm)
VM=(linux-image-amd64 qemu-system-x86 busybox-static strongswan-charon strongswan-swanctl)

wanted=("${BUILD[@]}")
[[ ${1:-} == --build-only ]] || wanted+=("${TEST[@]}" "${VM[@]}")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ ${1:-} != --build-only ]]; then
  # npm packages of the manifest validation, pinned by tests/k8s/package-lock.json.
  (cd "$(dirname "$0")/../tests/k8s" && npm ci --no-audit --no-fund --loglevel=error)
fi
