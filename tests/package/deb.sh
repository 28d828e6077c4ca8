#!/bin/bash
# `cpack -G DEB` builds the package, inspected without installing it: dpkg-deb -c (the binary,
# ipsnat(8), both completions, the systemd unit, the docs; nothing of the tests), its control
# fields (dpkg-deb -f: every shared library the packaged binary links, per readelf and dpkg -S,
# is in Depends), and the extracted files work: the binary runs, the man page renders, systemd
# accepts the unit and the unit's check command passes on the shipped example configuration.
# Usage: deb.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d /tmp/ipsnat-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what" >&2; failed=1; fi
}

cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; exit 1; }
debs=("$tmp"/out/ipsnat_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || { echo "FAIL: no single .deb in $tmp/out" >&2; exit 1; }
deb=${debs[0]}
echo "package: ${deb##*/}"

files=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | grep -v '/$')
echo "$files"
expected="./usr/lib/systemd/system/ipsnat.service
./usr/sbin/ipsnat
./usr/share/bash-completion/completions/ipsnat
./usr/share/doc/ipsnat/config.md
./usr/share/doc/ipsnat/ipsnat.toml.example
./usr/share/doc/ipsnat/operations.md
./usr/share/man/man8/ipsnat.8.gz
./usr/share/zsh/vendor-completions/_ipsnat"
check "exactly the expected files" test "$(sort <<<"$files")" == "$expected"

field() { dpkg-deb -f "$deb" "$1"; }
check "Package ipsnat, Architecture $(dpkg --print-architecture)" \
  test "$(field Package) $(field Architecture)" == "ipsnat $(dpkg --print-architecture)"
check "Version from the project ($(field Version))" grep -q "^ipsnat $(field Version)\$" <<<"$("$build/loader/ipsnat" --version)"
depends=$(field Depends)
echo "Depends: $depends"
depend_names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/(.*//; s/ //g')
dpkg-deb -x "$deb" "$tmp/root"
for lib in $(readelf -d "$tmp/root/usr/sbin/ipsnat" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1)
  [[ -n $pkg ]] || { check "$lib belongs to a package" false; continue; }
  names="$pkg $(dpkg-query -W -f='${Provides}' "$pkg" | tr -d ',' | sed 's/([^)]*)//g')"
  found=0
  for n in $names; do grep -qxF -- "$n" <<<"$depend_names" && found=1; done
  check "Depends names $lib's package ($pkg)" test $found == 1
done

check "the packaged binary runs" "$tmp/root/usr/sbin/ipsnat" --version
check "the packaged binary is stripped" bash -c "! readelf -S '$tmp/root/usr/sbin/ipsnat' | grep -q '\.debug_info'"
check "the packaged man page renders without warnings" \
  bash -c "[[ -z \$(man --warnings -l '$tmp/root/usr/share/man/man8/ipsnat.8.gz' 2>&1 >/dev/null) ]]"
check "the packaged bash completion is valid bash" bash -n "$tmp/root/usr/share/bash-completion/completions/ipsnat"
unit=$tmp/root/usr/lib/systemd/system/ipsnat.service
check "the unit runs /usr/sbin/ipsnat run --config /etc/ipsnat/ipsnat.toml" \
  grep -qx 'ExecStart=/usr/sbin/ipsnat run --config /etc/ipsnat/ipsnat.toml' "$unit"
# systemd's own parser, on the unit pointing at the extracted binary.
mkdir "$tmp/unit"
sed "s|/usr/sbin/ipsnat|$tmp/root/usr/sbin/ipsnat|g" "$unit" >"$tmp/unit/ipsnat.service"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify --man=no "$tmp/unit/ipsnat.service" 2>&1) || true
  check "systemd-analyze verify accepts the unit ($out)" test -z "$out"
else
  echo "skip: no systemd-analyze"
fi
# ExecStartPre/ExecReload's command on the configuration the package ships as an example.
check "the unit's --check-config passes on the shipped example" \
  "$tmp/root/usr/sbin/ipsnat" run --config "$tmp/root/usr/share/doc/ipsnat/ipsnat.toml.example" --check-config
exit $failed
