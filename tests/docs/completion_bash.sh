#!/bin/bash
# The generated bash completion, sourced in bash: COMPREPLY for verbs, nested verbs, options
# (the verb's and the global ones), option values, and devices for attach (the system's, in a
# network namespace of this test's own) and detach (the attached ones of this namespace, from the
# state records). Usage: completion_bash.sh COMPLETION_FILE (root for the namespace case).
set -euo pipefail
source "$1"
failed=0
# expect "WORDS..." "EXPECTED": completes the last word of WORDS (may be empty).
expect() {
  local -a words
  read -r -a words <<<"$1"
  [[ $1 == *" " ]] && words+=("")
  COMP_WORDS=("${words[@]}")
  COMP_CWORD=$((${#words[@]} - 1))
  COMPREPLY=()
  _ipsnat || true  # compgen fails when nothing matches; bash runs completions without -e
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | xargs)
  if [[ $got == "$2" ]]; then echo "ok: '$1' -> $got"; else echo "FAIL: '$1' -> '$got', expected '$2'" >&2; failed=1; fi
}
expect "ipsnat " "attach check detach explain flows policies run status"
expect "ipsnat fl" "flows"
expect "ipsnat flows " "flush"
expect "ipsnat flows flush --p" "--pin-root --port --pretty --proto"
expect "ipsnat -j --pin-root /x fl" "flows"
expect "ipsnat attach --mode " "auto policy route"
expect "ipsnat attach -m p" "policy"
expect "ipsnat run --log-level w" "warn"
expect "ipsnat explain --mark " ""
expect "ipsnat status --ch" "--check"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/state.d"
expect "ipsnat --pin-root $tmp/sta" "$tmp/state.d"

# Under `set -o pipefail` (this script's, and some users' shells) an option's values are completed
# however the list of valued options reaches the check: here it ends with a line written 0.2 s
# after the rest, which kills a writer whose reader stops at its first match (a pipeline into
# `grep -q`) with SIGPIPE, as a busy machine sometimes did to the real list.
eval "_ipsnat_valued_listed() $(declare -f _ipsnat_valued | tail -n +2)"
_ipsnat_valued() { _ipsnat_valued_listed "$@"; sleep 0.2; printf '%s\n' --late-line; }
expect "ipsnat attach --mode " "auto policy route"
expect "ipsnat run --log-level w" "warn"
expect "ipsnat --pin-root $tmp/sta" "$tmp/state.d"
eval "_ipsnat_valued() $(declare -f _ipsnat_valued_listed | tail -n +2)"

# Devices: a namespace with two veths of known names; an attach record for one of them and one
# of another namespace.
if [[ $(id -u) == 0 ]] && unshare --net true 2>/dev/null; then
  export -f _ipsnat _ipsnat_path _ipsnat_takes_value _ipsnat_has _ipsnat_verbs _ipsnat_options _ipsnat_valued \
    _ipsnat_values _ipsnat_args _ipsnat_links _ipsnat_attached expect
  out=$(IPSNAT_STATE_DIR=$tmp unshare --net bash -c '
    set -euo pipefail
    failed=0
    ip link add cmpl0 type veth peer name cmpl1
    ns=$(stat -L -c %i /proc/self/ns/net)
    touch "'"$tmp"'/$ns@cmpl1.json" "'"$tmp"'/1@other0.json" "'"$tmp"'/$ns@cmpl1.log"
    expect "ipsnat attach " "cmpl0 cmpl1 lo"
    expect "ipsnat attach cm" "cmpl0 cmpl1"
    expect "ipsnat detach " "cmpl1"
    exit $failed' 2>&1) || failed=1
  echo "$out"
else
  echo "skip: device cases need root and unshare --net"
fi
exit $failed
