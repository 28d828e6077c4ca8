# Sourced by demo-esp.sh and demo-lab.sh (after they set LAB_PROFILE): the lab network
# (scripts/lab/lab.sh) under a private prefix, with a private pin root and state directory; all
# of it, and whatever ipsnat attached to gw's eth0, is removed on exit.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
IPSNAT=${IPSNAT:-$root/build/loader/ipsnat}
export LAB_PREFIX=${LAB_PREFIX:-ipsnat-demo$$} LAB_PROFILE
# shellcheck source=lab/lab.sh
source "$root/scripts/lab/lab.sh"
export IPSNAT_PIN_ROOT=/sys/fs/bpf/ipsnat-demo$$ IPSNAT_STATE_DIR=${TMPDIR:-/tmp}/ipsnat-demo$$.state

demo_cleanup() {
  lab_nsenter gw "$IPSNAT" detach eth0 >/dev/null 2>&1 || true
  lab_down
  rm -rf "$IPSNAT_PIN_ROOT" "$IPSNAT_STATE_DIR"
}
trap demo_cleanup EXIT
say() { printf '\n== %s\n' "$*"; }
gw() { lab_nsenter gw "$@"; }
