#!/bin/bash
# vm-cost: 120
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
# The plain phase also has two more policies (extra_policies_add). One for tcp dport PORT_ONLY
# only, on its own SA, ahead of the lab's: policy mode refuses it in one line; a LAN flow to that
# port is neither translated nor sent through any SA, the leak guard drops its cleartext
# (check_port_policy), and everything else keeps working through the lab's SA. One whose source is
# a block, onto which the LAN is mapped 1:1 (BINAT) for a second address of the company host:
# from there TCP and UDP to lanhost's mapped address go through the SA and reach nobody while
# attached without --binat (check_binat_closed), and reach lanhost, which sees the company
# address, once re-attached with --binat (check_binat_open); detach then restores the gateway.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

PORT_ONLY=9443

# _logged FILE CMD...: CMD with its output (both streams) shown and kept in FILE.
_logged() { local f=$1; shift; "$@" 2>&1 | tee "$f"; }

# extra_policies_add: two more policies on gw (cgw can decrypt what either sends):
# - the lab's out-policy moves to priority 200; ahead of it (priority 100) one for tcp dport
#   PORT_ONLY only, with its own reqid and an SA gw -> cgw;
# - BINAT_BLOCK <-> BINAT_REMOTE/32 (a second address of chost) on the lab's SAs, gw and cgw:
#   the LAN is mapped 1:1 onto the block for that remote.
extra_policies_add() {
  local reqid=$((LAB_REQID + 1)) sa tmpl
  # The 1:1 map: the LAN onto BINAT_BLOCK (lanhost is BINAT_MAPPED) towards BINAT_REMOTE only.
  BINAT_REMOTE=${LAB_CHOST_IP%.*}.2
  BINAT_BLOCK=${LAB_NAT_IP%.*.*}.99.0/24
  BINAT_MAPPED=${BINAT_BLOCK%.*}.${LAB_LANHOST_IP##*.}
  PORT_SPI=$(printf '0x%08x' $((LAB_SPI_OUT + 0x100)))
  sa="xfrm state add src $LAB_GW_WAN_IP dst $LAB_CGW_WAN_IP proto esp spi $PORT_SPI reqid $reqid mode tunnel aead $LAB_AEAD $LAB_KEY_OUT 128"
  tmpl="tmpl src $LAB_GW_WAN_IP dst $LAB_CGW_WAN_IP proto esp"
  {
    echo "xfrm policy update src $LAB_NAT_IP/32 dst $LAB_COMPANY_NET dir out priority 200 $tmpl reqid $LAB_REQID mode tunnel"
    echo "$sa"
    echo "xfrm policy add src $LAB_NAT_IP/32 dst $LAB_COMPANY_NET proto tcp dport $PORT_ONLY dir out priority 100 $tmpl reqid $reqid mode tunnel"
    _lab_policies "$BINAT_BLOCK" "$BINAT_REMOTE/32" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP"
  } | _lab_batch gw
  {
    echo "$sa"
    _lab_policies "$BINAT_REMOTE/32" "$BINAT_BLOCK" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
  } | _lab_batch cgw
  _lab_batch chost <<EOF2
addr add $BINAT_REMOTE/32 dev lan0
route add $BINAT_BLOCK via $LAB_CGW_LAN_IP src $BINAT_REMOTE
EOF2
}

# _reason_delta BEFORE AFTER REASON: packets counted for REASON between two _nat_reason_counts.
_reason_delta() { awk -v r="$3" 'FNR == NR { if ($1 == r) b = $2; next } $1 == r { a = $2 } END { print a - b }' "$1" "$2"; }

# check_port_policy ATTACH_OUTPUT: attach named the port-restricted policy in one line; lanhost's
# connection attempt to chost:PORT_ONLY is not translated (pass-reroute-ports), its cleartext is
# dropped by the leak guard, nothing is sent through the port policy's SA (judged on transit at
# the end), and chost never sees it (judged on its capture).
check_port_policy() {
  local b=$LAB_STATE/counts.before a=$LAB_STATE/counts.after
  expect_eq "attach names the tcp/$PORT_ONLY policy in one line: not translated in policy mode" \
    "$(grep -c "policy [0-9]* ($LAB_NAT_IP/32 -> $LAB_COMPANY_NET tcp dport $PORT_ONLY) is not translated in policy mode" "$1")" 1
  _nat_reason_counts >"$b"
  # shellcheck disable=SC2016 # expanded by the inner bash
  lab_exec lanhost timeout 3 bash -c ': </dev/tcp/$0/$1' "$LAB_CHOST_IP" "$PORT_ONLY" 2>/dev/null || true
  _nat_reason_counts >"$a"
  expect_eq "tcp/$PORT_ONLY: not counted as translated (xlate-snat)" "$(_reason_delta "$b" "$a" xlate-snat)" 0
  expect_gt "tcp/$PORT_ONLY: left untranslated at the LWT hook (pass-reroute-ports)" \
    "$(_reason_delta "$b" "$a" pass-reroute-ports)" 0
  expect_gt "tcp/$PORT_ONLY: its cleartext dropped by the leak guard (drop-leak-guard)" \
    "$(_reason_delta "$b" "$a" drop-leak-guard)" 0
}

# binat_probe TCP_PORT UDP_PORT: nat_chost_to_lanhost by TCP and by UDP to BINAT_MAPPED at once;
# the answers in $LAB_STATE/binat.tcp and binat.udp.
binat_probe() {
  local t
  nat_chost_to_lanhost tcp "$BINAT_MAPPED" "$1" "$1" >"$LAB_STATE/binat.tcp" & t=$!
  nat_chost_to_lanhost udp "$BINAT_MAPPED" "$2" "$2" >"$LAB_STATE/binat.udp"
  wait "$t" || true
}

# check_binat_closed: attached without --binat, BINAT_REMOTE's TCP and UDP to lanhost's mapped
# address go through cgw's SA and reach nobody (lanhost's capture).
check_binat_closed() {
  local sa0 n
  step "BINAT closed: $BINAT_REMOTE -> $BINAT_MAPPED ($LAB_LANHOST_IP in $BINAT_BLOCK) without --binat"
  sa0=$(_nat_cgw_out_sa packets)
  lab_capture_start binat-door lan0 lanhost
  binat_probe 8443 8444
  expect_eq "without --binat: tcp to $BINAT_MAPPED reaches nobody" "$(<"$LAB_STATE/binat.tcp")" ""
  expect_eq "without --binat: udp to $BINAT_MAPPED reaches nobody" "$(<"$LAB_STATE/binat.udp")" ""
  lab_capture_stop binat-door >/dev/null
  expect_gt "without --binat: the attempts went through cgw's SA" "$(($(_nat_cgw_out_sa packets) - sa0))" 0
  n=$(lab_capture_count binat-door "ip and src host $BINAT_REMOTE")
  expect_eq "without --binat: packets from $BINAT_REMOTE at lanhost" "$n" 0
}

# check_binat_open ATTACH_ARGS...: re-attached with --binat, BINAT_REMOTE reaches lanhost at its
# mapped address by TCP and UDP, lanhost sees BINAT_REMOTE's own address, the answers come back.
check_binat_open() {
  step "BINAT open: $BINAT_REMOTE -> $BINAT_MAPPED with --binat"
  expect_ok "ipsnat attach eth0 --binat (again)" ipsnat_gw attach eth0 -q --binat "$@"
  binat_probe 8445 8446
  expect_eq "--binat: tcp to $BINAT_MAPPED:8445 reached lanhost, which saw $BINAT_REMOTE" \
    "$(<"$LAB_STATE/binat.tcp")" "tcp $BINAT_REMOTE"
  expect_eq "--binat: udp to $BINAT_MAPPED:8446 reached lanhost, which saw $BINAT_REMOTE; the answer came back" \
    "$(<"$LAB_STATE/binat.udp")" "udp $BINAT_REMOTE"
}

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
  ((dual)) && { lab_ipv6_up; lab_esp_policy6; extra_policies_add; }
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
    _logged "$LAB_STATE/attach.out" ipsnat_gw attach eth0 --forward "tcp:8080=$LAB_LANHOST_IP:8000" "${own[@]}"
  ((${#own[@]})) && expect_eq "no netfilter rule on gw: nft list ruleset is empty" \
    "$(lab_exec gw nft list ruleset | grep -c .)" 0
  [[ $when == after ]] && nat_gw_masquerade add "$masq"
  nat_check_ping lanhost
  expect_ok "gw's own traffic still works (ping $LAB_CGW_WAN_IP)" lab_ping gw "$LAB_CGW_WAN_IP"
  [[ -z $masq ]] || nat_check_internet lanhost
  if ((dual)); then
    lab_ping lanhost "$LAB_CHOST_IP6" || true   # judged on the transit capture at the end
    nat_check_no_door
    check_port_policy "$LAB_STATE/attach.out"
    check_binat_closed
  fi
  if ((full && FAILS == FAILS_BEFORE)); then nat_check_all 2 5001; fi
  ((dual)) && check_binat_open --forward "tcp:8080=$LAB_LANHOST_IP:8000" "${own[@]}"
  lab_capture_stop chost >/dev/null
  nat_chost_capture_check chost
  ((dual)) && expect_eq "chost saw nothing for tcp/$PORT_ONLY" "$(lab_capture_count chost "tcp port $PORT_ONLY")" 0
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
  ((dual)) && expect_eq "policy ($what): nothing sent through the tcp/$PORT_ONLY policy's SA" \
    "$(lab_capture_count transit "esp and ip[20:4] = $PORT_SPI")" 0
  lab_down
}

# Phases PROFILE:FIREWALL:FULL[:MASQUERADE_FORM:before|after]. t_nat_policy_fw.sh runs the
# firewall ones, so that the two halves go to different VMs of the tier.
for phase in ${NAT_POLICY_PHASES:-seed:0:1:ipsnat}; do
  IFS=: read -r prof fw full masq when <<<"$phase"
  policy_nat "$prof" "$fw" "$full" "$masq" "$when"
done
finish
