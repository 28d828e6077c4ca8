#!/bin/bash
# vm-cost: 90
# shellcheck source-path=SCRIPTDIR
# The README's demo in the VM tier (issue 5): scripts/demo-esp.sh with the seed
# HOWTO's addresses — strongSwan IKEv2 between gw and cgw, `ipsnat attach eth0`,
# ping and 1 MiB TCP each way — asserted on what it prints. This is also the
# seed-address run of the strongSwan scenario (t_ike.sh runs the other prefixes):
# one lab serves both, so the VM tier pays for it once.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
# shellcheck source=../../scripts/vm/ike.sh
source "$REPO_ROOT/scripts/vm/ike.sh"
nat_require
ike_supported || skip "strongSwan's charon/swanctl not installed (scripts/install-deps.sh)"

lab_profile "${DEMO_PROFILE:-seed}"
out=$LAB_STATE.demo.out
step "scripts/demo-esp.sh $LAB_PROFILE"
rc=0
IPSNAT=$IPSNAT_BIN bash "$REPO_ROOT/scripts/demo-esp.sh" "$LAB_PROFILE" >"$out" 2>&1 || rc=$?
sed 's/^/   | /' "$out"
expect_eq "demo exit status" "$rc" 0
has() { if grep -qF -- "$2" "$out"; then ok "$1"; else fail "$1 (no line with: $2)"; fi; }
has "strongSwan established the tunnel" "ESTABLISHED"
has "charon put the virtual IP on gw's eth0" "$LAB_NAT_IP/32"
has "the ping was answered" "[ok] ping: 3 packets transmitted, 3 received"
has "upload checksummed on both ends" "[ok] upload   LAN host -> company host: 1048576 bytes"
has "download checksummed on both ends" "[ok] download company host -> LAN host: 1048576 bytes"
has "the company host saw only the virtual IP" "[ok] the company host saw $LAB_NAT_IP"
has "the wire carried only ESP" "[ok] only ESP between the LAN/virtual IP and $LAB_COMPANY_NET: 0 cleartext packets"
# Any flow of the LAN host to the company host: the ping's ICMP flow (no ports) may have expired
# by the time the demo lists the flows, after two 1 MiB transfers under TCG.
flow_re="${LAB_LANHOST_IP//./\\.}(:[0-9]+)? -> ${LAB_CHOST_IP//./\\.}(:[0-9]+)? as ${LAB_NAT_IP//./\\.}(:[0-9]+)? "
if grep -Eq -- "$flow_re" "$out"; then ok "the flows table shows the LAN host translated to the virtual IP"
else fail "the flows table shows the LAN host translated to the virtual IP (no line matching: $flow_re)"; fi
has "detach restored gw" "[ok] gw is exactly as charon left it"
expect_eq "no false claim" "$(grep -c '\[FAILED\]' "$out" || true)" 0
rm -f "$out"
finish
