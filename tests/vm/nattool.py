#!/usr/bin/env python3
"""Small traffic tools for the VM NAT scenarios (tests/vm/t_nat_*.sh).

Every mode is bounded in packets and time, so a broken tunnel makes a scenario
fail, never hang.

  udp-echo-server PORT SECONDS [BIND]
      Echo every datagram back to its sender until SECONDS have passed.
      Prints each distinct peer (addr:port) when it first appears, one per line.
      BIND: the local address (default 0.0.0.0; "::" for IPv6).
  udp-echo-client DST PORT COUNT [SPORT]
      Send COUNT numbered datagrams (from SPORT when given), wait up to 1 s for
      each echo; prints the number of correct echoes. Exit 0 iff all came back.
      DST may be IPv6.
  udp-flow DST PORT SPORT STOPFILE SECONDS
      One steady flow (one 5-tuple): a datagram every 0.2 s until STOPFILE exists
      or SECONDS have passed. Prints the wall-clock time (time.time()) of each
      correct echo, one per line, at once.
  spoof SRC DST PROTO SPORT DPORT COUNT
      Send COUNT IPv4 packets with a forged source through a raw socket
      (IP_HDRINCL): PROTO udp (SPORT -> DPORT, payload "IPSNAT-SPOOF") or icmp
      (echo reply with identifier SPORT). Checksums are computed here.
"""
import os
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_socket(addr: str) -> socket.socket:
    """A UDP socket of addr's family (IPv6 if it has a colon)."""
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def udp_bound(port: int, addr: str = "0.0.0.0") -> socket.socket:
    s = udp_socket(addr)
    s.bind((addr, port))
    return s


def recv_until(s: socket.socket, deadline: float):
    """Yield (data, peer) for each datagram until time.monotonic() reaches deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        s.settimeout(left)
        try:
            yield s.recvfrom(65535)
        except socket.timeout:
            return


def udp_echo_server(port: int, seconds: float, bind: str = "0.0.0.0") -> int:
    s = udp_bound(port, bind)
    peers = []
    for data, peer in recv_until(s, time.monotonic() + seconds):
        if peer not in peers:
            peers.append(peer)
            # At once, not at the end: under TCG the caller's timeout may end us first.
            print(f"{peer[0]}:{peer[1]}", flush=True)
        s.sendto(data, peer)
    return 0


def udp_echo_client(dst: str, port: int, count: int, sport: int = 0) -> int:
    s = udp_socket(dst)
    if sport:
        s.bind(("::" if ":" in dst else "0.0.0.0", sport))
    # An echo may come late: the VM is emulated (TCG) and shares the host's CPUs with the other
    # tiers. Each datagram waits 1 s for its echo, an echo of an earlier one still counts, and the
    # ones missing at the end get 3 s more; only an echo that never comes is lost.
    sent = [f"ipsnat-udp-{i}-".encode() * 8 for i in range(count)]
    echoed: set[bytes] = set()

    def collect(msg: bytes | None, until: float) -> None:
        while (msg is None or msg not in echoed) and len(echoed) < count:
            left = until - time.monotonic()
            if left <= 0:
                return
            s.settimeout(left)
            try:
                data, peer = s.recvfrom(65535)
            except socket.timeout:
                return
            if data in sent and peer[:2] == (dst, port):
                echoed.add(data)

    for msg in sent:
        s.sendto(msg, (dst, port))
        collect(msg, time.monotonic() + 1.0)
    collect(None, time.monotonic() + 3.0)
    good = len(echoed)
    print(good)
    return 0 if good == count else 1


def udp_flow(dst: str, port: int, sport: int, stopfile: str, seconds: float) -> int:
    s = udp_bound(sport)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end and not os.path.exists(stopfile):
        s.sendto(f"ipsnat-flow-{i}-".encode() * 8, (dst, port))
        i += 1
        for data, peer in recv_until(s, time.monotonic() + 0.2):
            if peer == (dst, port) and data.startswith(b"ipsnat-flow-"):
                print(f"{time.time():.3f}", flush=True)
    return 0


def spoof(src: str, dst: str, proto: str, sport: int, dport: int, count: int) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    payload = b"IPSNAT-SPOOF"
    for i in range(count):
        if proto == "udp":
            num = socket.IPPROTO_UDP
            length = 8 + len(payload)
            hdr = struct.pack("!HHHH", sport, dport, length, 0)
            pseudo = saddr + daddr + struct.pack("!BBH", 0, num, length)
            c = csum(pseudo + hdr + payload) or 0xFFFF
            l4 = struct.pack("!HHHH", sport, dport, length, c) + payload
        elif proto == "icmp":
            num = socket.IPPROTO_ICMP
            body = struct.pack("!BBHHH", 0, 0, 0, sport, i + 1) + payload
            c = csum(body)
            l4 = body[:2] + struct.pack("!H", c) + body[4:]
        else:
            print(f"spoof: unknown protocol {proto}", file=sys.stderr)
            return 2
        total = 20 + len(l4)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0x5150 + i, 0, 64, num, 0, saddr, daddr)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        s.sendto(ip + l4, (dst, 0))
        time.sleep(0.05)
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    mode, a = argv[1], argv[2:]
    if mode == "udp-echo-server":
        return udp_echo_server(int(a[0]), float(a[1]), *a[2:3])
    if mode == "udp-echo-client":
        return udp_echo_client(a[0], int(a[1]), int(a[2]), int(a[3]) if len(a) > 3 else 0)
    if mode == "udp-flow":
        return udp_flow(a[0], int(a[1]), int(a[2]), a[3], float(a[4]))
    if mode == "spoof":
        return spoof(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
