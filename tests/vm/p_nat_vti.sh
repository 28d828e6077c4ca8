#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# The product on a VTI (vti0, key from the profile; its policies carry the key
# as mark): the same checks as the xfrm interface (natlib.sh route_nat).
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed vti vti0 1
route_nat alt vti vti0 "${NAT_ALT_FULL:-0}"
finish
