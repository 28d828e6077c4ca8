#!/bin/bash
# The README's demo, with the seed addresses and with other prefixes: the kernel's xfrm lookup
# sees the translated flow and the transit sees no cleartext (the demo exits non-zero otherwise).
source "$(dirname "$0")/lib.sh"
t_require_bpffs
for profile in seed alt; do
  expect_ok "demo-lab $profile" env IPSNAT="$IPSNAT" bash "$IPSNAT_SRC/scripts/demo-lab.sh" "$profile"
done
finish
