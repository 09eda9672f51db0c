#!/usr/bin/env python3
"""Idle HTTP connections against a publisher (docs/reliability.md, "Idle HTTP connections").

Usage: idle-http-attack.py HOST PORT CONNECTIONS SECONDS ADDRESSES

Holds CONNECTIONS connections to HOST:PORT that send nothing, from ADDRESSES source addresses
(127.0.0.2 onwards), reopening each one the server closes, for SECONDS. Meanwhile a viewer-like
probe from 127.0.0.250 asks for /manifest every half second. Prints what the attacker held and
what the probe got: answers, failures, and the manifest sequence numbers seen.
"""
import re
import selectors
import socket
import sys
import time

host, port, count, secs, addrs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
sel = selectors.DefaultSelector()
opened = closed = failed = 0
held = {}


def open_one(i):
    global opened, failed
    s = socket.socket()
    s.settimeout(2)
    try:
        s.bind((f"127.0.0.{2 + i % addrs}", 0))
        s.connect((host, port))
    except OSError:
        failed += 1
        s.close()
        return
    s.setblocking(False)
    opened += 1
    held[s] = i
    sel.register(s, selectors.EVENT_READ)


def probe():
    """One GET /manifest; the sequence number, or None."""
    try:
        with socket.create_connection((host, port), timeout=5, source_address=("127.0.0.250", 0)) as s:
            s.sendall(b"GET /manifest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while len(data) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1.1 200"):
            return None
        m = re.search(rb"3:seqi(\d+)e", data)
        return int(m.group(1)) if m else -1
    except OSError:
        return None


for i in range(count):
    open_one(i)
start = time.monotonic()
next_probe = start
answers, misses, seqs = 0, 0, []
while time.monotonic() - start < secs:
    for key, _ in sel.select(timeout=0.05):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            i = held.pop(s)
            sel.unregister(s)
            s.close()
            closed += 1
            open_one(i)
    while len(held) < count and time.monotonic() - start < secs:
        # Connections that could not be opened are tried again.
        open_one(len(held) + closed)
    if time.monotonic() >= next_probe:
        next_probe += 0.5
        seq = probe()
        if seq is None:
            misses += 1
        else:
            answers += 1
            seqs.append(seq)
print(f"attacker: {opened} connections opened ({count} held at once from {addrs} addresses), "
      f"{closed} closed by the server, {failed} could not be opened")
print(f"probe: {answers} /manifest answers, {misses} failed; manifest seq "
      f"{seqs[0] if seqs else '-'} .. {seqs[-1] if seqs else '-'}")
