#!/bin/bash
# ipsnat shares its TC hooks: a packet it passes untouched goes on to the hook's later filters
# (TC_ACT_UNSPEC), and attach and status warn about programs that run before ipsnat's filter and
# may end classification (a clsact filter with a lower priority number, a tcx program).
# The other programs are two-instruction BPF programs loaded with bpf(2) from Python: this
# machine's kernel has no matchall/gact modules and its bpftool predates tcx.
source "$(dirname "$0")/lib.sh"
t_require_bpffs
t_private_roots

t_gateway_netns
t_gateway "$lan" "$gw" "$wan" uplink=eth0 remote_net=default
t_seed_out_policy "$gw"
t_wait_links_up "$lan" "$gw" "$wan"
progs="/sys/fs/bpf/ipsnat-t$$-progs"
mkdir -p "$progs"
trap 't_cleanup; rm -rf "$progs"' EXIT

# prog VERDICT NAME [tcx-egress]: a SCHED_CLS program "r0 = VERDICT; exit" pinned as $progs/NAME,
# or attached to eth0's tcx egress hook.
prog() {
  t_in "$gw" python3 - "$1" "$2" "$progs/$2" "${3:-}" <<'PY'
import ctypes, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf, BPF_PROG_LOAD, BPF_OBJ_PIN, BPF_PROG_ATTACH = 321, 5, 6, 8
SCHED_CLS, TCX_EGRESS = 3, 47
verdict, name, path, tcx = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4]
insns = struct.pack("<BBhi", 0xb7, 0, 0, verdict) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = verdict; exit
ib, lic, pb = ctypes.create_string_buffer(insns, len(insns)), ctypes.create_string_buffer(b"GPL"), ctypes.create_string_buffer(path)
def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    rc = libc.syscall(SYS_bpf, cmd, buf, 128)
    assert rc >= 0, os.strerror(ctypes.get_errno())
    return rc
fd = bpf(BPF_PROG_LOAD, struct.pack("<IIQQIIQII16s", SCHED_CLS, 2, ctypes.addressof(ib), ctypes.addressof(lic),
                                      0, 0, 0, 0, 0, name))
if tcx:
    bpf(BPF_PROG_ATTACH, struct.pack("<III", socket.if_nametoindex("eth0"), fd, TCX_EGRESS))
else:
    bpf(BPF_OBJ_PIN, struct.pack("<QI", ctypes.addressof(pb), fd))
PY
}
pings() { ip netns exec "$gw" ping -c 3 -i 0.2 -W 1 200.2.2.1 >/dev/null 2>&1; }
no_pings() { ! pings; }

out=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1)
expect_ok "attach succeeds without warnings about earlier programs" bash -c '! grep -q "runs before ipsnat" <<<"$1"' _ "$out"
expect_ok "the gateway reaches its next hop" pings

# (`tc -n` remounts /sys and would not see the pins: t_in.)
# A later filter (higher priority number) that drops everything: it runs only when ipsnat's
# filter lets classification continue, so the pings fail while it is there.
prog 2 t_shot
for hook in egress ingress; do
  t_in "$gw" tc filter add dev eth0 "$hook" prio 1000 handle 7 bpf da object-pinned "$progs/t_shot"
  expect_ok "a later $hook filter runs after ipsnat passed the packet" no_pings
  tc -n "$gw" filter del dev eth0 "$hook" prio 1000
  expect_ok "and without it the pings pass again" pings
done

# An earlier filter that passes everything would skip the guard: attach (again) and status warn.
prog 0 ok
t_in "$gw" tc filter add dev eth0 egress prio 1 handle 9 bpf da object-pinned "$progs/ok"
out=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1)
expect_ok "attach warns about the earlier filter" grep -q 'eth0 egress: filter prio 1 bpf.* runs before ipsnat' <<<"$out"
status=$(t_in "$gw" "$IPSNAT" status)
expect_ok "status warns about the earlier filter" grep -q 'warning: filter prio 1 bpf.* runs before it' <<<"$status"
tc -n "$gw" filter del dev eth0 egress prio 1

# A tcx program runs before every clsact filter.
prog 0 t_tcx_pass tcx-egress
out=$(t_in "$gw" "$IPSNAT" attach eth0 2>&1)
expect_ok "attach warns about the tcx program" grep -q 'eth0 egress: tcx program [0-9]* (t_tcx_pass) runs before ipsnat' <<<"$out"
status=$(t_in "$gw" "$IPSNAT" status)
expect_ok "status warns about the tcx program" grep -q 'warning: tcx program [0-9]* (t_tcx_pass) runs before it' <<<"$status"
((FAILS)) && echo "$out" "$status" >&2

expect_ok "detach succeeds" t_in "$gw" "$IPSNAT" detach eth0
finish
