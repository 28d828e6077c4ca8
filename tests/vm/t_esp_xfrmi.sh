#!/bin/bash
# vm-cost: 40
# shellcheck source-path=SCRIPTDIR
# Route-based ESP through an xfrm interface (ipsec0, if_id from the profile) on
# gw; the company side is policy-based. Seed and alternative addresses.
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"
require_esp
route_based seed xfrmi ipsec0
route_based alt xfrmi ipsec0
finish
