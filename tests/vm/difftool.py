#!/usr/bin/env python3
"""The seeded workload of tests/vm/t_recipe_diff.sh: one process per host, every wait bounded.

The same seed gives every process the same plan (plan()): flows of lanhost (host 1) and lanhost2
(host 2) to the company host ("co", through ESP) and to the internet host ("in"): UDP echo, TCP,
ICMP echo with a chosen identifier, and a UDP datagram to a closed port. Source ports (echo ids)
are drawn from classes (ephemeral-like, high, mid, low, odd values); some flows are collision
pairs: the same protocol, source port (id) and destination on both LAN hosts, which the NAT must
tell apart. Then, with draws after those (a seed's first flows stay what they were):
  big   a UDP datagram of 3000-4000 bytes (the LAN host's kernel sends it as IP fragments) to
        each far host from each LAN host, echoed whole (fragmented again by the far host) and
        checked byte for byte; last, one more to the company host from each LAN host whose last
        fragment on ipsnat's LWT route carries 4 bytes (SHORT_TAIL_SIZE);
  gre   GRE (a raw socket: the 4-byte header 0000 0800, then the flow's tag) from each LAN host
        to each far host; the far host's raw socket answers to the source it saw, naming it. One
        host goes first (the seed picks it); the other starts its GRE when the first one's is
        answered (DONEDIR/PHASE.gre, <= GRE_GATE s): a NAT keeps one binding per inside host,
        remote address and protocol, so what becomes of the second host's is compared, not
        assumed;
  ttl   a UDP probe with a TTL that expires beyond the gateway, read back from the socket's error
        queue (IP_RECVERR: ICMP type, code, offender): "co" to the company host with TTL_CO (gw
        forwards it with 1 left; cgw, forwarding the decrypted packet to chost, drops it: the
        error comes back through the tunnel; transit only forwards the ESP packet around it),
        "path" to an address beyond transit (cgw's uplink address, in the clear) with TTL_PATH
        (gw leaves 1, transit drops it); both hosts' "co" probes use the same source port.

  plan SEED
      Print the plan, one flow a line.
  server ADDR PORTBASE STOPFILE SECONDS
      UDP echo and TCP on ADDR:PORTBASE..PORTBASE+NPORTS-1 (bound to ADDR, so answers leave
      from the address the client sent to, not the one routing picks on a host with several;
      PORTBASE+CLOSED_OFFSET stays closed), a raw ICMP socket and a raw GRE socket (bound to
      ADDR). A datagram is answered with "seen ADDR:PORT " and the datagram (whole), a TCP
      connection with "seen ADDR:PORT" (the peer this host saw), a GRE packet of this workload
      with the same header and "seen ADDR " and its payload. Logs "udp|tcp ADDR:PORT TAG [len=N]",
      "icmp ADDR ID TAG" (echo requests of this workload) and "gre ADDR TAG" at once, until
      STOPFILE exists or SECONDS passed.
  client SEED HOST PHASE CO_ADDR IN_ADDR PORTBASE DONEDIR PATH_ADDR
      Run HOST's flows of the plan at once (GRE: see above), wait for their answers (<= 20 s),
      print one JSON object per flow, then write DONEDIR/PHASE.HOST and keep the TCP connections
      open until every host's file is there (<= 30 s), so colliding flows overlap; close them
      with a reset. PATH_ADDR: the "path" TTL probes' destination.
  compare SEED DIR NAT_ADDR WAN_ADDR NAPT_MIN NAPT_MAX MASQ_MIN MASQ_MAX CO_HOP PATH_HOP LAN_NET...
      Judge DIR's client outputs (R.1, R.2, I.1, ... .out) and server logs (co.log, in.log):
      prints "ok DESC" / "FAIL DESC" lines, what each NAT chose for the colliding pairs
      ("pairs ..."), the documented deviations and the second host's GRE ("note ..."), and a
      per-flow table ("table ...") of every flow that differs (of all with IPSNAT_DIFF_TABLE
      set). CO_HOP, PATH_HOP: the routers whose time exceeded the TTL probes must bring.
  ct-flush
      Flush this namespace's netfilter conntrack table, IPv4 and IPv6 (ctnetlink IPCTNL_MSG_CT_DELETE, no
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
BIG_MIN, BIG_MAX = 3000, 4000   # "big" payloads: more than two 1500-byte frames
# A "big" payload whose last fragment on the LWT route (MTU 1500 - attach's 88 bytes for ESP: 1392
# bytes of data per fragment) carries 4 bytes, fewer than the 8 netfilter writes into a fragment
# it NATs.
SHORT_TAIL_SIZE = 2 * ((1500 - 88 - 20) // 8 * 8) + 4 - 8
GRE_HDR = struct.pack("!HH", 0, 0x0800)   # GRE version 0, no key/sequence, protocol IPv4
GRE_GATE = 9.0       # s: the second GRE host starts at the latest this long after its start
TTL_OFFSET = 5       # PORTBASE+5: the TTL probes' destination port (they never get there)
TTL_CO = 2           # lanhost -> gw (1 left) -> ESP -> cgw: expires at cgw
TTL_PATH = 2         # lanhost -> gw (1 left) -> transit: expires at transit
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
SO_EE_ORIGIN_ICMP = 2


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

    def add(host, kind, far, doff, sport, cls, pair="", **extra):
        nonlocal n
        n += 1
        flows.append(dict({"id": "f%02d" % n, "host": host, "kind": kind, "far": far, "doff": doff,
                           "sport": sport, "cls": cls, "pair": pair}, **extra))

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
    # Drawn after the flows above, so that those stay what a seed gave them before.
    for host in (1, 2):
        for far in ("co", "in"):
            sport, cls = draw("udp")
            add(host, "big", far, rng.randrange(NPORTS), sport, cls, size=rng.randint(BIG_MIN, BIG_MAX))
    first = rng.choice((1, 2))
    for host in (first, 3 - first):
        for far in ("co", "in"):
            add(host, "gre", far, 0, 0, "-", order="first" if host == first else "second")
    sport, cls = draw("udp")
    for host in (1, 2):
        add(host, "ttl", "co", TTL_OFFSET, sport, cls, ttl=TTL_CO)
    for host in (1, 2):
        sport, cls = draw("udp")
        add(host, "ttl", "path", TTL_OFFSET, sport, cls, ttl=TTL_PATH)
    for host in (1, 2):
        sport, cls = draw("udp")
        add(host, "big", "co", rng.randrange(NPORTS), sport, cls, size=SHORT_TAIL_SIZE)
    return flows


def big_payload(seed, phase, f):
    """The flow's tag, a newline, then bytes from the seed up to f["size"]."""
    t = tag(phase, f) + b"\n"
    return t + random.Random("%d %s" % (seed, f["id"])).randbytes(f["size"] - len(t))


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
    # Bound: GRE to ADDR only, and answered from ADDR (the address the client sent to).
    gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
    gre.bind((addr, 0))
    sel.register(gre, selectors.EVENT_READ, ("gre", None))
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
                    data, peer = s.recvfrom(65535)
                    s.sendto(b"seen %s:%d " % (peer[0].encode(), peer[1]) + data, peer)
                    head = data.split(b"\n", 1)[0].decode(errors="replace")
                    log("udp %s:%d %s%s" % (peer[0], peer[1], head,
                                            " len=%d" % len(data) if len(data) > len(head) else ""))
                elif kind == "gre":
                    pkt, peer = s.recvfrom(65535)
                    ihl = (pkt[0] & 15) * 4
                    body = pkt[ihl:]
                    if body[:4] == GRE_HDR and body[4:].startswith(MAGIC):
                        s.sendto(GRE_HDR + b"seen %s " % peer[0].encode() + body[4:], (peer[0], 0))
                        log("gre %s %s" % (peer[0], body[4:].decode(errors="replace")))
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
def ttl_error(s):
    """The first ICMP error in s's error queue: (type, code, offender address, quoted payload),
    or None when the queue is empty."""
    try:
        data, anc, _flags, _addr = s.recvmsg(2048, 1024, socket.MSG_ERRQUEUE)
    except (BlockingIOError, InterruptedError):
        return None
    for level, typ, cd in anc:
        # struct sock_extended_err (errno, origin, type, code, pad, info, data), then the
        # offender's struct sockaddr_in (SO_EE_OFFENDER: its address at bytes 4..7).
        if level == socket.IPPROTO_IP and typ == IP_RECVERR and len(cd) >= 24:
            _errno, origin, etype, code, _pad, _info, _data = struct.unpack("=IBBBBII", cd[:16])
            if origin == SO_EE_ORIGIN_ICMP:
                return etype, code, socket.inet_ntoa(cd[20:24]), data
    return -1, -1, "", data


def client(seed, host, phase, co_addr, in_addr, portbase, donedir, path_addr) -> int:
    flows = [f for f in plan(seed) if f["host"] == host]
    sel = selectors.DefaultSelector()
    res = {}
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sel.register(raw, selectors.EVENT_READ, None)
    gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
    sel.register(gre, selectors.EVENT_READ, "gre")
    icmp_by_id = {}
    gre_by_tag = {}
    tcp_socks = []
    start = time.monotonic()
    gate = os.path.join(donedir, "%s.gre" % phase)

    def echo(f):
        body = struct.pack("!BBHHH", 8, 0, 0, f["sport"], 1) + tag(phase, f)
        return body[:2] + struct.pack("!H", csum(body)) + body[4:]

    for f in flows:
        dst = {"co": co_addr, "in": in_addr, "path": path_addr}[f["far"]]
        r = {"id": f["id"], "phase": phase, "host": host, "kind": f["kind"], "far": f["far"],
             "sport": f["sport"], "dport": portbase + f["doff"] if f["kind"] not in ("icmp", "gre") else 0,
             "reply": False, "seen": "", "err": "", "sends": 0, "t": 0.0}
        res[f["id"]] = r
        f["dst"] = dst
        f["next"] = 0.0
        if f["kind"] == "big":
            f["payload"] = big_payload(seed, phase, f)
        try:
            if f["kind"] == "icmp":
                icmp_by_id[f["sport"]] = f
                continue
            if f["kind"] == "gre":
                gre_by_tag[tag(phase, f)] = f
                if f["order"] == "second":
                    f["next"] = None      # after the first host's GRE (the gate)
                continue
            st = socket.SOCK_STREAM if f["kind"] == "tcp" else socket.SOCK_DGRAM
            s = socket.socket(socket.AF_INET, st)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if f["kind"] == "ttl":
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, f["ttl"])
                s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
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

    def finish(f, now, sock=None):
        res[f["id"]]["t"] = round(now - start, 2)
        f["done"] = True
        if sock is not None:
            sel.unregister(sock)

    def check_ttl(f, now):
        """f's error queue: done at the first ICMP error (recorded as "TYPE/CODE from ADDR")."""
        e = ttl_error(f["sock"])
        if e is None or f.get("done"):
            return
        etype, code, offender, quoted = e
        r = res[f["id"]]
        r["icmp"] = "%d/%d from %s" % (etype, code, offender)
        r["seen"] = offender
        if quoted != tag(phase, f):
            r["icmp"] += " (quote: %r)" % quoted[:40]
        finish(f, now, f["sock"])

    gre_mine = [f for f in flows if f["kind"] == "gre" and f["order"] == "first"]
    deadline = start + 20.0
    buf = {}
    while pending() and time.monotonic() < deadline:
        now = time.monotonic()
        # The GRE gate: open once this host's first GRE flows are over (or after GRE_GATE s).
        if gre_mine and not os.path.exists(gate) and (
                all(f.get("done") for f in gre_mine) or now - start > GRE_GATE):
            with open(gate, "w"):
                pass
        for f in pending():
            if f["kind"] == "gre" and f["next"] is None:
                if os.path.exists(gate) or now - start > GRE_GATE + 1:
                    f["next"] = now
                    res[f["id"]]["t0"] = round(now - start, 2)
                continue
            r = res[f["id"]]
            # A GRE flow unanswered 4 s after its last send is over (the second host's may be
            # dropped on purpose: no reason to wait out the deadline).
            if f["kind"] == "gre" and r["sends"] >= 6 and now >= f["next"] + 2.5:
                finish(f, now)
                continue
            # (Re)send UDP, echo requests, GRE and TTL probes every 1.5 s, at most 6 times.
            if f["kind"] != "tcp" and now >= f["next"] and r["sends"] < 6:
                try:
                    if f["kind"] == "icmp":
                        raw.sendto(echo(f), (f["dst"], 0))
                    elif f["kind"] == "gre":
                        gre.sendto(GRE_HDR + tag(phase, f), (f["dst"], 0))
                    elif f["kind"] == "big":
                        f["sock"].send(f["payload"])
                    else:
                        f["sock"].send(tag(phase, f))
                except ConnectionRefusedError:
                    if f["kind"] != "ttl":
                        r["err"] = "refused"
                        finish(f, now)
                        continue
                except OSError as e:
                    r["err"] = "send: %s" % e
                r["sends"] += 1
                f["next"] = now + 1.5
                if f["kind"] == "ttl":
                    check_ttl(f, now)
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
                    finish(g, now)
                continue
            if f == "gre":
                pkt = gre.recv(65535)
                ihl = (pkt[0] & 15) * 4
                body = pkt[ihl:]
                parts = body[4:].split(b" ", 2)
                if body[:4] != GRE_HDR or len(parts) != 3 or parts[0] != b"seen":
                    continue
                g = gre_by_tag.get(parts[2])
                if g is not None and not g.get("done") and socket.inet_ntoa(pkt[12:16]) == g["dst"]:
                    res[g["id"]]["reply"] = True
                    res[g["id"]]["seen"] = parts[1].decode()
                    finish(g, now)
                continue
            if f.get("done"):
                continue
            r = res[f["id"]]
            s = key.fileobj
            if f["kind"] == "ttl":
                check_ttl(f, now)
                if not f.get("done"):
                    try:
                        s.recv(65535)     # a pending error (sk_err) or a stray datagram
                    except OSError:
                        pass
                continue
            try:
                data = s.recv(65535)
            except BlockingIOError:
                continue
            except ConnectionRefusedError:
                r["err"] = "refused"
                finish(f, now, s)
                continue
            except OSError as e:
                r["err"] = "recv: %s" % e
                if f["kind"] == "tcp":
                    finish(f, now, s)
                continue
            if f["kind"] == "tcp":
                b = buf.setdefault(f["id"], b"") + data
                buf[f["id"]] = b
                if b"\n" in b or not data:
                    line = b.split(b"\n")[0].decode(errors="replace")
                    if line.startswith("seen "):
                        r["reply"] = True
                        r["seen"] = line[5:]
                    finish(f, now, s)
            else:
                parts = data.split(b" ", 2)
                if len(parts) != 3 or parts[0] != b"seen":
                    continue
                if f["kind"] == "big":
                    r["len"] = len(parts[2])
                    if parts[2] != f["payload"]:
                        # Another send's echo may still come whole: keep waiting.
                        r["err"] = "echo of %d bytes differs from the %d sent" % (len(parts[2]), len(f["payload"]))
                        continue
                    r["err"] = ""
                elif parts[2] != tag(phase, f):
                    continue
                r["reply"] = True
                r["seen"] = parts[1].decode()
                finish(f, now, s)
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
def compare(seed, d, nat_addr, wan_addr, napt_min, napt_max, masq_min, masq_max, co_hop, path_hop,
            lan_nets) -> int:
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
                    elif w[0] == "gre" and len(w) >= 2:
                        peers[far].add(w[1])
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
        if f["kind"] == "ttl":
            return "icmp %s" % r["icmp"] if r.get("icmp") else "none(%s)" % (r["err"] or "timeout")
        return "reply" if r["reply"] else "none(%s)" % (r["err"] or "timeout")

    def r_expected(f):
        """What the recipe must give f, None where R's outcome is only compared (the second
        host's GRE: netfilter keeps one binding per remote address and protocol)."""
        if f["kind"] == "gre" and f["order"] == "second":
            return None
        if f["kind"] == "ttl":
            # ICMP time exceeded (11), TTL exceeded in transit (0), from the router it expires at.
            return "icmp 11/0 from %s" % (co_hop if f["far"] == "co" else path_hop)
        return "refused" if f["kind"] == "closed" else "reply"

    def want_addr(f):
        return nat_addr if f["far"] == "co" else wan_addr

    def kept(ph, f):
        s = seen(ph, f)
        return ":" in s and "," not in s and s.rsplit(":", 1)[1] == str(f["sport"])

    def ipsnat_range(ph, f):
        """The ports ipsnat hands out for f in phase ph (docs/datapath.md): before IPsec its NAPT
        range, a privileged port (below it) its class 1-511 or 600-1023 as netfilter; the
        masquerade its own range above the gateway's ephemeral ports, privileged ports too.
        None where netfilter chooses (phase R, phase I's internet flows) or for echo ids."""
        if ph == "R" or f["kind"] in ("icmp", "gre", "ttl") or (ph == "I" and f["far"] == "in"):
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
    r_bad = [f["id"] for f in flows if r_expected(f) not in (None, outcome("R", f))]
    check(not r_bad, "phase R (the recipe): every flow answered (%d flows: a reply, the port unreachable, "
          "the TTL probes' time exceeded from %s (company, cgw) and %s (internet path, transit))%s" % (
              len(flows), co_hop, path_hop, "; not: " + " ".join(
                  "%s (%s)" % (i, outcome("R", f)) for f in flows for i in [f["id"]] if i in r_bad)
              if r_bad else ""), r_bad)
    base = ("udp", "tcp", "icmp", "closed")
    big = [f for f in flows if f["kind"] == "big"]
    gre = [f for f in flows if f["kind"] == "gre"]
    ttl = [f for f in flows if f["kind"] == "ttl"]

    def differ(ph, fs):
        return [f["id"] for f in fs if outcome(ph, f) != outcome("R", f)]

    def listing(ph, fs, ids):
        return "; differ: " + ", ".join("%s %s/%s host %d: R %s, %s %s" % (
            f["id"], f["kind"], f["far"], f["host"], outcome("R", f), ph, outcome(ph, f))
            for f in fs if f["id"] in ids) if ids else ""

    for ph in PHASES:
        if ph != "R":
            diff_out = differ(ph, [f for f in flows if f["kind"] in base])
            check(not diff_out, "phase %s: every UDP, TCP, echo and closed-port flow's outcome as in R "
                  "(reply/refused)%s" % (ph, "; differ: " + " ".join(diff_out) if diff_out else ""), diff_out)
            ids = differ(ph, big)
            sizes = [f["size"] for f in big]
            check(not ids, "phase %s: large UDP datagrams (%d, %d-%d bytes: fragments both ways, through ESP and "
                  "the masquerade) echoed byte for byte as in R%s" % (
                      ph, len(big), min(sizes), max(sizes), listing(ph, big, ids)), ids)
            ids = differ(ph, gre)
            check(not ids, "phase %s: GRE of both LAN hosts (the second after the first) to each far host: "
                  "each answered or not as in R%s" % (ph, listing(ph, gre, ids)), ids)
            ids = differ(ph, ttl)
            check(not ids, "phase %s: TTL probes (%d): the time exceeded back in the LAN socket's error queue, "
                  "from the same router as in R%s" % (ph, len(ttl), listing(ph, ttl, ids)), ids)
        wrong = [f["id"] for f in flows if f["kind"] not in ("closed", "ttl") and outcome(ph, f) == "reply"
                 and seen(ph, f).rsplit(":", 1)[0] != want_addr(f)]
        check(not wrong, "phase %s: the far side saw %s (company) and %s (internet) only%s" % (
            ph, nat_addr, wan_addr, "; not: " + " ".join(wrong) if wrong else ""), wrong)
        port = []
        for f in flows:
            if f["pair"] or f["kind"] not in ("udp", "tcp", "icmp", "big") or ph == "R" or not kept("R", f):
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
    for ph in PHASES:     # the second GRE host's outcome (compared with R's above, not assumed)
        sec = [f for f in gre if f["order"] == "second"]
        print("note phase %s: GRE of lanhost%s after lanhost%s's to the same far hosts: %s" % (
            ph, "" if sec[0]["host"] == 1 else "2", "2" if sec[0]["host"] == 1 else "",
            ", ".join("%s %s" % (f["far"], outcome(ph, f)) for f in sec)))
    for (ph, why), fl in sorted(notes.items()):
        print("note phase %s: %d ports netfilter kept moved by ipsnat's documented choice (%s): %s" % (
            ph, len(fl), why, ", ".join(fl)))
    show = [f for f in flows if f["id"] in bad] if bad else []
    if show or os.environ.get("IPSNAT_DIFF_TABLE"):
        show = show or flows
        print("table %-4s %-2s %-6s %-4s %-5s %-5s | %s" % (
            "flow", "h", "kind", "far", "sport", "pair",
            " | ".join("%s: %-10s %-21s" % (ph, "outcome", "seen") for ph in PHASES)))
        for f in show:     # (a TTL probe's "seen": the router its error came from)
            print("table %-4s %-2s %-6s %-4s %-5s %-5s | %s" % (
                f["id"], f["host"], f["kind"], f["far"], f["sport"], f["pair"] or "-",
                " | ".join("%s: %-10s %-21s" % (ph, outcome(ph, f).split(" from ")[0][:10], seen(ph, f) or "-")
                           for ph in PHASES)))
    return 0 if all(c[0] for c in checks) else 1


# --- ct-flush -----------------------------------------------------------------
def ct_flush() -> int:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)   # NETLINK_NETFILTER
    s.bind((0, 0))
    s.settimeout(5)
    # nlmsghdr: len, type (NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE), flags
    # (NLM_F_REQUEST | NLM_F_ACK), seq, pid; nfgenmsg: family, version 0, res_id 0. The kernel
    # flushes one family per request.
    for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
        body = struct.pack("!BBH", family, 0, 0)
        s.send(struct.pack("=IHHII", 16 + len(body), (1 << 8) | 2, 1 | 4, seq, 0) + body)
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
        return client(int(a[0]), int(a[1]), a[2], a[3], a[4], int(a[5]), a[6], a[7])
    if mode == "compare":
        return compare(int(a[0]), a[1], a[2], a[3], int(a[4]), int(a[5]), int(a[6]), int(a[7]), a[8], a[9],
                       a[10:])
    if mode == "ct-flush":
        return ct_flush()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
