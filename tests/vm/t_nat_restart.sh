#!/bin/bash
# vm-cost: 150
# shellcheck source-path=SCRIPTDIR
# Restart and upgrade without loss (issue 7, item 3) on policy-based IPsec with real ESP:
# one TCP flow lanhost -> chost sends a sequence number every 100 ms and checks every echo
# (tcpseq.py) while
#   1. the loader (attach's follower, the only ipsnat process left running) is killed with
#      SIGKILL: the programs stay attached and the flow keeps going with nothing running;
#   2. `ipsnat attach eth0` restarts it: pinned conntrack and SPD maps are adopted (same map
#      ids, the flow's translation kept), a freshly loaded program set replaces the attached
#      one (new program ids; TC replace and route replace are atomic), a new follower runs;
#   3. `ipsnat attach eth0` again with the follower alive (the upgrade path: one more program
#      replacement, and the old follower replaced by a new one);
# and at the end: no message lost, none out of order, no reset, nothing in cleartext on the
# transit for the whole run. (A conntrack schema change is tests/netns/t_attach_ct_schema.sh.)
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require

SEQ_TOOL=$VM_TESTS_DIR/tcpseq.py
PORT=5201

pinned_id() { bpftool -j map show pinned "$NAT_PIN_ROOT/$1" 2>/dev/null | python3 -S -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || echo 0; }
# The ids of the programs on eth0's TC hooks, "INGRESS/EGRESS".
tc_prog_ids() {
  local d ids=()
  for d in ingress egress; do
    ids+=("$(lab_exec gw tc filter show dev eth0 "$d" | sed -n 's/.* id \([0-9]*\).*/\1/p' | head -1)")
  done
  echo "${ids[0]:-none}/${ids[1]:-none}"
}
follower_pid() {
  python3 -S -c 'import glob,json,sys; print(next((json.load(open(f)).get("daemon_pid", 0) for f in glob.glob(sys.argv[1] + "/*@eth0.json")), 0))' \
    "$NAT_STATE_DIR"
}
alive() { (($1 > 0)) && kill -0 "$1" 2>/dev/null; }
echoed() { local s e; { read -r s e <"$PROGRESS"; } 2>/dev/null || e=0; echo "${e:-0}"; }
# flow_advances DESC: at least 10 more echoes arrive within 20 s.
flow_advances() {
  local from i now
  from=$(echoed)
  for ((i = 0; i < 100; i++)); do
    now=$(echoed)
    if ((now >= from + 10)); then ok "$1 (echo $from -> $now)"; return 0; fi
    _lab_sleep 0.2
  done
  fail "$1: echoes stuck at $(echoed) (from $from) for 20 s"
  nat_diag
  tail -n 20 "$NAT_STATE_DIR"/*.log 2>/dev/null | sed 's/^/      /' || true
}
flow_nat() { ipsnat_gw flows --proto tcp --port "$PORT" 2>/dev/null | sed -n "s/.* as \($LAB_NAT_IP:[0-9]*\) .*/\1/p" | head -1; }

lab_profile seed
step "$LAB_PROFILE: policy-based on eth0, a TCP flow through restarts and upgrades"
lab_up
lab_esp_policy_tunnel
lab_capture_start transit
expect_ok "ipsnat attach eth0" ipsnat_gw attach eth0

STOP=$LAB_STATE/seq.stop PROGRESS=$LAB_STATE/seq.progress RESULT=$LAB_STATE/seq.result
# The server outlives the scenario (its timeout bounds it): closing first would end the flow.
lab_exec chost timeout 900 python3 -S "$SEQ_TOOL" server "$PORT" 880 &
srv=$!
nat_wait_listen "$PORT" t
lab_exec lanhost timeout 900 python3 -S "$SEQ_TOOL" client "$LAB_CHOST_IP" "$PORT" 0.1 860 "$STOP" "$PROGRESS" \
  >"$RESULT" 2>&1 &
cli=$!
flow_advances "the flow runs"
ct_id=$(pinned_id ipsnat_ct) spd_id=$(pinned_id spd_dst) progs=$(tc_prog_ids) nat=$(flow_nat)
expect_gt "conntrack map pinned (id $ct_id)" "$ct_id" 0
expect_eq "ipsnat flows shows the flow translated" "${nat%:*}" "$LAB_NAT_IP"

step "kill -9 the loader"
pid=$(follower_pid)
expect_ok "attach's follower runs (pid $pid)" alive "$pid"
kill -KILL "$pid" 2>/dev/null || true
for ((i = 0; i < 25; i++)); do alive "$pid" || break; _lab_sleep 0.2; done
expect_fail "follower gone" alive "$pid"
expect_eq "programs stay attached (TC program ids)" "$(tc_prog_ids)" "$progs"
flow_advances "the flow keeps going with no ipsnat process"

step "restart: ipsnat attach eth0 adopts the pins and replaces the programs"
t0=$SECONDS
expect_ok "ipsnat attach eth0 (restart, ${SECONDS}s)" ipsnat_gw attach eth0
echo "   restart took $((SECONDS - t0))s"
expect_eq "conntrack map adopted (same id)" "$(pinned_id ipsnat_ct)" "$ct_id"
expect_eq "SPD map adopted (same id)" "$(pinned_id spd_dst)" "$spd_id"
expect_eq "the flow keeps its translation" "$(flow_nat)" "$nat"
progs2=$(tc_prog_ids)
[[ $progs2 != "$progs" && $progs2 != *none* ]] && ok "programs replaced ($progs -> $progs2)" ||
  fail "programs replaced: $progs -> $progs2"
pid2=$(follower_pid)
expect_ok "a new follower runs (pid $pid2)" alive "$pid2"
flow_advances "the flow keeps going after the restart"

step "upgrade: re-attach with the follower running"
expect_ok "ipsnat attach eth0 (upgrade)" ipsnat_gw attach eth0
progs3=$(tc_prog_ids)
[[ $progs3 != "$progs2" && $progs3 != *none* ]] && ok "programs replaced again ($progs2 -> $progs3)" ||
  fail "programs replaced again: $progs2 -> $progs3"
pid3=$(follower_pid)
expect_fail "the old follower was stopped" alive "$pid2"
expect_ok "a new follower runs (pid $pid3)" alive "$pid3"
expect_eq "conntrack map still the same" "$(pinned_id ipsnat_ct)" "$ct_id"
flow_advances "the flow keeps going after the upgrade"

step "end of the flow: every message accounted for"
touch "$STOP"
wait "$cli" || true
# The server may already have seen the client close and exited: kill then fails.
kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true
res=$(cat "$RESULT")
echo "   tcpseq: $res"
expect_eq "messages lost / out of order / resets" \
  "$(sed -E 's/.*lost=([0-9]+) misordered=([0-9]+) reset=([0-9]+).*/\1\/\2\/\3/' <<<"$res")" 0/0/0
sent=$(sed -nE 's/.*sent=([0-9]+).*/\1/p' <<<"$res")
expect_gt "messages exchanged" "${sent:-0}" 100
lab_capture_stop transit >/dev/null
expect_esp_both_ways "restart" transit
expect_no_leak "restart: no cleartext on transit during the whole run" transit

expect_ok "ipsnat detach eth0" ipsnat_gw detach eth0
lab_down
finish
