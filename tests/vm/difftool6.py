#!/usr/bin/env python3
"""The IPv6 workload of tests/vm/t_recipe_diff6.sh: the same seeded flows run once per phase
(the netfilter recipe, ipsnat), judged against the recipe's outcome. Standard library only.

  plan SEED
      Print the flows of both LAN hosts, one per line.
  server ADDR PORTBASE STOPFILE SECONDS
      UDP echo on PORTBASE (the answer starts with the source it saw, "addr port|", then the
      datagram) and a TCP listener on PORTBASE+1 that sends the source it saw, until STOPFILE
      exists or SECONDS have passed. PORTBASE+9 stays closed.
  client SEED HOST PHASE CO_ADDR IN_ADDR PORTBASE [co]
      Run HOST's flows (co: only those to the company host) and print one JSON line per flow:
      reply (an answer came), peer (the source the far side saw), intact (the echo was the
      datagram), err "refused" (ICMPv6 port unreachable), icmp "TYPE/CODE" and frm (an ICMPv6
      error other than Packet Too Big, and the router that sent it), ptb (a Packet Too Big came
      first; the datagram was sent again at the new path MTU, as an application would).
  compare SEED DIR NAT_ADDR WAN_ADDR CO_HOP PHASES...
      Judge every flow of each phase (DIR/PHASE.HOST.out) against phase R; prints "ok ...",
      "FAIL ..." and "note ..." lines, exit 1 on a failure.

Every flow is bounded in packets and time, so a broken tunnel fails the scenario, never hangs it.
"""
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

CLOSED_OFFSET = 9
PAIRS = 4              # both hosts, the same source port, the same far end at once
SINGLES = 4            # per host
BIG_MIN, BIG_MAX = 1500, 4000   # fragmented by the LAN host (its link MTU is 1500)
HOP_CO = 2             # gw leaves 1, cgw forwarding the decrypted packet drops it
IPV6_RECVERR = 25      # linux/in6.h; the socket module does not name it
ICMP6_PTB = 2


def plan(seed: int):
    """Flows of both hosts: dicts id, host, kind (udp|tcp|ping|closed|big|hop), far (co|in),
    sport (0 for ping), size, pair (the pair's name or '')."""
    rng = random.Random(seed)
    used = set()
    flows = []

    def port():
        while True:
            p = rng.randint(1024, 65535)
            if p not in used:
                used.add(p)
                return p

    def add(host, kind, far, sport, size=48, pair="", **extra):
        flows.append(dict({"id": "f%02d" % (len(flows) + 1), "host": host, "kind": kind, "far": far,
                           "sport": sport, "size": size, "pair": pair}, **extra))

    for i in range(PAIRS):
        kind, far, sport = rng.choice(["udp", "tcp"]), rng.choice(["co", "in"]), port()
        add(1, kind, far, sport, pair="p%d" % (i + 1))
        add(2, kind, far, sport, pair="p%d" % (i + 1))
    for host in (1, 2):
        for _ in range(SINGLES):
            kind, far = rng.choice(["udp", "tcp", "ping"]), rng.choice(["co", "in"])
            add(host, kind, far, 0 if kind == "ping" else port(),
                size=rng.choice([56, 1200, 2000, 3000]) if kind == "ping" else 48)
        for far in ("co", "in"):
            add(host, "closed", far, port())
            add(host, "big", far, port(), size=rng.randint(BIG_MIN, BIG_MAX))
        add(host, "hop", "co", port(), hop=HOP_CO)
    return flows


def payload(f):
    return bytes((i * 7 + f["size"] + f["host"]) & 0xFF for i in range(f["size"]))


def server(addr, portbase, stopfile, seconds):
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind((addr, portbase))
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, portbase + 1))
    t.listen(32)
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stopfile):
        ready, _, _ = select.select([u, t], [], [], 0.5)
        for s in ready:
            if s is u:
                d, p = u.recvfrom(65535)
                u.sendto(("%s %d|" % (p[0], p[1])).encode() + d, p)
                print("udp", p[0], p[1], flush=True)
            else:
                c, p = t.accept()
                c.settimeout(3)
                try:
                    c.sendall(("%s %d\n" % (p[0], p[1])).encode())
                except OSError:
                    pass
                c.close()
                print("tcp", p[0], p[1], flush=True)
    return 0


def icmp_error(s):
    """(type, code, info, offender) of the ICMPv6 error on s's error queue, or None."""
    try:
        _, anc, _, _ = s.recvmsg(2048, 512, socket.MSG_ERRQUEUE)
    except OSError:
        return None
    for lvl, _, data in anc:
        if lvl == socket.IPPROTO_IPV6 and len(data) >= 16 + 24:
            _, _, etype, ecode, _, info = struct.unpack("=IBBBBI", data[:12])
            return etype, ecode, info, socket.inet_ntop(socket.AF_INET6, data[16 + 8:16 + 24])
    return None


def udp(f, dst, port):
    """Up to three sends, 3 s in all; a Packet Too Big restarts the clock once (the kernel then
    fragments at the new path MTU)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    if f.get("hop"):
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, f["hop"])
    s.bind(("::", f["sport"]))
    s.connect((dst, port))
    data = payload(f)
    res = {"reply": False}
    end = time.monotonic() + 3
    for _ in range(4):
        if time.monotonic() >= end:
            break
        try:
            s.send(data)
        except OSError:
            pass
        while time.monotonic() < end:
            r, _, _ = select.select([s], [], [], min(1.0, max(0.0, end - time.monotonic())))
            if not r:
                break
            try:
                head, _, body = s.recv(65535).partition(b"|")
                res.update(reply=True, peer=head.decode(), intact=body == data)
                return res
            except ConnectionRefusedError:
                res["err"] = "refused"
                return res
            except OSError:
                e = icmp_error(s)
                if e and e[0] == ICMP6_PTB and "ptb" not in res:
                    res["ptb"] = e[2]
                    end = time.monotonic() + 3
                    break
                if e:
                    res.update(icmp="%d/%d" % e[:2], frm=e[3])
                    return res
    return res


def tcp(f, dst, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", f["sport"]))
    s.settimeout(4)
    try:
        s.connect((dst, port))
        return {"reply": True, "peer": s.recv(200).decode().strip()}
    except ConnectionRefusedError:
        return {"reply": False, "err": "refused"}
    except OSError:
        return {"reply": False}
    finally:
        s.close()


def ping(f, dst):
    """Four echoes: a large one meets two Packet Too Big on its way (the gateway's to the LAN
    host, cgw's to chost about the reply), each costing one echo, whatever translates it; its
    later echoes must come back."""
    r = subprocess.run(["ping", "-6", "-n", "-q", "-c", "4", "-i", "0.3", "-W", "2", "-s", str(f["size"]), dst],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
    return {"reply": r.returncode == 0}


def client(seed, host, phase, co, inet, portbase, only=""):
    flows = [f for f in plan(seed) if f["host"] == host and (only != "co" or f["far"] == "co")]
    # The pairs first: both hosts start at once, so these race for the same binding.
    for f in flows:
        dst = co if f["far"] == "co" else inet
        if f["kind"] in ("udp", "big", "hop"):
            r = udp(f, dst, portbase)
        elif f["kind"] == "closed":
            r = udp(f, dst, portbase + CLOSED_OFFSET)
        elif f["kind"] == "tcp":
            r = tcp(f, dst, portbase + 1)
        else:
            r = ping(f, dst)
        print(json.dumps(dict(r, id=f["id"], phase=phase)), flush=True)
    return 0


def compare(seed, d, nat_addr, wan_addr, co_hop, phases):
    flows = plan(seed)
    res = {}
    for ph in ["R", *phases]:
        for h in (1, 2):
            try:
                with open(os.path.join(d, "%s.%d.out" % (ph, h))) as fh:
                    for line in fh:
                        if line.startswith("{"):
                            r = json.loads(line)
                            res[(ph, r["id"])] = r
            except OSError:
                pass
    fails = 0

    def check(okay, desc):
        nonlocal fails
        print(("ok " if okay else "FAIL ") + desc)
        fails += not okay

    def outcome(r):
        """What the LAN host saw in the end; where a Packet Too Big came from and the MTU it
        named are the gateway's (ipsnat's locked route MTU, the xfrm MTU under netfilter)."""
        return None if r is None else {k: r.get(k) for k in ("reply", "intact", "err", "icmp", "frm")}

    def kept(r, f):
        return bool(r and r.get("peer")) and r["peer"].split()[1] == str(f["sport"])

    want = {"co": nat_addr, "in": wan_addr}
    r_flows = [f for f in flows if (("R", f["id"]) in res)]
    check(len(r_flows) == len(flows), "phase R ran every flow (%d of %d)" % (len(r_flows), len(flows)))
    hops = [f for f in flows if f["kind"] == "hop"]
    hop_r = [res.get(("R", f["id"]), {}) for f in hops]
    check(all(r.get("icmp") == "3/0" and r.get("frm") == co_hop for r in hop_r),
          "phase R: each hop-limit probe got the time exceeded from %s (%s)"
          % (co_hop, ", ".join("%s from %s" % (r.get("icmp"), r.get("frm")) for r in hop_r)))
    for ph in phases:
        mine = [f for f in flows if (ph, f["id"]) in res]
        check(len(mine) > 0, "phase %s ran %d flows" % (ph, len(mine)))
        same = [f for f in mine if outcome(res[(ph, f["id"])]) == outcome(res.get(("R", f["id"])))]
        for f in mine:
            if f not in same:
                print("note %s %s host %d %s %s sport %d: R %s, %s %s" % (ph, f["id"], f["host"], f["kind"], f["far"],
                                                                       f["sport"], res.get(("R", f["id"])), ph,
                                                                       res[(ph, f["id"])]))
        check(len(same) == len(mine), "phase %s: every flow ends as in R (%d of %d)" % (ph, len(same), len(mine)))
        seen = [f for f in mine if res[(ph, f["id"])].get("peer")]
        wrong = [f["id"] for f in seen if res[(ph, f["id"])]["peer"].split()[0] != want[f["far"]]]
        check(not wrong and len(seen) > 0,
              "phase %s: the far side saw %s (company) or %s (internet) for each of %d answered flows%s"
              % (ph, nat_addr, wan_addr, len(seen), (": not " + " ".join(wrong)) if wrong else ""))
        single = [f for f in seen if not f["pair"] and f["kind"] != "ping" and kept(res.get(("R", f["id"])), f)]
        moved = [f["id"] for f in single if not kept(res[(ph, f["id"])], f)]
        check(not moved, "phase %s: the source port kept wherever R kept it (%d flows)%s"
              % (ph, len(single), (": not " + " ".join(moved)) if moved else ""))
        for name in sorted({f["pair"] for f in mine if f["pair"]}):
            pair = [f for f in mine if f["pair"] == name]
            rs = [res[(ph, f["id"])] for f in pair]
            if len(pair) != 2 or not all(res.get(("R", f["id"]), {}).get("reply") for f in pair):
                continue
            peers = {r.get("peer") for r in rs}
            check(all(r.get("reply") for r in rs) and len(peers) == 2 and any(kept(r, f) for r, f in zip(rs, pair)),
                  "phase %s: pair %s (%s to %s, both hosts from port %d): both answered as distinct tuples, "
                  "one keeping its port (%s)" % (ph, name, pair[0]["kind"], pair[0]["far"], pair[0]["sport"],
                                                 ", ".join(sorted(str(p) for p in peers))))
    return 1 if fails else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    mode, a = argv[1], argv[2:]
    if mode == "plan":
        for f in plan(int(a[0])):
            print(" ".join("%s=%s" % (k, f[k]) for k in sorted(f)))
        return 0
    if mode == "server":
        return server(a[0], int(a[1]), a[2], float(a[3]))
    if mode == "client":
        return client(int(a[0]), int(a[1]), a[2], a[3], a[4], int(a[5]), a[6] if len(a) > 6 else "")
    if mode == "compare":
        return compare(int(a[0]), a[1], a[2], a[3], a[4], a[5:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
