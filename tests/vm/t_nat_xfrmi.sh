#!/bin/bash
# vm-cost: 120
# shellcheck source-path=SCRIPTDIR
# The product on a route-based tunnel: an xfrm interface (ipsec0, if_id from the
# profile) at its default MTU. `ipsnat attach ipsec0` must make the LAN reach the
# company host through it and `ipsnat detach ipsec0` put the gateway back.
# Seed addresses: ping, TCP both ways (the upload needs PMTU discovery through the
# translation: the device's "fragmentation needed" is raised after the NAT), UDP,
# NAPT, a port-forward, then all of it again behind a stateful nftables firewall on gw.
# Before that, the NAT address is made a local address of gw for a while (strongSwan's virtual
# IP): the device's "fragmentation needed" then arrives over lo and must still reach the LAN
# host (natlib.sh nat_check_local_nat_pmtu).
# The LAN is on a bridge on gw (br-lan, lan0 its port) with a second prefix, next to the uplink
# eth0; attach is given only ipsec0 (no --inside), so it must find the LAN prefixes itself: both
# are translated, never the uplink's. The seed's second rule is there before attach, in
# iptables-legacy form (`-o eth0 -j SNAT --to-source` the public address): the LAN still reaches
# the internet as that address. The company side probes the LAN and gw through the SA (no door).
# Checks per run: natlib.sh route_nat.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed xfrmi ipsec0 1 1 iptables-legacy-snat before 1
# Other prefixes, SPIs and if_id (ping, leaks, detach): IPSNAT_VM_ALT=1; not in CI, for time (the
# policy-based IKE scenario t_ike runs the alternative profile).
if [[ ${IPSNAT_VM_ALT:-0} == 1 ]]; then route_nat alt xfrmi ipsec0 0; fi
finish
