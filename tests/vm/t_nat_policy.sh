#!/bin/bash
# vm-cost: 210
# shellcheck source-path=SCRIPTDIR
# The product on policy-based IPsec (strongSwan's default): manual-key SAs and
# policies on the uplink eth0 as an IKE daemon installs them (out NAT_IP/32 ->
# COMPANY_NET), `ipsnat attach eth0` (LWT routes + reverse ingress + leak guard +
# companion policies, a port-forward). Once plain, once behind a stateful nftables firewall on
# the gateway (natlib.sh nat_gw_firewall: established/related accept, invalid drop, forward drop
# except LAN -> WAN new and WAN -> the forwarded port), which must keep working since conntrack
# sees LAN addresses. Every check (natlib.sh nat_check_all) runs in both.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

# policy_nat PROFILE FIREWALL(0|1) FULL(0|1)
policy_nat() {
  local prof=$1 fw=$2 full=$3 before what=plain
  ((fw)) && what="stateful firewall"
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: policy-based on eth0 ($what), LAN $LAB_LAN_NET -> $LAB_COMPANY_NET as $LAB_NAT_IP"
  lab_up
  lab_esp_policy_tunnel
  ((fw)) && nat_gw_firewall eth0 8000

  # The leak detector is real: without ipsnat the LAN's packets leave in cleartext.
  lab_capture_start baseline
  lab_ping lanhost "$LAB_CHOST_IP" || true
  lab_capture_stop baseline >/dev/null
  expect_gt "without ipsnat, LAN traffic leaks in cleartext (detector works)" \
    "$(lab_capture_cleartext baseline)" 0

  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start transit
  lab_capture_start chost lan0 chost
  expect_ok "ipsnat attach eth0 --forward tcp:8080=$LAB_LANHOST_IP:8000" \
    ipsnat_gw attach eth0 --forward "tcp:8080=$LAB_LANHOST_IP:8000"
  nat_check_ping lanhost
  expect_ok "gw's own traffic still works (ping $LAB_CGW_WAN_IP)" lab_ping gw "$LAB_CGW_WAN_IP"
  if ((full && FAILS == FAILS_BEFORE)); then nat_check_all 2 5001; fi
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost

  step "$prof ($what): detach"
  ((FAILS == FAILS_BEFORE)) || nat_diag
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  nat_expect_restored "gateway as before attach" "$before"
  lab_capture_stop transit >/dev/null
  expect_esp_both_ways "policy ($what)" transit
  expect_no_leak "policy ($what): no cleartext on transit while attached" transit
  lab_down
}

# Phases PROFILE:FIREWALL:FULL. t_nat_policy_fw.sh runs the firewall ones, so that the two
# halves go to different VMs of the tier.
for phase in ${NAT_POLICY_PHASES:-seed:0:1}; do
  IFS=: read -r prof fw full <<<"$phase"
  policy_nat "$prof" "$fw" "$full"
done
finish
