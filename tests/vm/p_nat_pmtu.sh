#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# PMTU through the translation: the tunnel device (or the uplink) keeps its
# default MTU, so full-size TCP segments from the LAN do not fit into ESP. The
# "fragmentation needed" error must reach the LAN host (which then lowers its
# path MTU: `ip route get` shows it) and the bulk transfer must complete, both
# ways. DESIGN-NOTES §1: an xfrm interface raises the error after the NAT,
# addressed to the NAT address; policy mode relies on the LWT route's MTU.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

pmtu_case() {
  local what=$1 dev=$2
  lab_profile seed
  step "$what: default MTU, bulk TCP from the LAN"
  lab_up
  case $what in
    xfrmi) lab_esp_xfrmi "$dev" ;;
    vti) lab_esp_vti "$dev" ;;
    policy) lab_esp_policy_tunnel ;;
  esac
  lab_capture_start transit
  expect_ok "ipsnat attach $dev" ipsnat_gw attach "$dev"
  nat_check_ping lanhost
  # Full-size ping with DF: the first ones die with frag-needed, which must come back.
  lab_exec lanhost timeout 20 ping -n -q -c 3 -i 0.3 -W 1 -M do -s 1472 "$LAB_CHOST_IP" >/dev/null 2>&1 || true
  nat_check_tcp lanhost 2 5101
  local pmtu
  pmtu=$(lab_exec lanhost ip route get "$LAB_CHOST_IP" | sed -n 's/.* mtu \([0-9]*\).*/\1/p' | head -1)
  expect_gt "lanhost learned a path MTU below 1500 (got '${pmtu:-none}')" "$((1500 - ${pmtu:-1500}))" 0
  lab_capture_stop transit >/dev/null
  expect_no_leak "$what: no cleartext on transit" transit
  ((FAILS == 0)) || nat_diag
  ipsnat_gw detach "$dev" || true
  lab_down
}

pmtu_case xfrmi ipsec0
pmtu_case policy eth0
finish
