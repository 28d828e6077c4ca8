#!/bin/bash
# ipsnat(8) renders without a warning (groff -ww, man -l) and documents what --help shows: every
# verb (nested ones too) as a COMMANDS heading, and every option each verb's --help lists.
# Usage: man_page.sh IPSNAT MAN_PAGE
set -euo pipefail
ipsnat=$1 page=$2
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || fail "groff exited $?"
[[ -z $warnings ]] || fail "groff warnings: $warnings"
warnings=$(man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l exited $?"
[[ -z $warnings ]] || fail "man -l warnings: $warnings"
text=$(MANWIDTH=200 man -l "$page" 2>/dev/null | col -b)
for section in NAME SYNOPSIS DESCRIPTION OPTIONS COMMANDS EXAMPLES FILES ENVIRONMENT "SEE ALSO"; do
  grep -qx "$section" <<<"$text" || fail "no section $section"
done

# The verbs and options as CLI11's own help formatter prints them.
subcommands() { "$ipsnat" $1 --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'; }
options() { "$ipsnat" $1 --help | sed -n '/^Options:/,/^$/p' | grep -oE '(^|[ ,])-{1,2}[a-zA-Z][-a-zA-Z]*' | tr -d ' ,'; }
verbs=()
for v in $(subcommands ""); do
  verbs+=("$v")
  for sub in $(subcommands "$v"); do verbs+=("$v $sub"); done
done
((${#verbs[@]} >= 8)) || fail "only ${#verbs[@]} verbs found in --help"
for v in "${verbs[@]}"; do
  heading=$(grep -E "^   ipsnat $v( \[|$| [A-Z])" <<<"$text" || true)
  [[ -n $heading ]] || { fail "verb '$v' has no heading"; continue; }
  # The verb's block: from its heading to the next heading.
  block=$(awk -v h="$heading" '$0 == h { on = 1; next } on && /^   ipsnat / { exit } on' <<<"$text")
  for opt in $(options "$v"); do
    [[ $opt == -h || $opt == --help ]] && continue
    grep -qE -- "(^|[ ,])$opt([ ,]|$)" <<<"$block" || fail "ipsnat $v: option $opt missing"
  done
done
for opt in $(options ""); do
  grep -qE -- "(^|[ ,])$opt([ ,]|$)" <<<"$(sed -n '/^OPTIONS$/,/^COMMANDS$/p' <<<"$text")" || fail "global option $opt missing"
done
((failed)) && exit 1
echo "ok: ipsnat.8 renders cleanly and documents ${#verbs[@]} verbs"
