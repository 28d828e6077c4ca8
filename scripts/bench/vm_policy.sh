#!/bin/bash
# vm_policy.sh OUT_DIR: policy mode on real ESP, as ratios (docs/benchmarks.md, "Policy mode on
# real ESP"). Run INSIDE the VM, in one boot:
#   scripts/vm/ipsnat-vm -d REPO -t 1200 -- bash scripts/bench/vm_policy.sh OUT_DIR
# Four copies of the lab (scripts/lab/lab.sh), one per gateway configuration, with manual-key ESP
# tunnel SAs between gw and the company gateway:
#   base    plain IPsec without NAT: the LAN's own prefix in the policy (LAN_NET <-> COMPANY_NET)
#   nft     the netfilter recipe: nftables SNAT to the NAT address + the policy NAT_IP/32 -> COMPANY_NET
#   nftrt   nft plus the routing strongSwan's charon installs with such a policy: its route to
#           COMPANY_NET in table 220 behind `ip rule priority 220 lookup 220` (install_routes, the
#           default), so the kernel's forwarding lookup walks rules
#   ipsnat  the same policy, `ipsnat attach eth0` with its host process, nothing else: its routes
#           in the main table, no rule (docs/attach.md "Where the routes go")
#   ipsnatr the same with `--no-daemon` (own pin root and state): its routes in table 421 behind
#           rule 210, as on a gateway with another rule
#   Z       calibration: gw drops the LAN's IP packets on entry (what the sender costs by itself)
# Each configuration is verified first (the company host sees the expected source, the SA carried
# the packets as ESP, nothing in cleartext on transit); a configuration that fails is not measured
# and the script exits non-zero. Then transit drops the ESP on entry (so the timed path is the
# sender, gw's forwarding, NAT and encryption, and one veth hop) and ROUNDS rounds measure
# scripts/bench/sender.c: per configuration PACKETS UDP packets over FLOWS established flows, CPU
# time of the sending thread per packet, in SLICES slices interleaved with the other
# configurations' in one sender process per round (run.py's method); with VMB_SEQUENTIAL=1 each
# round also runs one sender per configuration (workload udp-est-seq), to compare the two methods.
# After the rounds, one untimed run of the ipsnat configuration with kernel.bpf_stats_enabled=1
# gives each ipsnat program's run time per packet (OUT_DIR/profile.txt, in the summary).
# Raw data: OUT_DIR/results.csv (run.py's format), summary in OUT_DIR/summary.md
# (scripts/bench/vm_report.py, report.py's estimators).
# Environment: VMB_ROUNDS (6), VMB_PACKETS (20000), VMB_FLOWS (100), VMB_SLICES (10),
# VMB_SEQUENTIAL (0).
# shellcheck source-path=SCRIPTDIR
set -eEuo pipefail
out=${1:?usage: vm_policy.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
bench=$(cd "${BASH_SOURCE[0]%/*}" && pwd -P)
# natlib.sh: the lab, require_esp, the ipsnat binary and ipsnat_gw.
# shellcheck source=../../tests/vm/natlib.sh
source "$bench/../../tests/vm/natlib.sh"
nat_require

ROUNDS=${VMB_ROUNDS:-6} PACKETS=${VMB_PACKETS:-20000} FLOWS=${VMB_FLOWS:-100}
SLICES=${VMB_SLICES:-10} SEQUENTIAL=${VMB_SEQUENTIAL:-0}
CONFIGS=(Z base nft nftrt ipsnat ipsnatr)
PORT=9
work=$(mktemp -d "${TMPDIR:-/tmp}/vmb.XXXXXX")
cleanup() {
  local st=$? c
  use_lab ipsnat
  [[ -d $NAT_STATE_DIR ]] && ipsnat_gw detach eth0 >/dev/null 2>&1  # stops its host process
  for c in "${CONFIGS[@]}"; do use_lab "$c"; lab_down; done
  rm -rf "$NAT_PIN_ROOT" "$NAT_STATE_DIR" "$NAT_PIN_ROOT-r" "$NAT_STATE_DIR-r" "$work"
  exit "$st"
}
trap cleanup EXIT

# use_lab CONFIG: the lab functions act on CONFIG's copy of the lab from now on.
# shellcheck disable=SC2034 # LAB_PREFIX is exported by lab.sh
use_lab() { LAB_PREFIX=vmb-$1 LAB_STATE=$work/$1.lab; }
send() { lab_nsenter lanhost "$work/sender" udp --src "$LAB_LANHOST_IP" --dst "$LAB_CHOST_IP" --dport "$PORT" "$@"; }
# drop_ip_on_entry NS DEV: nftables drops IP packets arriving on NS's DEV (ARP passes, so the
# neighbour entries of the sending side stay valid).
drop_ip_on_entry() {
  lab_exec "$1" nft -f - <<EOF
table netdev vmb_drop {
  chain in {
    type filter hook ingress device "$2" priority 0; policy accept;
    ether type ip counter drop
  }
}
EOF
}
gw_out_sa_packets() {
  _lab_ip gw -s xfrm state list src "$LAB_GW_WAN_IP" dst "$LAB_CGW_WAN_IP" |
    awk '/lifetime current:/ { cur = 1; next } cur { n += $2 + 0; cur = 0 } END { print n + 0 }'
}

# charon_routes: the route strongSwan's charon installs for the policy's remote selector, in
# its table 220 behind rule priority 220, through the next hop gw's main table has for it.
charon_routes() {
  local via
  via=$(_lab_ip gw -o route get "$LAB_CHOST_IP" | sed -n 's/.* via \([^ ]*\) dev \([^ ]*\).*/via \1 dev \2/p')
  [[ -n $via ]] || { echo "gw has no route with a next hop to $LAB_CHOST_IP" >&2; return 1; }
  # shellcheck disable=SC2086 # "via A dev D", split on purpose
  _lab_batch gw <<EOF
route add $LAB_COMPANY_NET $via table 220
rule add priority 220 lookup 220
EOF
}

# placed CONFIG TABLE: attach put its LWT route in TABLE (main: and no rule; 421: behind rule 210).
placed() {
  local rules
  rules=$(_lab_ip gw rule show)
  if [[ $2 == main ]]; then
    expect_ok "$1: the LWT route in the main table" bash -c "ip -n $(lab_ns gw) route show table main proto 165 | grep -q lwt_snat_xmit"
    expect_ok "$1: no rule 210" bash -c '! grep -q "lookup 421" <<<"$1"' _ "$rules"
  else
    expect_ok "$1: the LWT route in table 421" bash -c "ip -n $(lab_ns gw) route show table 421 proto 165 | grep -q lwt_snat_xmit"
    expect_ok "$1: rule 210" bash -c 'grep -q "^210:.*lookup 421" <<<"$1"' _ "$rules"
  fi
}

setup() {
  use_lab "$1"
  lab_up
  case $1 in
    base)
      {
        _lab_gw_sas
        _lab_policies "$LAB_LAN_NET" "$LAB_COMPANY_NET" "$LAB_GW_WAN_IP" "$LAB_CGW_WAN_IP"
      } | _lab_batch gw
      {
        _lab_sa_pair "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP" "$LAB_SPI_IN" "$LAB_KEY_IN" "$LAB_SPI_OUT" "$LAB_KEY_OUT"
        _lab_policies "$LAB_COMPANY_NET" "$LAB_LAN_NET" "$LAB_CGW_WAN_IP" "$LAB_GW_WAN_IP"
      } | _lab_batch cgw
      _lab_ip chost route add "$LAB_LAN_NET" via "$LAB_CGW_LAN_IP" ;;
    nft | nftrt)
      lab_esp_policy_tunnel
      [[ $1 == nftrt ]] && charon_routes
      lab_exec gw nft -f - <<EOF
table ip vmb_nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $LAB_LAN_NET ip daddr $LAB_COMPANY_NET oifname "eth0" snat to $LAB_NAT_IP
  }
}
EOF
      ;;
    ipsnat)
      lab_esp_policy_tunnel
      ipsnat_gw attach eth0 >"$out/attach-ipsnat.log"
      placed ipsnat main ;;
    ipsnatr)
      lab_esp_policy_tunnel
      lab_nsenter gw env IPSNAT_PIN_ROOT="$NAT_PIN_ROOT-r" IPSNAT_STATE_DIR="$NAT_STATE_DIR-r" "$IPSNAT_BIN" \
        attach eth0 --no-daemon >"$out/attach-ipsnatr.log"
      placed ipsnatr 421 ;;
    Z)
      lab_esp_policy_tunnel
      drop_ip_on_entry gw lan0 ;;
  esac
}

# verify CONFIG: 10 flows x (warm-up + 1) packets; the company host must see them all from the
# expected source (none for Z), gw's out SA must have carried them, transit must see no cleartext.
verify() {
  local c=$1 want_src=$LAB_NAT_IP want=20 got other sa0 sa
  use_lab "$c"
  [[ $c == base ]] && want_src=$LAB_LANHOST_IP
  [[ $c == Z ]] && want=0
  sa0=$(gw_out_sa_packets)
  lab_capture_start transit
  lab_capture_start chost lan0 chost
  send --flows 10 --packets 10 >/dev/null || true
  lab_capture_stop chost >/dev/null
  lab_capture_stop transit >/dev/null
  sa=$(($(gw_out_sa_packets) - sa0))
  got=$(lab_capture_count chost "udp and dst port $PORT and src host $want_src")
  other=$(lab_capture_count chost "udp and dst port $PORT and not src host $want_src")
  expect_eq "$c: packets the company host saw from $want_src" "$got" "$want"
  expect_eq "$c: ... and none from another source" "$other" 0
  expect_eq "$c: gw's out SA carried them" "$sa" "$want"
  expect_eq "$c: no cleartext on transit" "$(lab_capture_cleartext transit)" 0
  echo "$c: company host saw $got packets from $want_src, $other from others; out SA +$sa" >>"$out/checks.txt"
}

step "build the sender"
cc -O2 -Wall -Wextra -Werror -o "$work/sender" "$bench/sender.c"
: >"$out/checks.txt"
for c in "${CONFIGS[@]}"; do
  step "configuration $c"
  setup "$c"
  verify "$c"
done
((FAILS == 0)) || { echo "a configuration is broken: nothing measured"; exit 1; }
for c in "${CONFIGS[@]}"; do use_lab "$c"; drop_ip_on_entry transit to-gw; done

{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "kernel=$(uname -r)"
  echo "cpus=$(nproc)"
  echo "accel=${IPSNAT_VM_ACCEL:-tcg}"
  echo "ipsnat=$IPSNAT_BIN"
  echo "workload=$ROUNDS rounds; per configuration and round $PACKETS UDP packets over $FLOWS established flows in $SLICES interleaved slices$( ((SEQUENTIAL)) && echo ", and $PACKETS in each of its sequential runs")"
} >"$out/machine.txt"
echo "round,workload,variant,pass,position,packets,cpu_ns,wall_ns,errors,steal_ns,spin_ns" >"$out/results.csv"
# record ROUND WORKLOAD PASS POSITION CONFIG SENDER_LINE: one row of results.csv (run.py's format).
record() {
  local re='cpu_ns=([0-9]+) wall_ns=([0-9]+) packets=([0-9]+) errors=([0-9]+) steal_ns=([0-9]+) spin_ns=([0-9]+)'
  [[ $6 =~ $re ]] || { echo "sender said: $6" >&2; exit 1; }
  echo "$1,$2,$5,$3,$4,${BASH_REMATCH[3]},${BASH_REMATCH[1]},${BASH_REMATCH[2]},${BASH_REMATCH[4]},${BASH_REMATCH[5]},${BASH_REMATCH[6]}" >>"$out/results.csv"
}
# sliced ROUND: one sender process with a socket in every configuration's LAN host; a warm-up pass
# and SLICES passes, each configuration once per pass in a shuffled order (run.py's plan).
sliced() {
  local r=$1 c ns=() plan=() passes=() positions=() names=() lines k idx
  declare -A index
  for c in "${CONFIGS[@]}"; do
    use_lab "$c"
    index[$c]=$((${#ns[@]} / 2)) # its number in the --ns list
    ns+=(--ns "/run/netns/$(lab_ns lanhost)")
  done
  while read -r k idx c; do
    passes+=("$k") positions+=("$idx") names+=("$c") plan+=("${index[$c]}")
  done < <(python3 "$bench/vm_report.py" plan "$r" "$SLICES" "${CONFIGS[@]}")
  mapfile -t lines < <("$work/sender" udp --src "$LAB_LANHOST_IP" --dst "$LAB_CHOST_IP" --dport "$PORT" \
    --flows "$FLOWS" --packets $((PACKETS / SLICES)) --cpu 1 "${ns[@]}" --plan "$(IFS=,; echo "${plan[*]}")")
  ((${#lines[@]} == ${#plan[@]})) || { echo "sender ran ${#lines[@]} of ${#plan[@]} slices in round $r" >&2; exit 1; }
  for k in "${!lines[@]}"; do
    record "$r" udp-est "${passes[k]}" "${positions[k]}" "${names[k]}" "${lines[k]}"
  done
}
# sequential ROUND: one sender run per configuration, Z and base (the ratios' two ends) at both
# ends of the round, the two NAT configurations swapped every round.
sequential() {
  local r=$1 c pos=0 mid=(nft ipsnat)
  ((r % 2)) || mid=(ipsnat nft)
  for c in Z base "${mid[@]}" base Z; do
    use_lab "$c"
    record "$r" udp-est-seq 1 $((pos++)) "$c" "$(send --flows "$FLOWS" --packets "$PACKETS" --cpu 1)"
  done
}
for ((r = 1; r <= ROUNDS; r++)); do
  sliced "$r"
  ((SEQUENTIAL)) && sequential "$r"
  step "round $r/$ROUNDS done (load in the VM: $(cut -d' ' -f1 /proc/loadavg))"
done
# "id name runs run_time_ns" per program; bpftool leaves the two counters out while they are 0.
bpf_prog_times() {
  bpftool prog show 2>/dev/null | awk '/^[0-9]+: / {
    id = $1; name = "-"; t = 0; c = 0
    for (i = 2; i < NF; i++) {
      if ($i == "name") name = $(i + 1)
      if ($i == "run_time_ns") t = $(i + 1)
      if ($i == "run_cnt") c = $(i + 1)
    }
    print id, name, c, t }'
}
# profile: one untimed sender run of the ipsnat configuration with bpf_stats on; per program
# "name runs run_time_ns" of what ran during that run, after a "packets N" line.
profile() {
  local before after
  use_lab ipsnat
  sysctl -qw kernel.bpf_stats_enabled=1
  before=$(bpf_prog_times)
  send --flows "$FLOWS" --packets "$PACKETS" --cpu 1 >/dev/null
  after=$(bpf_prog_times)
  sysctl -qw kernel.bpf_stats_enabled=0
  echo "packets $PACKETS"
  join <(sort <<<"$before") <(sort <<<"$after") | awk '$6 > $3 { print $2, $6 - $3, $7 - $4 }'
}
step "profile of ipsnat (bpf_stats)"
profile >"$out/profile.txt"
python3 "$bench/vm_report.py" "$out"
cat "$out/summary.md"
finish
