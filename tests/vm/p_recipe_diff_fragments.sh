#!/bin/bash
# vm-cost: 80
# shellcheck source-path=SCRIPTDIR
# Pending (run-all.sh runs p_*.sh only with IPSNAT_VM_PENDING=1): t_recipe_diff with every check
# strict. It fails while phase I (nft masquerade beside `ipsnat attach eth0`) loses large UDP
# datagrams to the company host: netfilter applies the masquerade binding again to the fragments
# that ipsnat's LWT reroute sends through POSTROUTING a second time, and writes a later
# fragment's payload as a UDP header (docs/datapath.md, "Not handled").
export IPSNAT_DIFF_STRICT=1
# shellcheck source=t_recipe_diff.sh
source "$(dirname "$0")/t_recipe_diff.sh"
