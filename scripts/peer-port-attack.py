#!/usr/bin/env python3
"""docs/reliability.md, "The peer port's slots": N connections from 127.0.0.2 to HOST:PORT that never send
a byte, each reopened as soon as it is closed, for DURATION seconds.
Usage: python3 scripts/peer-port-attack.py HOST PORT N DURATION"""
import socket, selectors, sys, time
host, port, n, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
opened = 0
def open_one():
    global opened
    s = socket.socket(); s.setblocking(False)
    s.bind(("127.0.0.2", 0))
    try: s.connect_ex((host, port))
    except OSError: pass
    sel.register(s, selectors.EVENT_READ)
    opened += 1
for _ in range(n): open_one()
end = time.time() + duration
closed = 0
while time.time() < end:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try: data = s.recv(1)
        except OSError: data = b""
        if not data:
            sel.unregister(s); s.close(); closed += 1
            open_one()
print(f"opened {opened}, closed by the seeder {closed}")
