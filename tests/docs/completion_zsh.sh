#!/bin/bash
# The generated zsh completion: `zsh -n` accepts it, and its function, run in zsh with the
# completion system's builtins recorded instead of displayed (compadd, _describe, _files),
# offers the verbs, a nested verb, options and an option's values.
# Usage: completion_zsh.sh COMPLETION_FILE; exit 77 (skipped) without zsh.
set -euo pipefail
command -v zsh >/dev/null || { echo "skip: no zsh"; exit 77; }
zsh -n "$1"
echo "ok: zsh -n"
zsh -f -c '
  offered=()
  # As the real ones do, they offer only what starts with the word being completed.
  offer() { [[ $1 == ${words[CURRENT]}* ]] && offered+=("$1"); return 0; }
  compadd() { local item; [[ $1 == -a ]] && for item in ${(P)2}; do offer "$item"; done; }
  _describe() { local item; for item in ${(P)${@[-1]}}; do offer "${item%%:*}"; done; }
  _files() { offered+=(@files $@); }
  words=(ipsnat "") CURRENT=2
  source "$1" >/dev/null
  failed=0
  expect() {  # expect "WORDS..." "EXPECTED"
    words=(${(s: :)1})
    [[ $1 == *" " ]] && words+=("")
    CURRENT=${#words}
    offered=()
    _ipsnat
    local -a sorted=(${(o)offered})
    local got="${(j: :)sorted}"
    if [[ $got == "$2" ]]; then print -r -- "ok: zsh '\''$1'\'' -> $got"; else print -r -- "FAIL: zsh '\''$1'\'' -> '\''$got'\'', expected '\''$2'\''" >&2; failed=1; fi
  }
  expect "ipsnat " "attach check detach explain flows policies run status"
  expect "ipsnat flows " "flush"
  expect "ipsnat flows flush --p" "--pin-root --port --pretty --proto"
  expect "ipsnat attach --mode " "auto policy route"
  expect "ipsnat run --config " "@files"
  expect "ipsnat --pin-root " "-/ @files"
  expect "ipsnat -j --pin-root /x fl" "flows"
  exit $failed
' zsh "$1"
