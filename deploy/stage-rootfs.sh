#!/bin/bash
# Stages the image's root filesystem: the ipsnat binary and exactly the shared objects the
# dynamic loader resolves for it (ldd), nothing else: no shell, no package manager, no libc
# tools. The BPF object is embedded in the binary (skeleton).
# usage: deploy/stage-rootfs.sh BINARY OUTDIR
set -euo pipefail
bin=$1 out=$2
[[ -x $bin ]] || { echo "stage-rootfs: $bin is not an executable" >&2; exit 1; }
rm -rf "$out"
install -D -m 0755 "$bin" "$out/usr/sbin/ipsnat"
ldd "$bin" | grep -q 'not found' && { ldd "$bin" >&2; echo "stage-rootfs: unresolved libraries" >&2; exit 1; }
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  install -D -m 0644 "$(readlink -f "$lib")" "$out$lib"
done
# The loader must be executable; the probes and `kubectl exec` run /usr/sbin/ipsnat.
chmod 0755 "$out"/lib64/ld-linux-* 2>/dev/null || true
mkdir -p "$out/run/ipsnat" "$out/etc/ipsnat" "$out/sys/fs/bpf" "$out/tmp"
