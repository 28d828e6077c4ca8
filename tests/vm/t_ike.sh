#!/bin/bash
# vm-cost: 140
# shellcheck source-path=SCRIPTDIR
# The product under a real IKE daemon (issue 4): strongSwan's charon on both
# gateways (scripts/vm/ike.sh), IKEv2 with PSK, the company gateway handing out
# LAB_NAT_IP from a one-address pool, gw asking for a virtual IP; charon
# installs the policies, the virtual IP on eth0 and table 220. The only ipsnat
# command is `ipsnat attach eth0`. Checks: LAN ping and 1 MiB TCP both ways
# (sha256) to the company host, which sees only the NAT address; gw's own
# traffic (source = the virtual IP through table 220) still works; ESP both
# ways and zero cleartext on transit; detach restores gw exactly.
# The seed profile runs in t_demo.sh (the demo is this scenario with the seed
# addresses and plain ESP, asserted on its output); here the other prefixes
# (IKE_PROFILES) with NAT-T forced on both sides (IKE_ENCAP=yes, swanctl's
# `encap = yes`): IKE and ESP in UDP 4500, as behind a homeworker's NAT router, so the
# replies reach TC ingress decrypted from the UDP-encapsulation path.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
IKE_ENCAP=${IKE_ENCAP:-yes}
# shellcheck source=../../scripts/vm/ike.sh
source "$REPO_ROOT/scripts/vm/ike.sh"
nat_require
ike_supported || skip "strongSwan's charon/swanctl not installed (scripts/install-deps.sh)"

ike_nat() {
  local prof=$1 before
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: strongSwan IKEv2, gw asks cgw for a virtual IP; LAN $LAB_LAN_NET -> $LAB_COMPANY_NET"
  lab_up
  if ! ike_up; then fail "IKE tunnel established"; ike_diag | sed 's/^/      /'; lab_down; return; fi
  ok "IKE tunnel established"
  expect_ok "charon put the virtual IP $LAB_NAT_IP on gw's eth0" \
    eval "_lab_ip gw -o addr show dev eth0 | grep -q ' $LAB_NAT_IP/32 '"
  expect_ok "charon installed out $LAB_NAT_IP/32 -> $LAB_COMPANY_NET" \
    eval "_lab_ip gw xfrm policy show dir out src $LAB_NAT_IP/32 dst $LAB_COMPANY_NET | grep -q tmpl"

  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start transit to-gw
  lab_capture_start chost lan0 chost
  expect_ok "ipsnat attach eth0" ipsnat_gw attach eth0
  nat_check_ping lanhost
  expect_ok "gw's own traffic still works (source $LAB_NAT_IP via table 220)" lab_ping gw "$LAB_CHOST_IP"
  ((FAILS == FAILS_BEFORE)) && nat_check_tcp lanhost 1 5001
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost

  step "$prof: detach"
  ((FAILS == FAILS_BEFORE)) || { nat_diag; ike_diag | sed 's/^/      /'; }
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  nat_expect_restored "gateway as charon left it before attach" "$before"
  lab_capture_stop transit >/dev/null
  if [[ $IKE_ENCAP == yes ]]; then expect_natt_both_ways "strongSwan NAT-T" transit
  else expect_esp_both_ways "strongSwan" transit; fi
  expect_no_leak "strongSwan: no cleartext on transit while attached" transit
  lab_down
}

for p in ${IKE_PROFILES:-alt}; do ike_nat "$p"; done
finish
