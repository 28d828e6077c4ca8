# shellcheck shell=bash
# assert.sh: the one assertion vocabulary of the shell tests (tests/netns, tests/vm, tests/bench).
# Source it; it defines functions and FAILS and runs nothing. A failed expectation is recorded
# and the test goes on, so one run reports every broken expectation; `finish` ends the test with
# 0 when all held, 1 otherwise. Every message names what was expected, so a failure explains
# itself in the CI log. Exit codes of a test: 0 pass, 77 skip, anything else fail.

[[ -n ${_LAB_ASSERT_SH_LOADED:-} ]] && return 0
_LAB_ASSERT_SH_LOADED=1

FAILS=0
step() { echo "== [${SECONDS}s] $*"; }
ok() { echo "   ok [${SECONDS}s]: $*"; }
fail() { echo "   FAIL: $*"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP: $*"; exit 77; }
finish() {
  if ((FAILS)); then echo "$FAILS expectation(s) failed"; exit 1; fi
  echo "all expectations held"
  exit 0
}
# expect_ok DESC CMD...: CMD must succeed.  expect_fail DESC CMD...: must fail.
expect_ok() { local d=$1; shift; if "$@"; then ok "$d"; else fail "$d (command failed: $*)"; fi; }
expect_fail() { local d=$1; shift; if "$@"; then fail "$d (command unexpectedly succeeded: $*)"; else ok "$d"; fi; }
# expect_eq DESC GOT WANT / expect_gt DESC GOT MIN (integers).
expect_eq() { if [[ $2 == "$3" ]]; then ok "$1 ($2)"; else fail "$1: got $2, want $3"; fi; }
expect_gt() { if (($2 > $3)); then ok "$1 ($2)"; else fail "$1: got $2, want > $3"; fi; }
