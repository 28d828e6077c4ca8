# Sourced by netns-tier scenarios: unique namespace names, cleanup on any exit, assertions.
# IPSNAT (the binary) and IPSNAT_SRC come from CTest; defaults serve a manual run from build/.
set -euo pipefail
IPSNAT=${IPSNAT:-$(dirname "${BASH_SOURCE[0]}")/../../build/loader/ipsnat}
IPSNAT_BPF_OBJ=${IPSNAT_BPF_OBJ:-$(dirname "${BASH_SOURCE[0]}")/../../build/generated/bpf/ipsnat_bpf.bpf.o}
T_PREFIX="ipsnat-t$$-"
T_NAMESPACES=()
T_FAILED=0

# By prefix, not only from T_NAMESPACES: `ns=$(t_netns x)` runs t_netns in a subshell, so its
# additions to the array never reach the shell that cleans up.
t_cleanup() {
  local ns
  for ns in "${T_NAMESPACES[@]}" $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${T_PREFIX}"); do
    ip netns del "$ns" 2>/dev/null || true
  done
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

# bpffs must be mounted for pins; CI machines may start without it.
t_require_bpffs() {
  if [[ $(stat -f -c %T /sys/fs/bpf 2>/dev/null) != bpf_fs ]]; then
    mount -t bpf bpf /sys/fs/bpf
  fi
}
