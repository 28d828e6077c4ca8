#!/bin/bash
# vm-cost: 410
# The policy-based scenario behind the gateway's stateful firewall: seed with every check, then
# the other prefixes (t_nat_policy.sh has the phases; this one runs in a VM of its own).
NAT_POLICY_PHASES="seed:1:1 alt:1:${NAT_ALT_FULL:-0}" exec bash "$(dirname "$0")/t_nat_policy.sh"
