#!/usr/bin/env python3
"""Captures real NETLINK_XFRM policy messages as fuzz seeds (root; run inside a throwaway netns:
tests/fuzz/capture-xfrm-seeds.sh does that). Installs policies with `ip xfrm policy`, then saves
  dump-*.bin    each recv() buffer of an XFRM_MSG_GETPOLICY dump (several messages, NLMSG_DONE)
  event-*.bin   each notification (NEWPOLICY, UPDPOLICY, DELPOLICY, FLUSHPOLICY) as received
into OUTDIR."""
import os, socket, struct, subprocess, sys

NETLINK_XFRM = 6
XFRM_MSG_GETPOLICY = 21
XFRMNLGRP_POLICY = 4
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def ip(*args):
    subprocess.run(["ip", "xfrm", "policy", *args], check=True)

mon = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
mon.bind((0, 0))
mon.setsockopt(270, 1, XFRMNLGRP_POLICY)  # SOL_NETLINK, NETLINK_ADD_MEMBERSHIP
mon.settimeout(0.5)

tmpl = ["tmpl", "src", "200.2.2.2", "dst", "100.1.1.1", "proto", "esp", "reqid", "1", "mode", "tunnel"]
ip("add", "src", "10.20.30.2/32", "dst", "10.0.0.0/8", "dir", "out", "priority", "379519", *tmpl)
ip("add", "src", "10.0.0.0/8", "dst", "10.20.30.2/32", "dir", "in", "priority", "379519",
   "tmpl", "src", "100.1.1.1", "dst", "200.2.2.2", "proto", "esp", "reqid", "1", "mode", "tunnel")
ip("add", "src", "10.0.0.0/8", "dst", "10.20.30.2/32", "dir", "fwd", "priority", "379519",
   "tmpl", "src", "100.1.1.1", "dst", "200.2.2.2", "proto", "esp", "reqid", "1", "mode", "tunnel")
ip("add", "src", "172.16.0.0/24", "dst", "172.17.0.0/16", "proto", "tcp", "dport", "443", "dir", "out",
   "mark", "0x10", "mask", "0xf0", "if_id", "42", *tmpl[:-2], "mode", "tunnel",
   "tmpl", "src", "200.2.2.2", "dst", "100.1.1.1", "proto", "comp", "reqid", "2", "mode", "tunnel")
ip("add", "src", "0.0.0.0/0", "dst", "10.9.0.0/16", "dir", "out", "action", "block", "priority", "10")
ip("add", "src", "fd00::2/128", "dst", "fd01::/64", "dir", "out", "ptype", "sub",
   "tmpl", "src", "2001:db8::1", "dst", "2001:db8::2", "proto", "esp", "reqid", "3", "mode", "tunnel")
ip("update", "src", "10.20.30.2/32", "dst", "10.0.0.0/8", "dir", "out", "priority", "379518", *tmpl)
ip("delete", "src", "0.0.0.0/0", "dst", "10.9.0.0/16", "dir", "out")

d = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
d.bind((0, 0))
d.send(struct.pack("=IHHII", 16, XFRM_MSG_GETPOLICY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0))
n, done = 0, False
while not done:
    buf = d.recv(65536)
    open(f"{out}/dump-{n}.bin", "wb").write(buf)
    n += 1
    off = 0
    while off + 16 <= len(buf):
        ln, typ = struct.unpack_from("=IH", buf, off)
        done |= typ == 3  # NLMSG_DONE
        off += (ln + 3) & ~3 if ln else len(buf)

ip("deleteall", "dir", "fwd")
ip("flush")
ip("flush", "ptype", "sub")
e = 0
try:
    while True:
        buf = mon.recv(65536)
        open(f"{out}/event-{e}.bin", "wb").write(buf)
        e += 1
except socket.timeout:
    pass
print(f"{n} dump buffers, {e} events in {out}")
