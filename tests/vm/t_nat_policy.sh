#!/bin/bash
# vm-cost: 250
# shellcheck source-path=SCRIPTDIR
# The product on policy-based IPsec (strongSwan's default): manual-key SAs and
# policies on the uplink eth0 as an IKE daemon installs them (out NAT_IP/32 ->
# COMPANY_NET), `ipsnat attach eth0` (LWT routes + reverse ingress + leak guard +
# companion policies, a port-forward). Once plain, once behind a stateful nftables firewall on
# the gateway (natlib.sh nat_gw_firewall: established/related accept, invalid drop, forward drop
# except LAN -> WAN new and WAN -> the forwarded port), which must keep working since conntrack
# sees LAN addresses. Every check (natlib.sh nat_check_all) runs in both.
# The seed gateway's rule for everything else is there too: plain, as ipsnat's own
# `attach eth0 --masquerade` with no netfilter rule at all (`nft list ruleset` empty); behind the
# firewall, nft `oifname eth0 masquerade` added after attach (natlib.sh nat_gw_masquerade;
# t_nat_xfrmi, t_nat_vti and t_ike run the iptables forms). The LAN must reach the company host
# translated (the company host sees only the policy's address) and the internet as the public
# address (nat_check_internet: the internet host sees only the uplink's). The plain phase is also dual stack (an IPv6 out-policy
# as strongSwan installs for a second virtual IP): the LAN's IPv6 to the company's IPv6 prefix
# must never cross the transit in cleartext; and the company side probes the LAN and the gateway
# through the real SA (nat_check_no_door): nothing unsolicited may arrive.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

# policy_nat PROFILE FIREWALL(0|1) FULL(0|1) [MASQUERADE_FORM before|after]
# MASQUERADE_FORM "ipsnat" is `ipsnat attach --masquerade` (WHEN ignored).
# The plain phase (FIREWALL 0) is dual stack and runs the no-door probe.
policy_nat() {
  local prof=$1 fw=$2 full=$3 masq=${4:-} when=${5:-} before what=plain dual=0
  ((fw)) && what="stateful firewall"
  ((fw)) || dual=1
  FAILS_BEFORE=$FAILS
  lab_profile "$prof"
  step "$prof: policy-based on eth0 ($what${masq:+, $masq $when attach}), LAN $LAB_LAN_NET -> $LAB_COMPANY_NET as $LAB_NAT_IP"
  lab_up
  lab_esp_policy_tunnel
  ((dual)) && { lab_ipv6_up; lab_esp_policy6; }
  ((fw)) && nat_gw_firewall eth0 8000
  local own=()
  if [[ $masq == ipsnat ]]; then own=(--masquerade) when=; fi
  [[ $when == before ]] && nat_gw_masquerade add "$masq"

  # The leak detector is real: without ipsnat the LAN's packets leave in cleartext.
  lab_capture_start baseline
  lab_ping lanhost "$LAB_CHOST_IP" || true
  ((dual)) && { lab_ping lanhost "$LAB_CHOST_IP6" || true; }
  lab_capture_stop baseline >/dev/null
  expect_gt "without ipsnat, LAN traffic leaks in cleartext (detector works)" \
    "$(lab_capture_cleartext baseline)" 0
  ((dual)) && expect_gt "without ipsnat, the LAN's IPv6 leaks in cleartext (detector works)" \
    "$(lab_capture_cleartext6 baseline)" 0

  before=$LAB_STATE/snap.before
  nat_gw_snapshot >"$before"
  lab_capture_start transit
  lab_capture_start chost lan0 chost
  expect_ok "ipsnat attach eth0 --forward tcp:8080=$LAB_LANHOST_IP:8000 ${own[*]}" \
    ipsnat_gw attach eth0 --forward "tcp:8080=$LAB_LANHOST_IP:8000" "${own[@]}"
  ((${#own[@]})) && expect_eq "no netfilter rule on gw: nft list ruleset is empty" \
    "$(lab_exec gw nft list ruleset | grep -c .)" 0
  [[ $when == after ]] && nat_gw_masquerade add "$masq"
  nat_check_ping lanhost
  expect_ok "gw's own traffic still works (ping $LAB_CGW_WAN_IP)" lab_ping gw "$LAB_CGW_WAN_IP"
  [[ -z $masq ]] || nat_check_internet lanhost
  if ((dual)); then
    lab_ping lanhost "$LAB_CHOST_IP6" || true   # judged on the transit capture at the end
    nat_check_no_door
  fi
  if ((full && FAILS == FAILS_BEFORE)); then nat_check_all 2 5001; fi
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost
  [[ $when == after ]] && nat_gw_masquerade del "$masq"

  step "$prof ($what): detach"
  ((FAILS == FAILS_BEFORE)) || nat_diag
  expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
  nat_expect_restored "gateway as before attach" "$before"
  lab_capture_stop transit >/dev/null
  expect_esp_both_ways "policy ($what)" transit
  expect_no_leak "policy ($what): no cleartext on transit while attached" transit
  ((dual)) && expect_eq "policy ($what): no IPv6 cleartext on transit while attached" \
    "$(lab_capture_cleartext6 transit)" 0
  lab_down
}

# Phases PROFILE:FIREWALL:FULL[:MASQUERADE_FORM:before|after]. t_nat_policy_fw.sh runs the
# firewall ones, so that the two halves go to different VMs of the tier.
for phase in ${NAT_POLICY_PHASES:-seed:0:1:ipsnat}; do
  IFS=: read -r prof fw full masq when <<<"$phase"
  policy_nat "$prof" "$fw" "$full" "$masq" "$when"
done
finish
