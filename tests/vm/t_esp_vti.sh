#!/bin/bash
# vm-cost: 40
# shellcheck source-path=SCRIPTDIR
# Route-based ESP through a VTI (vti0, key from the profile; policies marked
# with it) on gw; the company side is policy-based. Seed and alternative addresses.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
require_esp
route_based seed vti vti0
route_based alt vti vti0
finish
