#!/bin/bash
# Pending: the policy-based scenario with the two-LAN-host NAPT checks and the port-forward
# check (see nat_check_napt, nat_check_forward in natlib.sh).
NAT_NAPT=1 exec bash "$(dirname "$0")/t_nat_policy.sh"
