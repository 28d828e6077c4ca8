#!/bin/bash
# Pending: the policy-based scenario with the two-LAN-host NAPT checks (see nat_check_napt).
NAT_NAPT=1 exec bash "$(dirname "$0")/t_nat_policy.sh"
