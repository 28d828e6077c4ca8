#!/bin/bash
# vm-cost: 120
# shellcheck source-path=SCRIPTDIR
# The product on a route-based tunnel: a VTI (vti0, ikey = okey from the profile; its
# policies carry the key as mark) at its default MTU. `ipsnat attach vti0` must make the LAN reach the
# company host through it and `ipsnat detach vti0` put the gateway back.
# Seed addresses: ping, TCP both ways (the upload needs PMTU discovery through the
# translation: the device's "fragmentation needed" is raised after the NAT), UDP,
# NAPT, a port-forward, then all of it again behind a stateful nftables firewall on gw.
# Before that, the NAT address is made a local address of gw for a while (strongSwan's virtual
# IP): the device's "fragmentation needed" then arrives over lo and must still reach the LAN
# host (natlib.sh nat_check_local_nat_pmtu).
# The seed's second rule (iptables-nft `-o eth0 -j SNAT --to-source` the public address) is added
# after attach: the LAN still reaches the internet as that address. The company side probes the
# LAN and gw through the SA (no door).
# Checks per run: natlib.sh route_nat.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

route_nat seed vti vti0 1 1 iptables-nft-snat after
# Other prefixes, SPIs and key (ping, leaks, detach): IPSNAT_VM_ALT=1; not in CI, for time (the
# policy-based IKE scenario t_ike runs the alternative profile).
if [[ ${IPSNAT_VM_ALT:-0} == 1 ]]; then route_nat alt vti vti0 0; fi
finish
