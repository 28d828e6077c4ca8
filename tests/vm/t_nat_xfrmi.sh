#!/bin/bash
# vm-cost: 470
# shellcheck source-path=SCRIPTDIR
# The product on a route-based tunnel: an xfrm interface (ipsec0, if_id from the
# profile) at its default MTU. `ipsnat attach ipsec0` must make the LAN reach the
# company host through it and `ipsnat detach ipsec0` put the gateway back.
# Seed addresses: ping, TCP both ways (the upload needs PMTU discovery through the
# translation: the device's "fragmentation needed" is raised after the NAT), UDP,
# then ping and TCP again behind a stateful nftables firewall on gw; the
# alternative profile (other prefixes, SPIs, if_id) with ping only, so nothing is
# hard-coded. Checks per run: natlib.sh route_nat.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed xfrmi ipsec0 1 1
route_nat alt xfrmi ipsec0 "${NAT_ALT_FULL:-0}"
finish
