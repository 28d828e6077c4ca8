#!/bin/bash
# vm-cost: 60
# shellcheck source-path=SCRIPTDIR
# IPv6 on a VTI with real ESP: vti0 (ikey = okey = LAB_VTI_KEY) whose SA pair carries both inner
# families over the IPv4 peers (flag af-unspec), an IPv4 and an IPv6 out-policy with the VTI's key
# as mark (as strongSwan's mark_out), the company's networks of both families routed into vti0, a
# dual-stack LAN; the company side is policy-based (cgw). The only ipsnat command is
# `ipsnat attach vti0`. NAT66: the IPv6 policy's source is one address (LAB_NAT_IP6/128): ping, 20
# UDP echoes, 1 MiB TCP each way reach the company host, which sees only the two policy addresses;
# the company side's IPv6 probes through the SA reach neither the LAN nor gw. Without ipsnat the
# LAN's IPv6 misses the policy (vti0 drops it); detach restores gw; ESP both ways and no cleartext
# of either family on transit. The NAT66 rule is kept for the VTI's okey (maps/npt6.h), and
# vti_xmit's own lookup (flow mark = okey) must find the policy with the translated source; the
# netns tier's t_attach_vti_ipv6.sh tells a VTI's rules from an uplink's on one destination.
# Not in the default VM run (CI time): `tests/vm/vm-tier.sh nat_vti6`, or IPSNAT_VM_ALL=1.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

# vti6_lab: the lab, dual stack, vti0 with af-unspec SAs and the IPv4 policies (lab_esp_vti), the
# company's IPv6 network routed into vti0, gw's IPv6 policies with the VTI's mark (cgw mirrors them
# and routes the NAT66 address into its SA).
vti6_lab() {
  lab_up
  lab_ipv6_up
  lab_ipv6_company_up
  LAB_SA_FLAGS=af-unspec lab_esp_vti vti0
  _lab_ip gw route add "$LAB_COMPANY6_NET" dev vti0
  _lab_policies "$LAB_NAT_IP6/128" "$LAB_COMPANY6_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP" \
    mark "$LAB_VTI_KEY" mask 0xffffffff | _lab_batch gw
  { _lab_policies "$LAB_COMPANY6_NET" "$LAB_NAT_IP6/128" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
    echo "route add $LAB_NAT_IP6/128 dev eth0"; } | _lab_batch cgw
}

lab_profile "${NAT_VTI6_PROFILE:-seed}"
vti6_lab
lab_capture_start transit
step "$LAB_PROFILE: NAT66 on vti0 (okey $LAB_VTI_KEY), LAN $LAB_LAN6_NET -> $LAB_COMPANY6_NET as $LAB_NAT_IP6"
before=$LAB_STATE/snap.before
nat_gw_snapshot >"$before"
lab_capture_start chost lan0 chost
expect_fail "without ipsnat the LAN's IPv6 misses the policy (ping fails)" lab_ping lanhost "$LAB_CHOST_IP6"
expect_ok "ipsnat attach vti0" eval "ipsnat_gw attach vti0 2>&1 | sed 's/^/      /'"
nat_check_ping lanhost
dual_check_family "$LAB_CHOST_IP6" "$LAB_NAT_IP6" 5701
nat_check_no_door 6
lab_capture_stop chost >/dev/null
dual_chost_sources_check chost
step "$LAB_PROFILE: NAT66 on vti0: detach"
((FAILS == 0)) || nat_diag
expect_ok "ipsnat detach vti0" ipsnat_gw detach vti0
nat_expect_restored "gateway as before attach" "$before"
expect_fail "after detach the LAN's IPv6 misses the policy again" lab_ping lanhost "$LAB_CHOST_IP6"
lab_capture_stop transit >/dev/null
expect_esp_both_ways "vti dual stack" transit
expect_no_leak "no IPv4 cleartext on transit during the whole run" transit
expect_no_leak6 "no IPv6 cleartext on transit during the whole run" transit
lab_down
finish
