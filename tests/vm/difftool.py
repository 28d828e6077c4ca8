#!/usr/bin/env python3
"""The seeded workload of tests/vm/t_recipe_diff.sh: one process per host, every wait bounded.

The same seed gives every process the same plan (plan()): flows of lanhost (host 1) and lanhost2
(host 2) to the company host ("co", through ESP) and to the internet host ("in"): UDP echo, TCP,
ICMP echo with a chosen identifier, and a UDP datagram to a closed port. Source ports (echo ids)
are drawn from classes (ephemeral-like, high, mid, low, odd values); some flows are collision
pairs: the same protocol, source port (id) and destination on both LAN hosts, which the NAT must
tell apart.

  plan SEED
      Print the plan, one flow a line.
  server ADDR PORTBASE STOPFILE SECONDS
      UDP echo and TCP on ADDR:PORTBASE..PORTBASE+NPORTS-1 (bound to ADDR, so answers leave
      from the address the client sent to, not the one routing picks on a host with several;
      PORTBASE+CLOSED_OFFSET stays closed), and a raw ICMP socket. A datagram is answered with "seen ADDR:PORT TAG", a TCP connection with
      "seen ADDR:PORT" (the peer this host saw). Logs "udp|tcp ADDR:PORT TAG" and "icmp ADDR ID
      TAG" (echo requests of this workload) at once, until STOPFILE exists or SECONDS passed.
  client SEED HOST PHASE CO_ADDR IN_ADDR PORTBASE DONEDIR
      Run HOST's flows of the plan at once, wait for their answers (<= 20 s), print one JSON
      object per flow, then write DONEDIR/PHASE.HOST and keep the TCP connections open until
      every host's file is there (<= 30 s), so colliding flows overlap; close them with a reset.
  compare SEED DIR NAT_ADDR WAN_ADDR NAPT_MIN NAPT_MAX MASQ_MIN MASQ_MAX LAN_NET...
      Judge DIR's client outputs (R.1, R.2, I.1, ... .out) and server logs (co.log, in.log):
      prints "ok DESC" / "FAIL DESC" lines, what each NAT chose for the colliding pairs
      ("pairs ..."), the documented deviations ("note ..."), and a per-flow table ("table ...")
      of every flow that differs (of all with IPSNAT_DIFF_TABLE set).
  ct-flush
      Flush this namespace's netfilter conntrack table (ctnetlink IPCTNL_MSG_CT_DELETE, no
      attributes), as `conntrack -F` does.
"""
import errno
import ipaddress
import json
import os
import random
import selectors
import socket
import struct
import sys
import time

NPORTS = 4           # server ports PORTBASE..PORTBASE+3, UDP and TCP
CLOSED_OFFSET = 9    # PORTBASE+9: nobody listens (UDP)
MAGIC = b"IPSNATDIFF"
PHASES = ("R", "I", "M")
COLL_PAIRS = 6
SINGLES = 20


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --- the plan -----------------------------------------------------------------
def plan(seed: int):
    """Flows of both hosts: dicts id, host, kind (udp|tcp|icmp|closed), far (co|in), dport
    offset (doff), sport (echo id for icmp), cls (the port's class), pair (id of the pair or '')."""
    rng = random.Random(seed)
    used = {"udp": set(), "tcp": set(), "icmp": set()}   # over both hosts: no unplanned collision

    def space(kind):
        return "udp" if kind == "closed" else kind

    def draw(kind, cls=None):
        cls = cls or rng.choices(["eph", "high", "mid", "low", "odd"], [5, 2, 2, 2, 1])[0]
        for _ in range(1000):
            if cls == "eph":
                p = rng.randint(32768, 60999)
            elif cls == "high":
                p = rng.randint(61000, 65535)
            elif cls == "mid":
                p = rng.randint(1024, 32767)
            elif cls == "low":
                p = rng.randint(1, 1023)
            else:
                p = rng.choice([1, 7, 53, 123, 500, 1023, 1024, 4500, 32767, 32768, 60999, 61000, 65535])
            if p not in used[space(kind)]:
                used[space(kind)].add(p)
                return p, cls
        raise RuntimeError("no free port")

    flows = []
    n = 0

    def add(host, kind, far, doff, sport, cls, pair=""):
        nonlocal n
        n += 1
        flows.append({"id": "f%02d" % n, "host": host, "kind": kind, "far": far, "doff": doff,
                      "sport": sport, "cls": cls, "pair": pair})

    kinds = ["udp", "tcp", "icmp"] + rng.choices(["udp", "tcp", "icmp"], [2, 2, 1], k=COLL_PAIRS - 3)
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        far = rng.choice(["co", "in"])
        doff = 0 if kind == "icmp" else rng.randrange(NPORTS)
        sport, cls = draw(kind)
        pair = "p%d" % (i + 1)
        add(1, kind, far, doff, sport, cls, pair)
        add(2, kind, far, doff, sport, cls, pair)
    for host in (1, 2):
        for far in ("co", "in"):
            sport, cls = draw("closed")
            add(host, "closed", far, CLOSED_OFFSET, sport, cls)
        for _ in range(SINGLES):
            kind = rng.choices(["udp", "tcp", "icmp"], [4, 4, 2])[0]
            far = rng.choice(["co", "in"])
            doff = 0 if kind == "icmp" else rng.randrange(NPORTS)
            sport, cls = draw(kind)
            add(host, kind, far, doff, sport, cls)
    return flows


def tag(phase, f):
    return b"%s %s %s" % (MAGIC, phase.encode(), f["id"].encode())


# --- server -------------------------------------------------------------------
def server(addr: str, portbase: int, stopfile: str, seconds: float) -> int:
    sel = selectors.DefaultSelector()
    out = sys.stdout

    def log(line):
        out.write(line + "\n")
        out.flush()

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sel.register(raw, selectors.EVENT_READ, ("icmp", None))
    for p in range(portbase, portbase + NPORTS):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        u.bind((addr, p))
        sel.register(u, selectors.EVENT_READ, ("udp", None))
    # TCP last: the caller waits for the last TCP port to listen.
    for p in range(portbase, portbase + NPORTS):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((addr, p))
        t.listen(64)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, ("listen", None))
    end = time.monotonic() + seconds
    while time.monotonic() < end and not os.path.exists(stopfile):
        for key, _ in sel.select(0.3):
            kind, _peer = key.data
            s = key.fileobj
            try:
                if kind == "udp":
                    data, peer = s.recvfrom(2048)
                    s.sendto(b"seen %s:%d " % (peer[0].encode(), peer[1]) + data, peer)
                    log("udp %s:%d %s" % (peer[0], peer[1], data.decode(errors="replace")))
                elif kind == "listen":
                    c, peer = s.accept()
                    c.setblocking(False)
                    try:
                        c.send(b"seen %s:%d\n" % (peer[0].encode(), peer[1]))
                    except OSError:
                        pass
                    sel.register(c, selectors.EVENT_READ, ("conn", peer))
                    log("tcp %s:%d" % (peer[0], peer[1]))
                elif kind == "conn":
                    if not s.recv(2048):
                        raise ConnectionResetError
                else:
                    pkt = s.recv(2048)
                    ihl = (pkt[0] & 15) * 4
                    src = socket.inet_ntoa(pkt[12:16])
                    icmp = pkt[ihl:]
                    if len(icmp) >= 8 and icmp[0] == 8 and icmp[8:].startswith(MAGIC):
                        ident = struct.unpack("!H", icmp[4:6])[0]
                        log("icmp %s %d %s" % (src, ident, icmp[8:].decode(errors="replace")))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                if kind == "conn":
                    sel.unregister(s)
                    s.close()
    return 0


# --- client -------------------------------------------------------------------
def client(seed, host, phase, co_addr, in_addr, portbase, donedir) -> int:
    flows = [f for f in plan(seed) if f["host"] == host]
    sel = selectors.DefaultSelector()
    res = {}
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sel.register(raw, selectors.EVENT_READ, None)
    icmp_by_id = {}
    tcp_socks = []
    start = time.monotonic()

    def echo(f):
        body = struct.pack("!BBHHH", 8, 0, 0, f["sport"], 1) + tag(phase, f)
        return body[:2] + struct.pack("!H", csum(body)) + body[4:]

    for f in flows:
        dst = co_addr if f["far"] == "co" else in_addr
        r = {"id": f["id"], "phase": phase, "host": host, "kind": f["kind"], "far": f["far"],
             "sport": f["sport"], "dport": portbase + f["doff"] if f["kind"] != "icmp" else 0,
             "reply": False, "seen": "", "err": "", "sends": 0, "t": 0.0}
        res[f["id"]] = r
        f["dst"] = dst
        f["next"] = 0.0
        try:
            if f["kind"] == "icmp":
                icmp_by_id[f["sport"]] = f
                continue
            st = socket.SOCK_STREAM if f["kind"] == "tcp" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, st)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", f["sport"]))
            s.setblocking(False)
            f["sock"] = s
            if f["kind"] == "tcp":
                # RST on close: no TIME_WAIT to keep the next phase from reusing the tuple.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                tcp_socks.append(s)
                s.connect_ex((dst, r["dport"]))
                r["sends"] = 1
                sel.register(s, selectors.EVENT_READ, f)
            else:
                s.connect((dst, r["dport"]))
                sel.register(s, selectors.EVENT_READ, f)
        except OSError as e:
            r["err"] = "setup: %s" % e
            f["done"] = True

    def pending():
        return [f for f in flows if not f.get("done")]

    deadline = start + 20.0
    buf = {}
    while pending() and time.monotonic() < deadline:
        now = time.monotonic()
        for f in pending():       # (re)send UDP and echo requests every 1.5 s, at most 6 times
            r = res[f["id"]]
            if f["kind"] in ("udp", "closed", "icmp") and now >= f["next"] and r["sends"] < 6:
                try:
                    if f["kind"] == "icmp":
                        raw.sendto(echo(f), (f["dst"], 0))
                    else:
                        f["sock"].send(tag(phase, f))
                except ConnectionRefusedError:
                    r["err"] = "refused"
                    r["t"] = round(now - start, 2)
                    f["done"] = True
                    continue
                except OSError as e:
                    r["err"] = "send: %s" % e
                r["sends"] += 1
                f["next"] = now + 1.5
        for key, _ in sel.select(0.2):
            now = time.monotonic()
            f = key.data
            if f is None:
                pkt = raw.recv(2048)
                ihl = (pkt[0] & 15) * 4
                icmp = pkt[ihl:]
                if len(icmp) < 8 or icmp[0] != 0:
                    continue
                ident = struct.unpack("!H", icmp[4:6])[0]
                g = icmp_by_id.get(ident)
                if g is not None and not g.get("done") and icmp[8:] == tag(phase, g) \
                        and socket.inet_ntoa(pkt[12:16]) == g["dst"]:
                    res[g["id"]]["reply"] = True
                    res[g["id"]]["t"] = round(now - start, 2)
                    g["done"] = True
                continue
            if f.get("done"):
                continue
            r = res[f["id"]]
            s = key.fileobj
            try:
                data = s.recv(2048)
            except BlockingIOError:
                continue
            except ConnectionRefusedError:
                r["err"] = "refused"
                r["t"] = round(now - start, 2)
                f["done"] = True
                sel.unregister(s)
                continue
            except OSError as e:
                r["err"] = "recv: %s" % e
                if f["kind"] == "tcp":
                    f["done"] = True
                    sel.unregister(s)
                continue
            if f["kind"] == "tcp":
                b = buf.setdefault(f["id"], b"") + data
                buf[f["id"]] = b
                if b"\n" in b or not data:
                    line = b.split(b"\n")[0].decode(errors="replace")
                    if line.startswith("seen "):
                        r["reply"] = True
                        r["seen"] = line[5:]
                    r["t"] = round(now - start, 2)
                    f["done"] = True
                    sel.unregister(s)
            else:
                parts = data.split(b" ", 2)
                if len(parts) == 3 and parts[0] == b"seen" and parts[2] == tag(phase, f):
                    r["reply"] = True
                    r["seen"] = parts[1].decode()
                    r["t"] = round(now - start, 2)
                    f["done"] = True
                    sel.unregister(s)
    for f in flows:
        if f["kind"] == "tcp" and not f.get("done"):
            err = f["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                res[f["id"]]["err"] = os.strerror(err)
    for f in flows:
        print(json.dumps(res[f["id"]], sort_keys=True))
    sys.stdout.flush()
    with open(os.path.join(donedir, "%s.%d" % (phase, host)), "w"):
        pass
    # Hold the TCP connections until every host reported (colliding flows overlap).
    hold = time.monotonic() + 30
    others = [os.path.join(donedir, "%s.%d" % (phase, h)) for h in (1, 2)]
    while time.monotonic() < hold and not all(os.path.exists(p) for p in others):
        time.sleep(0.2)
    for s in tcp_socks:
        s.close()
    for f in flows:
        if "sock" in f and f["kind"] != "tcp":
            f["sock"].close()
    return 0


# --- compare ------------------------------------------------------------------
def compare(seed, d, nat_addr, wan_addr, napt_min, napt_max, masq_min, masq_max, lan_nets) -> int:
    flows = plan(seed)
    lans = [ipaddress.ip_network(n, strict=False) for n in lan_nets]
    res = {}
    for ph in PHASES:
        for h in (1, 2):
            try:
                with open(os.path.join(d, "%s.%d.out" % (ph, h))) as fh:
                    for line in fh:
                        line = line.strip()
                        if line.startswith("{"):
                            r = json.loads(line)
                            res[(ph, r["id"])] = r
            except OSError:
                pass
    icmp_seen = {}          # (phase, flow id) -> set of "addr:id" the far side saw
    peers = {"co": set(), "in": set()}
    for far in ("co", "in"):
        try:
            with open(os.path.join(d, "%s.log" % far)) as fh:
                for line in fh:
                    w = line.split()
                    if not w:
                        continue
                    if w[0] == "icmp" and len(w) >= 6:
                        peers[far].add(w[1])
                        icmp_seen.setdefault((w[4], w[5]), set()).add("%s:%s" % (w[1], w[2]))
                    elif w[0] in ("udp", "tcp") and len(w) >= 2:
                        peers[far].add(w[1].rsplit(":", 1)[0])
        except OSError:
            pass

    def seen(ph, f):
        r = res.get((ph, f["id"]))
        if r is None:
            return ""
        if f["kind"] == "icmp":
            s = icmp_seen.get((ph, f["id"]), set())
            return sorted(s)[0] if len(s) == 1 else ",".join(sorted(s))
        return r["seen"]

    def outcome(ph, f):
        r = res.get((ph, f["id"]))
        if r is None:
            return "missing"
        if f["kind"] == "closed":
            return "refused" if r["err"] == "refused" else "no-error(%s)" % (r["err"] or "silent")
        return "reply" if r["reply"] else "none(%s)" % (r["err"] or "timeout")

    def want_addr(f):
        return nat_addr if f["far"] == "co" else wan_addr

    def kept(ph, f):
        s = seen(ph, f)
        return bool(s) and "," not in s and s.rsplit(":", 1)[1] == str(f["sport"])

    def ipsnat_range(ph, f):
        """The ports ipsnat hands out for f in phase ph (docs/datapath.md): before IPsec its NAPT
        range, a privileged port (below it) its class 1-511 or 600-1023 as netfilter; the
        masquerade its own range above the gateway's ephemeral ports, privileged ports too.
        None where netfilter chooses (phase R, phase I's internet flows) or for echo ids."""
        if ph == "R" or f["kind"] == "icmp" or (ph == "I" and f["far"] == "in"):
            return None
        p = f["sport"]
        if f["far"] == "in":
            return masq_min, masq_max, "masquerade range"
        if 0 < p < min(1024, napt_min):
            return (1, 511, "privileged class") if p < 512 else (600, 1023, "privileged class")
        return napt_min, napt_max, "NAPT range"

    def documented_change(ph, f):
        """Why ipsnat's documented choice moves a port netfilter keeps ('' if it does not)."""
        rng = ipsnat_range(ph, f)
        if rng is None:
            return ""
        p = f["sport"]
        if p in (500, 4500):
            return "%d never handed out (IKE)" % p
        if not rng[0] <= p <= rng[1]:
            return "outside its %s %d-%d" % (rng[2], rng[0], rng[1])
        return ""

    checks = []      # (ok, description)
    notes = {}
    bad = set()      # flow ids to show

    def check(okay, desc, fids=()):
        checks.append((okay, desc))
        if not okay:
            bad.update(fids)

    # The oracle itself: every flow of phase R answered as it should be, as the right address.
    r_bad = [f["id"] for f in flows if outcome("R", f) not in ("reply", "refused")]
    check(not r_bad, "phase R (the recipe): every flow answered (%d flows)%s" % (
        len(flows), "; not: " + " ".join(r_bad) if r_bad else ""), r_bad)
    for ph in PHASES:
        diff_out = [f["id"] for f in flows if outcome(ph, f) != outcome("R", f)]
        if ph != "R":
            check(not diff_out, "phase %s: every flow's outcome as in R (reply/refused)%s" % (
                ph, "; differ: " + " ".join(diff_out) if diff_out else ""), diff_out)
        wrong = [f["id"] for f in flows if f["kind"] != "closed" and outcome(ph, f) == "reply"
                 and seen(ph, f).rsplit(":", 1)[0] != want_addr(f)]
        check(not wrong, "phase %s: the far side saw %s (company) and %s (internet) only%s" % (
            ph, nat_addr, wan_addr, "; not: " + " ".join(wrong) if wrong else ""), wrong)
        port = []
        for f in flows:
            if f["pair"] or f["kind"] == "closed" or ph == "R" or not kept("R", f):
                continue
            if outcome(ph, f) != "reply" or kept(ph, f):
                continue
            why = documented_change(ph, f)
            if why:
                notes.setdefault((ph, why), []).append("%s %s/%s %s" % (f["id"], f["kind"], f["far"], f["sport"]))
            else:
                port.append(f["id"])
        out_of_range = []
        for f in flows:
            rng = ipsnat_range(ph, f)
            s = seen(ph, f)
            if rng is None or f["kind"] == "closed" or outcome(ph, f) != "reply" or not s or "," in s:
                continue
            p = int(s.rsplit(":", 1)[1])
            if p == f["sport"] and rng[2] == "privileged class" and p not in (500, 4500):
                continue       # a privileged port is kept when free, whatever its class
            if not rng[0] <= p <= rng[1] or p in (500, 4500):
                out_of_range.append(f["id"])
        if ph != "R":
            check(not out_of_range, "phase %s: every port ipsnat chose lies in its range (NAPT %d-%d or the "
                  "privileged port's class%s), never 500/4500%s" % (
                ph, napt_min, napt_max, ", masquerade %d-%d" % (masq_min, masq_max) if ph == "M" else "",
                "; not: " + " ".join(out_of_range) if out_of_range else ""), out_of_range)
        if ph != "R":
            check(not port, "phase %s: the source port (echo id) kept wherever R kept it without a collision%s" % (
                ph, "; not: " + " ".join(port) if port else ""), port)
        pairs = {}
        for f in flows:
            if f["pair"]:
                pairs.setdefault(f["pair"], []).append(f)
        coll = []
        for p, fs in sorted(pairs.items()):
            tup = [seen(ph, f) for f in fs]
            if not all(outcome(ph, f) == "reply" for f in fs) or len(set(tup)) != len(tup) or \
                    any("," in t or not t for t in tup):
                coll.extend(f["id"] for f in fs)
        check(not coll, "phase %s: each colliding pair (%d) answered both, seen as distinct tuples%s" % (
            ph, len(pairs), "; not: " + " ".join(coll) if coll else ""), coll)
        # The first of a pair keeps its port (id) where R kept one's and ipsnat's rule allows it.
        first = []
        for p, fs in sorted(pairs.items()):
            if ph == "R" or not any(kept("R", f) for f in fs) or documented_change(ph, fs[0]):
                continue
            if not any(kept(ph, f) for f in fs):
                first.append(p)
        if ph != "R":
            check(not first, "phase %s: one flow of each colliding pair kept its port (id) where R kept one%s" % (
                ph, "; not: " + " ".join(first) if first else ""),
                [f["id"] for f in flows if f["pair"] in first])
    leaked = sorted(a for far in peers for a in peers[far]
                    if any(ipaddress.ip_address(a) in n for n in lans))
    check(not leaked, "no server (company host, internet host) ever saw a LAN address%s" % (
        ": " + " ".join(leaked) if leaked else ""))
    for okay, desc in checks:
        print(("ok " if okay else "FAIL ") + desc)
    for ph in PHASES:     # what each NAT chose for the colliding pairs (informative)
        print("pairs phase %s: %s" % (ph, "; ".join(
            "%s %s/%s %s: %s" % (p, fs[0]["kind"], fs[0]["far"], fs[0]["sport"],
                                 " ".join(seen(ph, f).rsplit(":", 1)[-1] or "-" for f in fs))
            for p, fs in sorted(pairs.items()))))
    for (ph, why), fl in sorted(notes.items()):
        print("note phase %s: %d ports netfilter kept moved by ipsnat's documented choice (%s): %s" % (
            ph, len(fl), why, ", ".join(fl)))
    show = [f for f in flows if f["id"] in bad] if bad else []
    if show or os.environ.get("IPSNAT_DIFF_TABLE"):
        show = show or flows
        print("table %-4s %-2s %-6s %-3s %-5s %-5s | %s" % (
            "flow", "h", "kind", "far", "sport", "pair",
            " | ".join("%s: %-10s %-21s" % (ph, "outcome", "seen") for ph in PHASES)))
        for f in show:
            print("table %-4s %-2s %-6s %-3s %-5s %-5s | %s" % (
                f["id"], f["host"], f["kind"], f["far"], f["sport"], f["pair"] or "-",
                " | ".join("%s: %-10s %-21s" % (ph, outcome(ph, f)[:10], seen(ph, f) or "-")
                           for ph in PHASES)))
    return 0 if all(c[0] for c in checks) else 1


# --- ct-flush -----------------------------------------------------------------
def ct_flush() -> int:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)   # NETLINK_NETFILTER
    s.bind((0, 0))
    # nlmsghdr: len, type (NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE), flags
    # (NLM_F_REQUEST | NLM_F_ACK), seq, pid; nfgenmsg: AF_INET, version 0, res_id 0.
    body = struct.pack("!BBH", socket.AF_INET, 0, 0)
    msg = struct.pack("=IHHII", 16 + len(body), (1 << 8) | 2, 1 | 4, 1, 0) + body
    s.send(msg)
    s.settimeout(5)
    ack = s.recv(4096)
    err = struct.unpack("=i", ack[16:20])[0] if len(ack) >= 20 else -errno.EIO
    if err:
        print("ct-flush: %s" % os.strerror(-err), file=sys.stderr)
        return 1
    return 0


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
        return client(int(a[0]), int(a[1]), a[2], a[3], a[4], int(a[5]), a[6])
    if mode == "compare":
        return compare(int(a[0]), a[1], a[2], a[3], int(a[4]), int(a[5]), int(a[6]), int(a[7]), a[8:])
    if mode == "ct-flush":
        return ct_flush()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
