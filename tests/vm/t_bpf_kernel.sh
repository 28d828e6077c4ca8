#!/bin/bash
# vm-cost: 60
# shellcheck source-path=SCRIPTDIR
# The bpf tier's conntrack, NAPT and port-forward cases on the VM's older kernel (Debian 6.1),
# not only on the build host's: helper semantics differ between kernels (before 6.4 a map
# update's error came back zero-extended, which turned every NAT port search into "conntrack
# full" on 6.1 while the same tests passed on 6.18); and the verifier's instruction count of every
# program there (6.1's verifier walks the datapath with far more states than 6.18's).
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

bin=${IPSNAT_BPF_TESTS:-}
if [[ -z $bin ]]; then
  for c in "$REPO_ROOT"/build/tests/ipsnat_bpf_tests "$REPO_ROOT"/build-*/tests/ipsnat_bpf_tests; do
    [[ -x $c && ( -z $bin || $c -nt $bin ) ]] && bin=$c
  done
fi
[[ -n $bin && -x $bin ]] || skip "no ipsnat_bpf_tests binary (build first, or set IPSNAT_BPF_TESTS)"
step "verifier budget on $(uname -r): every program within 75 % of the 1,000,000-instruction limit"
budget=$(dirname "$bin")/ipsnat_verifier_budget
obj=$(dirname "$bin")/../generated/bpf/ipsnat_bpf.bpf.o
expect_ok "every program loads within the budget (verifier-budget.c)" timeout 300 "$budget" "$obj"
step "bpf tier subset on $(uname -r): ${IPSNAT_VM_BPF_FILTER:=Nat.TwoHosts*:Nat.PortRange*:Forward.Tcp*}"
expect_ok "bpf tests pass on this kernel" timeout 400 "$bin" --gtest_filter="$IPSNAT_VM_BPF_FILTER" --gtest_brief=1
finish
