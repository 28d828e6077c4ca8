#!/bin/bash
# vm-cost: 90
# shellcheck source-path=SCRIPTDIR
# Dual stack under a real IKE daemon (issue 13): strongSwan's charon on both gateways
# (scripts/vm/ike.sh, IKE_IPV6=yes), IKE and ESP between the gateways' IPv4 addresses, cgw
# handing out a virtual IPv4 (LAB_NAT_IP) and a virtual IPv6 address (LAB_NAT_IP6) from two
# one-address pools, gw asking for both (`vips = 0.0.0.0, ::`); one CHILD_SA whose traffic
# selectors name the company's IPv4 and IPv6 networks, so charon installs an out-policy per
# family on the same SA pair. The LAN and the company network are dual stack (lab_ipv6_up,
# lab_ipv6_company_up); the other prefixes (IKE_PROFILES, default alt), plain ESP (t_ike runs
# NAT-T). The only ipsnat command is `ipsnat attach eth0`.
# Checks, per family: without ipsnat the LAN misses the policy; after attach the LAN host's
# ping, 20 UDP echoes and 1 MiB TCP each way (sha256) reach the company host, which sees only
# the two virtual addresses as sources; gw's own traffic still works; the company side's
# unsolicited probes through the SA reach neither the LAN nor gw (nat_check_no_door, both
# families); ESP both ways and zero cleartext of either family on transit; detach restores gw.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
IKE_IPV6=yes
# shellcheck source=../../scripts/vm/ike.sh
source "$REPO_ROOT/scripts/vm/ike.sh"
nat_require
ike_supported || skip "strongSwan's charon/swanctl not installed (scripts/install-deps.sh)"

ike_dual() {
  local prof=$1 before
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: strongSwan dual stack, gw asks for $LAB_NAT_IP and $LAB_NAT_IP6; LAN $LAB_LAN_NET, $LAB_LAN6_NET"
  lab_up
  lab_ipv6_up
  lab_ipv6_company_up
  if ! ike_up; then fail "IKE tunnel established"; ike_diag | sed 's/^/      /'; lab_down; return; fi
  ok "IKE tunnel established"
  expect_ok "charon put $LAB_NAT_IP and $LAB_NAT_IP6 on gw's eth0" eval \
    "_lab_ip gw -o addr show dev eth0 | grep -q ' $LAB_NAT_IP/32 ' && _lab_ip gw -o addr show dev eth0 | grep -q ' $LAB_NAT_IP6/128 '"
  expect_ok "charon installed out $LAB_NAT_IP6/128 -> $LAB_COMPANY6_NET" \
    eval "_lab_ip gw xfrm policy show dir out src $LAB_NAT_IP6/128 dst $LAB_COMPANY6_NET | grep -q tmpl"
  lab_transit_ndp_proxy "$LAB_CHOST_IP6"
  # The leak detectors are real: without ipsnat the LAN's packets of both families leave in cleartext.
  lab_capture_start baseline to-gw
  expect_fail "without ipsnat the LAN misses the IPv4 policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP"
  expect_fail "without ipsnat the LAN misses the IPv6 policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP6"
  lab_capture_stop baseline >/dev/null
  expect_gt "... its IPv4 left in cleartext (the detector works)" "$(lab_capture_cleartext baseline)" 0
  expect_gt "... its IPv6 left in cleartext (the detector works)" "$(lab_capture_cleartext6 baseline)" 0

  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start transit to-gw
  lab_capture_start chost lan0 chost
  expect_ok "ipsnat attach eth0" eval "ipsnat_gw attach eth0 2>&1 | sed 's/^/      /'"
  dual_check_family "$LAB_CHOST_IP" "$LAB_NAT_IP" 5401
  dual_check_family "$LAB_CHOST_IP6" "$LAB_NAT_IP6" 5411
  expect_ok "gw's own IPv4 traffic still works (source $LAB_NAT_IP via table 220)" lab_ping gw "$LAB_CHOST_IP"
  expect_ok "gw's own IPv6 traffic still works" lab_ping gw "$LAB_CHOST_IP6"
  nat_check_no_door
  nat_check_no_door 6
  lab_capture_stop chost >/dev/null
  dual_chost_sources_check chost
  lab_capture_stop transit >/dev/null

  step "$prof: detach"
  ((FAILS == FAILS_BEFORE)) || { nat_diag; ike_diag | sed 's/^/      /'; }
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  nat_expect_restored "gateway as charon left it before attach" "$before"
  expect_esp_both_ways "strongSwan dual stack" transit
  expect_no_leak "no IPv4 cleartext on transit while attached" transit
  expect_no_leak6 "no IPv6 cleartext on transit while attached" transit
  lab_down
}

for p in ${IKE_PROFILES:-alt}; do ike_dual "$p"; done
finish
