#!/bin/bash
# vm-cost: 60
# shellcheck source-path=SCRIPTDIR
# Leak guard and reverse-path integrity (issue 7, items 1-2) on policy-based
# IPsec with `ipsnat attach eth0`, judged on the transit router for the whole run:
#  - spoofed cleartext "replies" from the internet (source inside the company
#    net, destination the NAT address or a LAN address, matching a live flow)
#    never reach the LAN host, nor do replies decrypted from another SA;
#  - with the out SA deleted (policy still there: acquire/larval state), LAN
#    traffic to the company is dropped, never sent in cleartext; an out SA
#    rekeyed under a running ping loses nothing to cleartext; after the
#    out-policy is deleted and re-added it is encrypted again, never plain.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

# Packets gw sent towards transit (not the spoofs transit itself sends to gw).
leaks_from_gw() { lab_capture_count transit "inbound and ($(lab_cleartext_filter))"; }

lab_profile "${NAT_GUARD_PROFILE:-seed}"
step "$LAB_PROFILE: policy-based on eth0, LAN $LAB_LAN_NET -> $LAB_COMPANY_NET as $LAB_NAT_IP"
lab_up
lab_esp_policy_tunnel
lab_capture_start transit
expect_ok "ipsnat attach eth0" ipsnat_gw attach eth0
nat_check_ping lanhost
# A live UDP flow (lanhost:40000 -> chost:6000) gives the spoofs a conntrack entry to aim at.
nat_udp_server 6000 "$LAB_STATE/udp.peers"
expect_eq "live UDP flow from lanhost:40000" \
  "$(lab_exec lanhost timeout 30 python3 -S "$NAT_TOOL" udp-echo-client "$LAB_CHOST_IP" 6000 3 40000 || true)" 3
nat_udp_server_stop
nat_port=$(sed -n "s/^$LAB_NAT_IP://p" "$LAB_STATE/udp.peers" | head -1)
# Under TCG load the server may be cut off before it prints its peers; ipsnat's own flow table
# names the translated port just as well.
[[ -n $nat_port ]] || nat_port=$(ipsnat_gw flows --proto udp --port 6000 |
  sed -n "s/.* as $LAB_NAT_IP:\([0-9]*\) .*/\1/p" | head -1)
expect_gt "chost saw the flow from $LAB_NAT_IP (port ${nat_port:-none})" "${nat_port:-0}" 0

step "spoofed cleartext replies from transit"
lab_capture_start lan lan0 lanhost
lab_capture_start gwin eth0 gw
_lab_ip transit route add "$LAB_NAT_IP/32" via "$LAB_GW_WAN_IP"
_lab_ip transit route add "$LAB_LAN_NET" via "$LAB_GW_WAN_IP"
for dst in "$LAB_NAT_IP" "$LAB_LANHOST_IP"; do
  dport=40000; [[ $dst == "$LAB_NAT_IP" ]] && dport=${nat_port:-40000}
  lab_exec transit python3 -S "$NAT_TOOL" spoof "$LAB_CHOST_IP" "$dst" udp 6000 "$dport" 5
  lab_exec transit python3 -S "$NAT_TOOL" spoof "$LAB_CHOST_IP" "$dst" icmp 4242 0 5
done
sleep 1
lab_capture_stop gwin >/dev/null
lab_capture_stop lan >/dev/null
expect_eq "the spoofs reached gw's eth0" \
  "$(lab_capture_count gwin "ip and src host $LAB_CHOST_IP and not esp")" 20
expect_eq "no spoof reached the LAN" "$(lab_capture_count lan "ip and src host $LAB_CHOST_IP")" 0
_lab_ip transit route del "$LAB_NAT_IP/32"
_lab_ip transit route del "$LAB_LAN_NET"

# cgw sends chost's answers through a second SA (another reqid) of the same pair of
# gateways: gw decrypts them, but they belong to no flow of that SA, so ipsnat must not
# translate them into the LAN (and the kernel's inbound check then drops them).
other_reqid=$((LAB_REQID + 100))
step "replies decrypted from another SA (reqid $other_reqid)"
other_spi=$(printf '0x%08x' $((LAB_SPI_IN ^ 0x20000000)))
for ns in cgw gw; do
  _lab_ip "$ns" xfrm state add src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" proto esp spi "$other_spi" \
    reqid "$other_reqid" mode tunnel aead "$LAB_AEAD" "$LAB_KEY_IN" 128
done
cgw_out_policy() {
  _lab_ip cgw xfrm policy update src "$LAB_COMPANY_NET" dst "$LAB_NAT_IP/32" dir out \
    tmpl src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" proto esp reqid "$1" mode tunnel
}
udp_echoes() {
  nat_udp_server 6000 "$LAB_STATE/other-sa.peers"
  lab_exec lanhost timeout 30 python3 -S "$NAT_TOOL" udp-echo-client "$LAB_CHOST_IP" 6000 3 40000 || true
  nat_udp_server_stop
}
cgw_out_policy "$other_reqid"
wrong_sa_before=$(nat_reason_count pass-wrong-sa)
lab_capture_start lan2 lan0 lanhost
expect_eq "answers through the other SA: lanhost got no echo" "$(udp_echoes)" 0
lab_capture_stop lan2 >/dev/null
expect_eq "no packet from chost reached the LAN" "$(lab_capture_count lan2 "ip and src host $LAB_CHOST_IP")" 0
expect_gt "ipsnat refused them (pass-wrong-sa)" "$(($(nat_reason_count pass-wrong-sa) - wrong_sa_before))" 2
cgw_out_policy "$LAB_REQID"
for ns in cgw gw; do
  _lab_ip "$ns" xfrm state delete src "$LAB_CGW_WAN_IP" dst "$LAB_GW_WAN_IP" proto esp spi "$other_spi"
done
expect_eq "answers through the flow's own SA again: echoed" "$(udp_echoes)" 3

step "out SA deleted (policy stays: acquire/larval)"
_lab_ip gw xfrm state delete src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp spi "$LAB_SPI_OUT"
expect_fail "no out SA: ping fails" lab_ping lanhost "$LAB_CHOST_IP"
expect_fail "no out SA: UDP gets no echo" \
  lab_exec lanhost timeout 20 python3 -S "$NAT_TOOL" udp-echo-client "$LAB_CHOST_IP" 6000 3 40000
expect_eq "no out SA: no cleartext from gw" "$(leaks_from_gw)" 0
_lab_ip gw xfrm state add src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp spi "$LAB_SPI_OUT" \
  reqid "$LAB_REQID" mode tunnel aead "$LAB_AEAD" "$LAB_KEY_OUT" 128
expect_ok "out SA back: ping works again" lab_ping lanhost "$LAB_CHOST_IP"
lab_capture_stop transit >/dev/null
expect_eq "up to here: no cleartext from gw on transit" "$(leaks_from_gw)" 0

# As IKE rekeys: the peer gets the new inbound SA first, then gw its new out SA, and the old
# one goes, all while a ping runs.
step "out SA rekeyed under traffic (make-before-break)"
rekey_spi=$(printf '0x%08x' $((LAB_SPI_OUT ^ 0x40000000)))
lab_capture_start transit
lab_nsenter lanhost ping -n -q -c 30 -i 0.2 -W 2 "$LAB_CHOST_IP" >"$LAB_STATE/rekey.ping" 2>&1 &
pinger=$!
sleep 2
for ns in cgw gw; do
  _lab_ip "$ns" xfrm state add src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp spi "$rekey_spi" \
    reqid "$LAB_REQID" mode tunnel aead "$LAB_AEAD" "$LAB_KEY_OUT" 128
done
sleep 1
_lab_ip gw xfrm state delete src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp spi "$LAB_SPI_OUT"
wait "$pinger" || true
received=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$LAB_STATE/rekey.ping")
expect_gt "rekey: pings answered across it (of 30)" "${received:-0}" 19
expect_ok "rekey: ping after it" lab_ping lanhost "$LAB_CHOST_IP"
lab_capture_stop transit >/dev/null
expect_gt "rekey: gw sent ESP with the new SPI $rekey_spi" \
  "$(lab_capture_count transit "inbound and esp and ip[20:4] = $rekey_spi")" 0
expect_eq "rekey: no cleartext from gw" "$(leaks_from_gw)" 0

# Without its out-policy the destination is no longer covered: what crosses in that
# window is reported, not judged (the kernel itself would send it plainly). After the
# policy is back, the follower must have re-planned: traffic encrypted, nothing plain.
step "out-policy deleted and re-added"
lab_capture_start transit
_lab_ip gw xfrm policy del src "$LAB_NAT_IP/32" dst "$LAB_COMPANY_NET" dir out
lab_ping lanhost "$LAB_CHOST_IP" || true
echo "   info: cleartext from gw while the out-policy was gone: $(leaks_from_gw)"
lab_capture_stop transit >/dev/null
_lab_ip gw xfrm policy add src "$LAB_NAT_IP/32" dst "$LAB_COMPANY_NET" dir out \
  tmpl src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" proto esp reqid "$LAB_REQID" mode tunnel
sleep 2
lab_capture_start transit
expect_ok "out-policy back: ping works again" lab_ping lanhost "$LAB_CHOST_IP"
lab_capture_stop transit >/dev/null
expect_eq "out-policy back: no cleartext from gw" "$(leaks_from_gw)" 0
((FAILS == 0)) || nat_diag
expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
finish
