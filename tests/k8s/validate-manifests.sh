#!/bin/bash
# Unit-tier test: deploy/kubernetes/*.yaml against the Kubernetes API schema and ipsnat's rules.
# A negative control runs too: a copy with a schema error must be rejected, so the test cannot
# pass by validating nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
command -v node >/dev/null || { echo "SKIP: node is not installed (scripts/install-deps.sh installs it)"; exit 77; }
if [[ ! -d $here/node_modules/kubernetes-models || ! -d $here/node_modules/yaml ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) ||
    { echo "FAIL: npm ci in tests/k8s failed; run scripts/install-deps.sh with network access"; exit 1; }
fi

node "$here/validate.mjs" "$src/deploy/kubernetes"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$src"/deploy/kubernetes/*.yaml "$tmp/"
sed -i 's/containerPort: 9477/containerPort: "metrics-port"/' "$tmp/daemonset.yaml"
if node "$here/validate.mjs" "$tmp" 2>"$tmp/err"; then
  echo "FAIL: the negative control (containerPort as a string) was accepted"; exit 1
fi
grep -q 'containerPort must be integer' "$tmp/err" || { echo "FAIL: unexpected error:"; cat "$tmp/err"; exit 1; }
cp "$src"/deploy/kubernetes/*.yaml "$tmp/"
sed -i 's/add: \["BPF", "NET_ADMIN"\]/add: ["BPF", "NET_ADMIN", "SYS_PTRACE"]/' "$tmp/daemonset.yaml"
if node "$here/validate.mjs" "$tmp" 2>"$tmp/err"; then
  echo "FAIL: the negative control (extra capability) was accepted"; exit 1
fi
cp "$src"/deploy/kubernetes/*.yaml "$tmp/"
python3 - "$tmp/daemonset.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("""          hostPath:
            path: /run/ipsnat
            type: DirectoryOrCreate""", """          emptyDir:
            medium: Memory""")
open(p, "w").write(s)
PY
if node "$here/validate.mjs" "$tmp" 2>"$tmp/err"; then
  echo "FAIL: the negative control (attach state in an emptyDir) was accepted"; exit 1
fi
grep -q 'must be a hostPath volume of /run/ipsnat' "$tmp/err" || { echo "FAIL: unexpected error:"; cat "$tmp/err"; exit 1; }
echo "negative controls rejected as expected"
