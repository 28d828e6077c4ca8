# Sourced by netns-tier scenarios: unique namespace names, cleanup on any exit, assertions.
# IPSNAT (the binary) and IPSNAT_SRC come from CTest; defaults serve a manual run from build/.
set -euo pipefail
IPSNAT=${IPSNAT:-$(dirname "${BASH_SOURCE[0]}")/../../build/loader/ipsnat}
IPSNAT_BPF_OBJ=${IPSNAT_BPF_OBJ:-$(dirname "${BASH_SOURCE[0]}")/../../build/generated/bpf/ipsnat_bpf.bpf.o}
IPSNAT_SRC=${IPSNAT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
T_PREFIX="ipsnat-t$$-"
T_NAMESPACES=()
T_FAILED=0

T_PIDS=()
t_cleanup() {
  local ns pid
  for pid in "${T_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # By prefix: `ns=$(t_netns x)` runs t_netns in a subshell, so T_NAMESPACES stays empty there.
  for ns in "${T_NAMESPACES[@]}" $(ip netns list | awk '{print $1}' | grep "^$T_PREFIX"); do
    ip netns del "$ns" 2>/dev/null || true
  done
  if [[ -n ${IPSNAT_PIN_ROOT:-} && $IPSNAT_PIN_ROOT == /sys/fs/bpf/ipsnat-t* ]]; then rm -rf "$IPSNAT_PIN_ROOT"; fi
  if [[ -n ${IPSNAT_STATE_DIR:-} && $IPSNAT_STATE_DIR == /tmp/ipsnat-state-t* ]]; then rm -rf "$IPSNAT_STATE_DIR"; fi
}
trap t_cleanup EXIT

# Creates a namespace with lo up; prints its name.
t_netns() {
  local ns="${T_PREFIX}$1"
  ip netns add "$ns"
  T_NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
  echo "$ns"
}

# Runs a command in NS without remounting /sys (unlike `ip netns exec`), so bpffs pins work.
t_in() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}

t_pass() { echo "ok: $*"; }
t_fail() { echo "FAIL: $*" >&2; T_FAILED=1; }
t_expect() {  # t_expect "description" command...
  local what=$1
  shift
  if "$@"; then t_pass "$what"; else t_fail "$what"; fi
}
t_done() {
  if ((T_FAILED)); then echo "scenario failed"; exit 1; fi
  echo "scenario passed"
}

# A private pin root and state directory for this scenario (removed on exit): never the real ones.
t_private_roots() {
  export IPSNAT_PIN_ROOT="/sys/fs/bpf/ipsnat-t$$"
  export IPSNAT_STATE_DIR="/tmp/ipsnat-state-t$$"
}

# Everything attach/detach may touch in a namespace, for before/after comparison.
t_snapshot() {
  local ns=$1 dev
  ip -n "$ns" -d link show
  ip -n "$ns" addr show
  tc -n "$ns" qdisc show
  for dev in $(ip -n "$ns" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
    echo "== $dev"
    tc -n "$ns" filter show dev "$dev" ingress 2>/dev/null || true
    tc -n "$ns" filter show dev "$dev" egress 2>/dev/null || true
  done
  ip -n "$ns" route show table all
  ip -n "$ns" rule show
  ip -n "$ns" xfrm policy show
}

# bpffs must be mounted for pins; CI machines may start without it.
t_require_bpffs() {
  if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf
  fi
}

# t_veth_pair NS A B: a veth pair A<->B inside NS, both up (a device to attach to, no traffic).
t_veth_pair() {
  ip -n "$1" link add "$2" type veth peer name "$3"
  ip -n "$1" link set "$2" up
  ip -n "$1" link set "$3" up
}

# t_pinned_map_id NAME: the kernel id of the map pinned as $IPSNAT_PIN_ROOT/NAME.
t_pinned_map_id() {
  bpftool -j map show pinned "$IPSNAT_PIN_ROOT/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
