#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# The product on a route-based tunnel: an xfrm interface (ipsec0, if_id from the
# profile) whose policies name the NAT address; `ipsnat attach ipsec0` must make
# the LAN reach the company host through it, and `ipsnat detach ipsec0` must put
# the gateway back as it was. Seed addresses with every check, then the
# alternative profile (other prefixes, SPIs, if_id) so nothing is hard-coded.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed xfrmi ipsec0 1
route_nat alt xfrmi ipsec0 "${NAT_ALT_FULL:-1}"
finish
