#!/usr/bin/env python3
"""Many UDP flows at once, for the resource-limit scenario (t_limits.sh).

udp_flows.py SRC_ADDR FIRST_PORT COUNT DST_ADDR DST_PORT SECONDS
Binds COUNT sockets to SRC_ADDR:FIRST_PORT.. and sends one datagram from each every 100 ms for
SECONDS (bounded). Prints the number of rounds."""
import socket
import sys
import time

src, first, count, dst, dport, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, first + i))
    s.setblocking(False)
    socks.append(s)
end = time.monotonic() + min(secs, 30)
rounds = 0
while True:
    for s in socks:
        try:
            s.sendto(b"limits", (dst, dport))
        except OSError:
            pass  # an ICMP error from an earlier round, or a full queue: the next round sends again
    rounds += 1
    if time.monotonic() >= end:
        break
    time.sleep(0.1)
print(rounds)
