#!/bin/bash
# vm-cost: 380
# shellcheck source-path=SCRIPTDIR
# The product on a route-based tunnel: an xfrm interface (ipsec0, if_id from the
# profile) at its default MTU. `ipsnat attach ipsec0` must make the LAN reach the
# company host through it and `ipsnat detach ipsec0` put the gateway back.
# Seed addresses: ping, TCP both ways (the upload needs PMTU discovery through the
# translation: the device's "fragmentation needed" is raised after the NAT), UDP,
# NAPT, a port-forward, then all of it again behind a stateful nftables firewall on gw.
# Checks per run: natlib.sh route_nat.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed xfrmi ipsec0 1 1
# Other prefixes, SPIs and if_id (ping, leaks, detach): IPSNAT_VM_ALT=1; not in CI, for time (the
# policy-based IKE scenario t_ike runs the alternative profile).
if [[ ${IPSNAT_VM_ALT:-0} == 1 ]]; then route_nat alt xfrmi ipsec0 0; fi
finish
