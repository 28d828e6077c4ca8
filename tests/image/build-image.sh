#!/bin/bash
# The container image (deploy/Containerfile*): built with podman where podman works; the image
# holds /usr/sbin/ipsnat and exactly the shared objects ldd names, nothing else, and the binary
# runs in it. Skips (77) with the reason where podman, a registry or running containers are
# unavailable; what could be checked still is.
# usage: build-image.sh IPSNAT_BINARY SRC_DIR
set -euo pipefail
bin=$1 src=$2
command -v podman >/dev/null || { echo "SKIP: podman is not installed (apt-get install podman)"; exit 77; }
tag=localhost/ipsnat-test:$$
work=$(mktemp -d /tmp/ipsnat-image-XXXXXX)
cid=
cleanup() {
  [[ -n $cid ]] && podman rm -f "$cid" >/dev/null 2>&1 || true
  podman rmi -f "$tag" "$tag-full" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
skipped=()

"$src/deploy/stage-rootfs.sh" "$bin" "$work/rootfs"
if ! podman build -q -f "$src/deploy/Containerfile.prebuilt" -t "$tag" "$work/rootfs" >"$work/build.log" 2>&1; then
  echo "SKIP: podman cannot build here: $(tail -1 "$work/build.log")"; exit 77
fi
echo "ok: image built from deploy/Containerfile.prebuilt"

# Contents, without running anything: export a created container's filesystem.
cid=$(podman create "$tag")
podman export "$cid" | tar -t | sed 's|/$||' | sort >"$work/files"
expected=$( (echo usr/sbin/ipsnat; ldd "$bin" | grep -o '/[^ ]*' | sed 's|^/||') | sort -u)
extra=$(grep -v -x -F -f <(echo "$expected") "$work/files" |
  grep -v -x -E 'usr|usr/sbin|lib|lib64|lib/x86_64-linux-gnu|usr/lib|usr/lib/x86_64-linux-gnu|run|run/ipsnat|etc|etc/ipsnat|sys|sys/fs|sys/fs/bpf|tmp|dev|proc|etc/hosts|etc/hostname|etc/resolv.conf|run/.containerenv|dev/.*|proc/.*|sys/.*' || true)
missing=$(comm -23 <(echo "$expected") "$work/files")
[[ -z $missing ]] || { echo "FAIL: missing from the image: $missing"; exit 1; }
[[ -z $extra ]] || { echo "FAIL: the image holds more than ipsnat needs: $extra"; exit 1; }
echo "ok: the image holds /usr/sbin/ipsnat and its $(($(wc -l <<<"$expected") - 1)) shared objects, nothing else"
! grep -q -x -E 'bin/sh|usr/bin/sh|bin/bash' "$work/files" || { echo "FAIL: a shell in the image"; exit 1; }

if out=$(podman run --rm "$tag" --version 2>&1); then
  echo "ok: ipsnat runs in the image: $out"
else
  skipped+=("running a container: $(tail -1 <<<"$out")")
fi

# The full recipe needs docker.io/library/debian:12 (pulled) for its build stage.
if podman image exists docker.io/library/debian:12 || podman pull -q docker.io/library/debian:12 >/dev/null 2>&1; then
  podman build -q -f "$src/deploy/Containerfile" -t "$tag-full" "$src" >"$work/full.log" 2>&1 ||
    { tail -20 "$work/full.log"; echo "FAIL: deploy/Containerfile does not build"; exit 1; }
  echo "ok: deploy/Containerfile builds"
else
  skipped+=("deploy/Containerfile: docker.io/library/debian:12 cannot be pulled (no registry access)")
fi
for s in "${skipped[@]}"; do echo "not checked: $s"; done
((${#skipped[@]} == 0)) || { echo "SKIP: partly checked (above)"; exit 77; }
