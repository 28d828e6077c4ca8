#!/bin/bash
# vm-cost: 70
# shellcheck source-path=SCRIPTDIR
# Policy mode on a dual-stack gateway whose rule for everything else is written for both families
# in one nftables `table inet` (natlib.sh nat_gw_masquerade nft-inet-snat: SNAT to the uplink's
# IPv4 and IPv6 address). netfilter rewrites a LAN packet's source to the uplink's address in
# POSTROUTING, before ipsnat's LWT hook, for either family: NAT66 must take it to the IPv6
# policy's address (the inside set's NPT6_KIND_LOCAL entries), as NAPT does for IPv4, and the
# reply, translated back to the uplink's address and port, must reach the LAN host through
# netfilter's de-NAT. Real ESP: one SA pair over the IPv4 peers carries both inner families (flag
# af-unspec), out-policies NAT_IP/32 and NAT_IP6/128 to the company's networks as strongSwan
# installs them for two virtual IPs. The only ipsnat command is `ipsnat attach eth0`.
# Checks: with the rule and without ipsnat the LAN misses the policies; after attach ping, 20 UDP
# echoes and 1 MiB TCP each way per family, the company host sees only the two policy addresses;
# nothing unsolicited arrives through the SA (nat_check_no_door); ESP both ways and no cleartext
# of either family on transit; detach restores gw.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

lab_profile "${NAT_INET_PROFILE:-seed}"
lab_up
lab_ipv6_up
lab_ipv6_company_up
LAB_SA_FLAGS=af-unspec lab_esp_policy_tunnel
lab_esp_policy6
{ _lab_policies "$LAB_COMPANY6_NET" "$LAB_NAT_IP6/128" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
  echo "route add $LAB_NAT_IP6/128 dev eth0"; } | _lab_batch cgw
nat_gw_masquerade add nft-inet-snat
step "$LAB_PROFILE: policy mode beside nft's SNAT of both families (table inet); LAN $LAB_LAN_NET, $LAB_LAN6_NET -> $LAB_NAT_IP, $LAB_NAT_IP6"
before=$LAB_STATE/snap.before
nat_gw_snapshot >"$before"
# The leak detector is real: without ipsnat the LAN's packets leave SNATed, in cleartext.
lab_capture_start baseline
expect_fail "without ipsnat the LAN's IPv4 misses the policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP"
expect_fail "without ipsnat the LAN's IPv6 misses the policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP6"
lab_capture_stop baseline >/dev/null
expect_gt "... its IPv4 left in cleartext (the detector works)" "$(lab_capture_cleartext baseline)" 0
expect_gt "... its IPv6 left in cleartext (the detector works)" "$(lab_capture_cleartext6 baseline)" 0
lab_capture_start transit
lab_capture_start chost lan0 chost
expect_ok "ipsnat attach eth0" eval "ipsnat_gw attach eth0 2>&1 | sed 's/^/      /'"
dual_check_family "$LAB_CHOST_IP6" "$LAB_NAT_IP6" 5801
nat_check_ping lanhost
nat_check_udp lanhost 5811 "$LAB_CHOST_IP" "$LAB_NAT_IP"
nat_check_no_door
nat_check_no_door 6
lab_capture_stop chost >/dev/null
dual_chost_sources_check chost
step "$LAB_PROFILE: detach"
((FAILS == 0)) || nat_diag
expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
nat_expect_restored "gateway as before attach (the nft rule included)" "$before"
lab_capture_stop transit >/dev/null
expect_esp_both_ways "policy mode beside nft's inet SNAT" transit
expect_no_leak "no IPv4 cleartext on transit while attached" transit
expect_no_leak6 "no IPv6 cleartext on transit while attached" transit
nat_gw_masquerade del nft-inet-snat
lab_down
finish
