#!/bin/bash
# The lab library's two readers of one topology file agree: scripts/lab/gateway.topo built by the
# shell (t_gateway, what the netns tests use) and by Python (Lab.topology, what the benchmark
# uses), and scripts/lab/lab.topo by lab_up (the VM lab and the demo) and by Python, each with the
# same values, leave the same links, masters, addresses, routes and sysctls. The gateway built
# this way carries traffic on both links. A variable the file names but the caller
# did not set fails both readers, naming the file and line.
source "$(dirname "$0")/lib.sh"
t_tmpdir
lib=$IPSNAT_SRC/scripts/lab

# dump NS...: each namespace's state without what differs between two equal builds (indexes,
# MAC addresses, carrier timing); the namespace's own prefix is cut to its role.
dump() {
  local ns
  for ns; do
    echo "== ${ns##*-}"
    ip -n "$ns" -o link show | sed -E 's/^[0-9]+: //; s/@if[0-9]+//; s/\\ +link\/.*//; s/(NO-CARRIER,|,LOWER_UP| state [A-Z]+)//g'
    ip -n "$ns" -br addr show | sed -E 's/@if[0-9]+//' | awk '{ $2 = ""; print }'
    ip -n "$ns" route show table all
    lab_in "$ns" sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.disable_ipv6
  done
}

py_topology() {  # py_topology PREFIX NAME ROLE... : Python builds NAME with these roles; values from the environment
  python3 - "$lib" "$@" <<'PY'
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from netns import Lab
prefix, name, roles = sys.argv[2], sys.argv[3], sys.argv[4:]
values = {k[3:]: v for k, v in os.environ.items() if k.startswith("TV_")}
# Not `with`: the namespaces stay for the comparison; the scenario's lab_down removes them.
Lab(prefix).topology(name, {r: r for r in roles}, **values)
PY
}

echo "== gateway.topo: shell and Python"
t_gateway_netns
t_gateway "$lan" "$gw" "$wan" uplink=up0 host=172.31.7.10/24 gw_lan=172.31.7.1 gw_wan=198.51.100.2/24 \
  wan=198.51.100.1 remote=10.77.0.1 remote_net=10.77.0.0/16
TV_lan_dev=lan1 TV_gw_lan_dev=lan0 TV_uplink=up0 TV_wan_dev=eth1 TV_host=172.31.7.10 TV_lan_plen=24 \
  TV_gw_lan=172.31.7.1 TV_gw_wan=198.51.100.2 TV_wan_plen=24 TV_wan_ip=198.51.100.1 TV_remote=10.77.0.1 \
  TV_remote_net=10.77.0.0/16 py_topology "$LAB_PREFIX-py-" gateway lan gw wan
dump "$lan" "$gw" "$wan" >"$T_TMP/gw.sh"
dump "$LAB_PREFIX-py-lan" "$LAB_PREFIX-py-gw" "$LAB_PREFIX-py-wan" >"$T_TMP/gw.py"
expect_ok "gateway.topo: Python builds what the shell builds" diff "$T_TMP/gw.sh" "$T_TMP/gw.py"
expect_ok "gateway.topo: the dump is not empty (lan1, up0, routes)" \
  grep -q "default via 172.31.7.1 dev lan1" "$T_TMP/gw.sh"
expect_ok "gateway.topo: the LAN host reaches gw's uplink address" t_in "$lan" ping -n -q -c 1 -W 2 198.51.100.2
expect_ok "gateway.topo: gw reaches the remote address on wan's lo" t_in "$gw" ping -n -q -c 1 -W 2 10.77.0.1

echo "== lab.topo (profile alt): lab_up and Python"
(
  export LAB_PREFIX=$LAB_PREFIX-sh LAB_STATE=$T_TMP/lab LAB_PROFILE=alt
  source "$lib/lab.sh"
  lab_up
  for v in "${!LAB_@}"; do export "TV_$v=${!v}"; done
  py_topology "$LAB_PREFIX-py2-" lab lanhost lanhost2 lansw gw transit cgw chost
)
roles=(lanhost lanhost2 lansw gw transit cgw chost)
dump "${roles[@]/#/$LAB_PREFIX-sh-}" >"$T_TMP/lab.sh"
dump "${roles[@]/#/$LAB_PREFIX-sh-py2-}" >"$T_TMP/lab.py"
expect_ok "lab.topo: Python builds what lab_up builds" diff "$T_TMP/lab.sh" "$T_TMP/lab.py"
expect_ok "lab.topo: lanhost2's port is in the bridge" grep -q "p-h2: .* master br0" "$T_TMP/lab.sh"

echo "== an unset variable fails both readers, naming the file and line"
unset_var() { local lan_dev=x; lab_topology "$lib/gateway.topo" lan="$lan" gw="$gw" wan="$wan"; }
out=$(unset_var 2>&1) && rc=0 || rc=$?
expect_ok "shell: refused ($out)" eval '((rc != 0)) && [[ $out == *"gateway.topo:"*"is not set"* ]]'
out=$(py_topology "$LAB_PREFIX-py3-" gateway lan gw wan 2>&1) && rc=0 || rc=$?
expect_ok "Python: refused (${out##*$'\n'})" eval '((rc != 0)) && [[ $out == *"gateway.topo:"*"is not set"* ]]'
finish
