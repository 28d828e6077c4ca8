# shellcheck shell=bash source-path=SCRIPTDIR
# common.sh: sourced by every tests/vm/t_*.sh scenario. Loads the lab library,
# removes the lab on any exit, and gives small assertions whose messages say
# what was expected, so a failing scenario explains itself in the CI log.
# Exit codes of a scenario: 0 pass, 77 skip, anything else fail.

set -eEuo pipefail
# set -e ends a test at an unexpected failing command: name it, or the log just stops.
# (Only the top shell: failures inside $(...) are the caller's to judge.)
trap '_err_rc=$?; ((BASH_SUBSHELL)) || echo "   error: \"$BASH_COMMAND\" exited $_err_rc (${BASH_SOURCE[0]##*/}:$LINENO)" >&2' ERR
# (Parameter expansion, not dirname/realpath: every exec costs ~0.3 s under TCG.)
VM_TESTS_DIR=${BASH_SOURCE[0]%/*}
[[ $VM_TESTS_DIR != "${BASH_SOURCE[0]}" ]] || VM_TESTS_DIR=.
[[ $VM_TESTS_DIR == /* ]] || VM_TESTS_DIR=$PWD/$VM_TESTS_DIR
REPO_ROOT=$VM_TESTS_DIR/../..
# shellcheck source=../../scripts/lab/lab.sh
source "$REPO_ROOT/scripts/lab/lab.sh"
trap lab_down EXIT

# shellcheck source=../../scripts/lab/assert.sh
source "$REPO_ROOT/scripts/lab/assert.sh"

# expect_no_leak DESC CAPTURE: zero cleartext private-address packets on transit.
expect_no_leak() {
  local n
  n=$(lab_capture_cleartext "$2")
  expect_eq "$1" "$n" 0
  ((n == 0)) || lab_capture_show "$2" "$(lab_cleartext_filter)" | head -20 | sed 's/^/      /'
}

# expect_no_leak6 DESC CAPTURE: the same for IPv6 (the company's and the LAN's IPv6 prefixes).
expect_no_leak6() {
  local n
  n=$(lab_capture_cleartext6 "$2")
  expect_eq "$1" "$n" 0
  ((n == 0)) || lab_capture_show "$2" "$(lab_cleartext6_filter)" | head -20 | sed 's/^/      /'
}

# expect_esp_both_ways DESC CAPTURE: ESP seen gw->cgw and cgw->gw on transit (lab_capture_seen:
# the first packet each way is enough, where counting a bulk transfer's costs ~20 s under TCG).
expect_esp_both_ways() {
  expect_gt "$1: ESP gw->cgw" "$(lab_capture_seen "$2" "esp and src host $LAB_GW_WAN_IP and dst host $LAB_CGW_WAN_IP")" 0
  expect_gt "$1: ESP cgw->gw" "$(lab_capture_seen "$2" "esp and src host $LAB_CGW_WAN_IP and dst host $LAB_GW_WAN_IP")" 0
}

# expect_natt_both_ways DESC CAPTURE: ESP in UDP 4500 both ways on transit (seen, as above), and
# no plain ESP.
expect_natt_both_ways() {
  local natt="udp and port 4500 and src host"
  expect_gt "$1: UDP 4500 gw->cgw" "$(lab_capture_seen "$2" "$natt $LAB_GW_WAN_IP and dst host $LAB_CGW_WAN_IP")" 0
  expect_gt "$1: UDP 4500 cgw->gw" "$(lab_capture_seen "$2" "$natt $LAB_CGW_WAN_IP and dst host $LAB_GW_WAN_IP")" 0
  expect_eq "$1: no plain ESP" "$(lab_capture_esp "$2")" 0
}

# In the VM a missing ESP is a failure (the harness must provide it), so no
# probe there; elsewhere (a host kernel) the scenarios skip.
# gw_dev_up DEV: DEV exists on gw with the UP flag.
gw_dev_up() { local o; o=$(_lab_ip gw -o link show dev "$1") && [[ $o == *[\<,]UP[,\>]* ]]; }

require_esp() {
  [[ ${IPSNAT_IN_VM:-} == 1 ]] || lab_esp_supported || skip "kernel has no ESP/GCM (run through tests/vm/vm-tier.sh)"
}

# route_based PROFILE KIND DEV: the gateway-own-address scenario through a tunnel
# device (KIND xfrmi|vti, set up by lab_esp_KIND DEV). Checks: ping works, ESP
# both ways, no leak; then with the out-policy gone, and with the SAs gone, the
# device drops instead of sending cleartext.
route_based() {
  local prof=$1 kind=$2 dev=$3 sel
  lab_profile "$prof"
  step "$prof: $kind $dev; gw owns $LAB_NAT_IP"
  lab_up
  lab_gw_addr_add "$LAB_NAT_IP"
  "lab_esp_$kind" "$dev"
  expect_ok "$dev is up" gw_dev_up "$dev"
  lab_capture_start esp
  expect_ok "gw ($LAB_NAT_IP) pings $LAB_CHOST_IP via $dev" lab_ping gw "$LAB_CHOST_IP" -I "$LAB_NAT_IP"
  lab_capture_stop esp >/dev/null
  expect_esp_both_ways "$kind" esp
  expect_no_leak "$kind: no cleartext on transit" esp

  step "$prof: $kind without its out-policy"
  case $kind in
    xfrmi) sel=(if_id "$LAB_IF_ID") ;;
    vti) sel=(mark "$LAB_VTI_KEY" mask 0xffffffff) ;;
  esac
  _lab_ip gw xfrm policy del src "$LAB_NAT_IP/32" dst "$LAB_COMPANY_NET" dir out "${sel[@]}"
  lab_capture_start nopol
  expect_fail "$kind: no policy, ping fails" lab_ping gw "$LAB_CHOST_IP" -I "$LAB_NAT_IP"
  lab_capture_stop nopol >/dev/null
  expect_no_leak "$kind: no policy, no cleartext" nopol

  step "$prof: $kind with policies but no SAs"
  _lab_ip gw xfrm policy add src "$LAB_NAT_IP/32" dst "$LAB_COMPANY_NET" dir out "${sel[@]}" \
    tmpl src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp reqid "$LAB_REQID" mode tunnel
  _lab_ip gw xfrm state flush
  lab_capture_start nosa
  expect_fail "$kind: no SA, ping fails" lab_ping gw "$LAB_CHOST_IP" -I "$LAB_NAT_IP"
  lab_capture_stop nosa >/dev/null
  expect_eq "$kind: no SA, nothing sent as ESP" "$(lab_capture_esp nosa)" 0
  expect_no_leak "$kind: no SA, no cleartext" nosa
  lab_down
}
