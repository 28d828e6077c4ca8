#!/bin/bash
# vm-cost: 60
# The policy-based scenario behind the gateway's stateful firewall, seed addresses, every check
# (t_nat_policy.sh has the phases; this one runs in a VM of its own), with the seed's masquerade
# in native nftables form added after attach.
# The other prefixes behind the firewall with IPSNAT_VM_ALT=1 (not in CI, for time; t_ike runs
# the alternative profile on policy-based SAs).
phases="seed:1:1:nft-masquerade:after"
[[ ${IPSNAT_VM_ALT:-0} == 1 ]] && phases+=" alt:1:0"
NAT_POLICY_PHASES=$phases exec bash "$(dirname "$0")/t_nat_policy.sh"
