#!/usr/bin/env python3
"""A long-lived TCP flow whose every message is accounted for end to end (t_nat_restart.sh).

  server PORT SECONDS
      Accept one connection and echo every byte back, until the peer closes or SECONDS pass.
  client DST PORT INTERVAL MAX_SECONDS STOPFILE PROGRESSFILE
      Connect once; every INTERVAL seconds send the next sequence number ("%08d\\n") and read
      the echoes, each of which must be the next number expected. Rewrites PROGRESSFILE with
      "SENT ECHOED" after each message. Stops when STOPFILE exists (or after MAX_SECONDS),
      then waits up to 10 s for the outstanding echoes and prints one line:
        sent=N echoed=N lost=N misordered=N reset=0|1 max_gap_ms=N
      (max_gap_ms: the longest time without any echo while messages were outstanding).
      Exit 0 iff lost, misordered and reset are all 0.
"""
import os
import select
import socket
import sys
import time


def server(port: int, seconds: float) -> int:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    ls.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        c, _ = ls.accept()
    except socket.timeout:
        return 1
    while time.monotonic() < end:
        r, _, _ = select.select([c], [], [], 1.0)
        if not r:
            continue
        try:
            data = c.recv(65536)
        except OSError:
            return 1
        if not data:
            return 0
        c.sendall(data)
    return 0


def client(dst, port, interval, max_seconds, stopfile, progress) -> int:
    s = socket.create_connection((dst, port), timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sent = echoed = misordered = 0
    reset = 0
    buf = b""
    start = last_echo = time.monotonic()
    max_gap = 0.0
    deadline = start + max_seconds
    drain_until = None
    next_send = start

    def report():
        tmp = progress + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{sent} {echoed}\n")
        os.replace(tmp, progress)

    while True:
        now = time.monotonic()
        if drain_until is None and (now >= deadline or os.path.exists(stopfile)):
            drain_until = now + 10
        if drain_until is not None and (echoed == sent or now >= drain_until):
            break
        if drain_until is None and now >= next_send:
            try:
                s.sendall(b"%08d\n" % sent)
            except BlockingIOError:
                pass  # socket buffer full: retried next round, still in order
            except OSError:
                reset = 1
                break
            else:
                sent += 1
                next_send += interval
                report()
        r, _, _ = select.select([s], [], [], 0.02)
        if r:
            try:
                data = s.recv(65536)
            except OSError:
                reset = 1
                break
            if not data:
                reset = 1  # the server never closes first
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if int(line) != echoed:
                    misordered += 1
                echoed += 1
            now = time.monotonic()
            last_echo = now
            report()
        if sent > echoed:
            max_gap = max(max_gap, time.monotonic() - last_echo)
        else:
            last_echo = time.monotonic()
    s.close()
    lost = sent - echoed
    print(f"sent={sent} echoed={echoed} lost={lost} misordered={misordered} reset={reset} "
          f"max_gap_ms={int(max_gap * 1000)}")
    return 0 if lost == 0 and misordered == 0 and reset == 0 else 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "server":
        return server(int(argv[2]), float(argv[3]))
    if len(argv) == 8 and argv[1] == "client":
        return client(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), argv[6], argv[7])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
