#!/bin/bash
# stress_text_poke.sh: not a scenario of the tier (run-all.sh runs t_*.sh); a stress of the VM
# harness itself. The guest kernel patches its own text while both vCPUs forward traffic:
# t_nat_vti's lab (seed profile, VTI vti0, `ipsnat attach vti0`), UDP floods from lanhost and
# lanhost2 through the tunnel (sockets without timestamps), and a loop in gw that opens and
# closes a socket with SO_TIMESTAMP, so the kernel flips netstamp_needed_key (text_poke_bp of
# every net_timestamp_check() site, one on the receive path of every flood packet) many times
# a second. Passes when the guest survives STRESS_SECS (default 600) and the floods got
# through; a guest that executes stale text panics (the harness: rc 125, "guest kernel panic").
#   IPSNAT_VM_TCG_THREAD=multi scripts/vm/ipsnat-vm -d "$PWD" -t 900 -- bash tests/vm/stress_text_poke.sh
# panicked within minutes on QEMU 7.2 (scripts/vm/ipsnat-vm, ACCEL, says why); the default,
# thread=single, is what this checks.
# shellcheck source=natlib.sh
source "$(dirname "$0")/natlib.sh"
nat_require
lab_profile seed
lab_up
lab_esp_vti vti0
expect_ok "ipsnat attach vti0" ipsnat_gw attach vti0
nat_check_ping lanhost
secs=${STRESS_SECS:-600}
flood='import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, n = time.monotonic() + float(sys.argv[3]), 0
while time.monotonic() < end:
    s.sendto(b"x" * 64, (sys.argv[1], int(sys.argv[2]))); n += 1
print(n)'
# SO_TIMESTAMP is 29 on x86 (Python's socket module does not name it).
toggle='import socket, sys, time
end, n = time.monotonic() + float(sys.argv[1]), 0
while time.monotonic() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 29, 1)
    s.close(); n += 1
    time.sleep(0.001)
print(n)'
echo_srv='import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
n = 0
while True:
    d, a = s.recvfrom(2048); s.sendto(d, a); n += 1
    if n % 1000 == 0: open(sys.argv[2], "w").write(str(n))'
port=5003 echoed=$LAB_STATE/echoed
lab_exec chost timeout $((secs + 60)) python3 -S -c "$echo_srv" "$port" "$echoed" & srv=$!
nat_wait_listen "$port" u
step "UDP floods through vti0 and netstamp_needed_key flipping in gw, ${secs}s"
lab_exec lanhost timeout $((secs + 30)) python3 -S -c "$flood" "$LAB_CHOST_IP" "$port" "$secs" >"$LAB_STATE/f1" & f1=$!
lab_exec lanhost2 timeout $((secs + 30)) python3 -S -c "$flood" "$LAB_CHOST_IP" "$port" "$secs" >"$LAB_STATE/f2" & f2=$!
lab_exec gw timeout $((secs + 30)) python3 -S -c "$toggle" "$secs" >"$LAB_STATE/toggles" & tg=$!
for ((i = 0; i < secs / 60 + 2; i++)); do
  kill -0 "$f1" 2>/dev/null || break
  sleep 60
  echo "   [${SECONDS}s] alive, chost echoed $(cat "$echoed" 2>/dev/null || echo 0)"
done
wait "$f1" "$f2" "$tg" || true
kill "$srv" 2>/dev/null || true
wait "$srv" 2>/dev/null || true
echo "   sent $(cat "$LAB_STATE/f1") + $(cat "$LAB_STATE/f2") datagrams; $(cat "$LAB_STATE/toggles") timestamped sockets"
expect_gt "the tunnel carried the floods (chost echoed)" "$(cat "$echoed" 2>/dev/null || echo 0)" 1000
expect_gt "gw opened timestamped sockets (netstamp_needed_key flipped)" "$(cat "$LAB_STATE/toggles" 2>/dev/null || echo 0)" 1000
finish
