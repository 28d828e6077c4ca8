#!/bin/bash
# The layer check (cmake/CheckLayers.cmake) on a copy of loader/: passes on the tree as it is, and
# fails, naming the file and the include, once a lower layer includes a higher one's header; a
# layer is made of whole folders.
set -euo pipefail
src=${1:?usage: check-layers.sh SOURCE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/loader" "$work/loader"
check() { cmake -DLOADER_DIR="$work/loader" -DSTAMP="$work/stamp" -P "$src/cmake/CheckLayers.cmake" 2>&1; }

check >/dev/null || { echo "FAIL: the check refuses the tree as it is:"; check; exit 1; }

# base (util) including the CLI (the top layer) must fail the check, with the file named.
echo '#include "cli/command.h"' >>"$work/loader/util/error.h"
rm -f "$work/stamp"
if out=$(check); then
  echo "FAIL: util/error.h including cli/command.h passed the check"; exit 1
fi
grep -q 'loader/util/error.h (base) includes "cli/command.h" (cli)' <<<"$out" ||
  { echo "FAIL: the message does not name the upward include:"; echo "$out"; exit 1; }
[[ ! -e $work/stamp ]] || { echo "FAIL: a failed check left its stamp"; exit 1; }

# A folder no layer names is refused too (a new folder must be placed in the order).
sed -i '$d' "$work/loader/util/error.h"
mkdir "$work/loader/orphan" && echo '#pragma once' >"$work/loader/orphan/x.h"
if out=$(check); then echo "FAIL: a folder in no layer passed the check"; exit 1; fi
grep -q 'loader/orphan/x.h: its folder is in no layer' <<<"$out" ||
  { echo "FAIL: the message does not name the folder:"; echo "$out"; exit 1; }
rm -rf "$work/loader/orphan"

# The folder a file lies in tells its layer: layers.txt placing one file (folder/stem) in another
# layer than its folder's is refused, and so is a folder two layers name.
cp "$work/loader/layers.txt" "$work/layers.txt"
sed -i 's|^pins .*|& sys/netdev|' "$work/loader/layers.txt"
if out=$(check); then echo "FAIL: a file placed outside its folder's layer passed the check"; exit 1; fi
grep -q 'layer pins names "sys/netdev", not a folder' <<<"$(tr -s ' \n' ' ' <<<"$out")" ||
  { echo "FAIL: the message does not name the entry:"; echo "$out"; exit 1; }
cp "$work/layers.txt" "$work/loader/layers.txt"
sed -i 's|^cli .*|& util|' "$work/loader/layers.txt"
if out=$(check); then echo "FAIL: a folder named by two layers passed the check"; exit 1; fi
grep -q 'folder util is named by two layers' <<<"$(tr -s ' \n' ' ' <<<"$out")" ||
  { echo "FAIL: the message does not name the folder:"; echo "$out"; exit 1; }
cp "$work/layers.txt" "$work/loader/layers.txt"

# A file's namespace follows its folder: mirror/ opening ipsnat::spd (where the mirror's code was
# before it got its own folder) is refused, naming the file; a one-line forward declaration of
# another folder's type is not.
check >/dev/null || { echo "FAIL: the restored tree fails the check"; check; exit 1; }
sed -i 's/^namespace ipsnat::mirror {$/namespace ipsnat::spd {/' "$work/loader/mirror/cover6.h"
if out=$(check); then echo "FAIL: mirror/cover6.h in namespace ipsnat::spd passed the check"; exit 1; fi
grep -q 'loader/mirror/cover6.h: namespace ipsnat::spd, not its folder.s ipsnat::mirror' <<<"$out" ||
  { echo "FAIL: the message does not name the namespace:"; echo "$out"; exit 1; }
sed -i 's/^namespace ipsnat::spd {$/namespace ipsnat::mirror {/' "$work/loader/mirror/cover6.h"
sed -i 's/^namespace ipsnat {$/namespace ipsnat::sys {/' "$work/loader/util/error.h"
if out=$(check); then echo "FAIL: util/error.h (a root-namespace folder) in ipsnat::sys passed"; exit 1; fi
grep -q 'loader/util/error.h: namespace ipsnat::sys, not its folder.s ipsnat$' <<<"$out" ||
  { echo "FAIL: the message does not name the namespace:"; echo "$out"; exit 1; }
sed -i 's/^namespace ipsnat::sys {$/namespace ipsnat {/' "$work/loader/util/error.h"
rm -f "$work/stamp"
check >/dev/null && [[ -e $work/stamp ]] || { echo "FAIL: the restored tree fails the check"; check; exit 1; }
echo "ok: the tree passes; an upward include, an unplaced folder, a file placed outside its folder's layer, a folder in two layers and a namespace other than the folder's fail"
