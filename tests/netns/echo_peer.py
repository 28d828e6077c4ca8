#!/usr/bin/env python3
"""Bounded TCP/UDP peers for the netns tier: the server answers with the address it saw the
client come from and a SHA-256 of what it received, so a test sees the translated source and
that the payload crossed intact (a wrong L4 checksum after NAT means the data never arrives).

echo_peer.py server PROTO ADDR PORT [COUNT]   (UDP: answers COUNT datagrams, default 1)
(ADDR IPv4 or IPv6)
echo_peer.py client PROTO ADDR PORT SIZE [SPORT]
ECHO_PEER_TIMEOUT (seconds, default 5): how long each side waits; a client expected to reach
nobody may give up sooner (an answer on the netns tier's veths takes milliseconds)."""
import hashlib
import os
import socket
import sys

TIMEOUT = float(os.environ.get("ECHO_PEER_TIMEOUT", 5))


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def server(proto, addr, port, count=1):
    if proto == "tcp":
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        s.settimeout(TIMEOUT * 2)
        c, peer = s.accept()
        c.settimeout(TIMEOUT)
        h = hashlib.sha256()
        n = int.from_bytes(c.recv(4, socket.MSG_WAITALL), "big")
        got = 0
        while got < n:
            b = c.recv(65536)
            if not b:
                break
            got += len(b)
            h.update(b)
        c.sendall(f"{peer[0]} {h.hexdigest()}".encode())
        c.close()
    else:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(TIMEOUT * 2)
        for _ in range(count):
            data, peer = s.recvfrom(65536)
            s.sendto(f"{peer[0]} {hashlib.sha256(data).hexdigest()}".encode(), peer)


def client(proto, addr, port, size, sport=0):
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    if proto == "tcp":
        s = socket.create_connection((addr, port), timeout=TIMEOUT)
        s.sendall(len(data).to_bytes(4, "big") + data)
        reply = s.recv(4096).decode()
    else:
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.settimeout(TIMEOUT)
        s.bind(("", sport))
        s.sendto(data, (addr, port))
        reply = s.recv(4096).decode()
    peer, digest = reply.split()
    ok = digest == hashlib.sha256(data).hexdigest()
    print(peer, "intact" if ok else "corrupted")


if __name__ == "__main__":
    role, proto, addr, port = sys.argv[1:5]
    if role == "server":
        server(proto, addr, int(port), *map(int, sys.argv[5:6]))
    else:
        client(proto, addr, int(port), *map(int, sys.argv[5:7]))
