#!/bin/bash
# vm-cost: 90
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
# The seed gateway's rule for everything else, iptables-legacy `-o eth0 -j MASQUERADE`, is added
# after attach (after gw's own check: it would rewrite gw's own virtual-IP traffic, which is not
# ipsnat's); the LAN reaches the company host translated and the internet as the public address.
# The company side probes the LAN and gw through charon's SA (natlib.sh nat_check_no_door).
# Before that, the SA's MTU is put below the route's (nat_check_sa_mtu): the kernel's
# "fragmentation needed" for a translated packet must reach the LAN host.
# Then IKE starts over under a steady UDP flow (one 5-tuple, a datagram every 0.2 s): gw
# terminates the IKE_SA and initiates it again, the new CHILD_SA has another reqid (the old one
# + 56, ike.sh ike_reestablish), and the flow must keep getting answers, none of it in cleartext.
# Last, ipsnat attached before charon starts (ike_after_attach): its routes move behind rule 210
# when charon's rule 220 comes.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
IKE_ENCAP=${IKE_ENCAP:-yes}
# shellcheck source=../../scripts/vm/ike.sh
source "$REPO_ROOT/scripts/vm/ike.sh"
nat_require
ike_supported || skip "strongSwan's charon/swanctl not installed (scripts/install-deps.sh)"

# ike_flow_across_reestablish: a steady UDP flow from lanhost while IKE is re-established.
ike_flow_across_reestablish() {
  local old new up got i
  step "IKE re-established under a steady UDP flow"
  nat_udp_server 5301 "$LAB_STATE/flow.peers"
  nat_udp_flow_start lanhost 5301 40300
  for ((i = 0; i < 100; i++)); do [[ -s $LAB_STATE/flow.times ]] && break; _lab_sleep 0.2; done
  _lab_sleep 1
  old=$(ike_gw_reqid)
  if ike_reestablish "$((old + 56))"; then ok "gw terminated and initiated the IKE_SA again"
  else fail "IKE re-established"; ike_diag | sed 's/^/      /'; fi
  up=$EPOCHREALTIME
  lab_capture_start rekeyed to-gw
  _lab_sleep 6
  nat_udp_flow_stop
  nat_udp_server_stop
  lab_capture_stop rekeyed >/dev/null
  expect_no_leak "after IKE started over: no cleartext on transit" rekeyed
  new=$(ike_gw_reqid)
  expect_ok "the new CHILD_SA has another reqid ($old -> $new)" test -n "$old" -a -n "$new" -a "$old" != "$new"
  got=$(nat_udp_flow_answers_after "$up")
  expect_gt "the steady flow was answered before the re-establishment" \
    "$(($(wc -l <"$LAB_STATE/flow.times") - got))" 0
  expect_gt "the steady flow is answered after the re-establishment (in 6 s)" "$got" 0
}

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
  nat_check_sa_mtu lanhost
  nat_gw_masquerade add iptables-legacy-masquerade
  nat_check_ping lanhost
  nat_check_internet lanhost
  ((FAILS == FAILS_BEFORE)) && nat_check_tcp lanhost 1 5001
  nat_check_no_door
  nat_gw_masquerade del iptables-legacy-masquerade
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost
  # The transit is judged up to here: while IKE starts over no policy covers the company
  # network, and the LAN's packets go where they would without ipsnat.
  lab_capture_stop transit >/dev/null
  ike_flow_across_reestablish

  step "$prof: detach"
  ((FAILS == FAILS_BEFORE)) || { nat_diag; ike_diag | sed 's/^/      /'; }
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  # charon renewed its policies' templates (SPI, reqid) when IKE started over.
  nat_expect_restored "gateway as charon left it before attach" "$before" 's/( spi 0x[0-9a-f]+)? reqid [0-9]+ / reqid (charon) /'
  if [[ $IKE_ENCAP == yes ]]; then expect_natt_both_ways "strongSwan NAT-T" transit
  else expect_esp_both_ways "strongSwan" transit; fi
  expect_no_leak "strongSwan: no cleartext on transit while attached" transit
  lab_down
}

# ike_after_attach PROFILE: ipsnat attached before charon starts (a gateway whose IPsec comes up
# after it, e.g. at boot): no policy and no routing rule yet. charon then adds its rule 220, the
# policies, the virtual IP and table 220's route; ipsnat's host process re-plans on them and puts
# the LWT route behind rule 210 in table 421 (docs/attach.md "Where the routes go": ahead of
# table 220, whose route would send the LAN's flow untranslated). The LAN's ping reaches the
# company host as the virtual IP, nothing in cleartext.
ike_after_attach() {
  local prof=$1 i rules=
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: ipsnat attach eth0 before charon starts"
  lab_up
  expect_ok "ipsnat attach eth0 --allow-empty (no policy, no rule yet)" ipsnat_gw attach eth0 --allow-empty
  if ! ike_up; then fail "IKE tunnel established after attach"; ike_diag | sed 's/^/      /'; lab_down; return; fi
  ok "IKE tunnel established after attach"
  for ((i = 0; i < 100; i++)); do
    rules=$(_lab_ip gw rule show)
    [[ $rules == *"lookup 421"* && $(_lab_ip gw route show table 421 proto 165) == *lwt_snat_xmit* ]] && break
    _lab_sleep 0.2
  done
  expect_ok "the host process put the LWT route in table 421 behind rule 210, ahead of charon's 220" \
    bash -c '[[ $1 == *"210:"*"lookup 421"*"220:"* ]]' _ "$rules"
  expect_eq "no LWT route left in the main table" "$(_lab_ip gw route show table main proto 165)" ""
  lab_capture_start transit to-gw
  lab_capture_start chost lan0 chost
  nat_check_ping lanhost
  lab_capture_stop chost >/dev/null
  lab_capture_stop transit >/dev/null
  nat_chost_capture_check chost
  expect_no_leak "IKE after attach: no cleartext on transit" transit
  ((FAILS == FAILS_BEFORE)) || { nat_diag; ike_diag | sed 's/^/      /'; }
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  lab_down
}

profiles=${IKE_PROFILES:-alt}
for p in $profiles; do ike_nat "$p"; done
ike_after_attach "${profiles%% *}"
finish
