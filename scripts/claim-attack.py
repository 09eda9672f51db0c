#!/usr/bin/env python3
"""docs/reliability.md, "Peers that claim pieces": an attacker of the super-seeding wire seeder.

Long-polls the publisher's manifest; for every new segment it opens CONNS connections to the
publisher's peer port from SOURCE, each completing the BitTorrent handshake for that segment and
then, in the default mode `claim`, sending an all-ones bitfield (it claims every piece); in mode
`silent` it sends nothing more. It never requests a block. Connections of segments that left the
window are closed. Runs for DURATION seconds, then prints what it did.

Usage: python3 scripts/claim-attack.py HTTP_BASE PEER_HOST PEER_PORT CONNS DURATION
           [claim|silent] [SOURCE]
"""
import hashlib
import selectors
import socket
import struct
import sys
import time
import urllib.request

from bencoding import bdecode


def main():
    base, host, port, conns, duration = sys.argv[1:6]
    port, conns, duration = int(port), int(conns), float(duration)
    mode = sys.argv[6] if len(sys.argv) > 6 else "claim"
    source = sys.argv[7] if len(sys.argv) > 7 else "127.0.0.3"
    assert mode in ("claim", "silent"), mode
    sel = selectors.DefaultSelector()
    by_segment = {}  # number -> sockets
    seq, opened, refused, received = 0, 0, 0, 0
    end = time.time() + duration
    while time.time() < end:
        try:
            url = f"{base}/manifest?after={seq}"
            with urllib.request.urlopen(url, timeout=max(1.0, min(15.0, end - time.time()))) as r:
                doc, _ = bdecode(r.read())
        except Exception:  # a long poll that timed out, or the publisher not up yet
            time.sleep(0.1)
            continue
        body, _ = bdecode(doc[b"body"])
        seq = body[b"seq"]
        live = set()
        for entry in body[b"window"]:
            number = entry[b"number"]
            live.add(number)
            if number in by_segment:
                continue
            info, _ = bdecode(entry[b"info"])
            pieces = len(info[b"pieces"]) // 20
            info_hash = hashlib.sha1(entry[b"info"]).digest()
            socks = []
            for k in range(conns):
                s = socket.socket()
                s.bind((source, 0))
                try:
                    s.connect((host, port))
                except OSError:
                    refused += 1
                    s.close()
                    continue
                peer_id = b"-XX0001-" + struct.pack(">IHH", number, k, 0) + b"\0\0\0\0"
                msg = b"\x13BitTorrent protocol" + b"\0" * 8 + info_hash + peer_id[:20]
                if mode == "claim":
                    field = bytearray((pieces + 7) // 8)
                    for p in range(pieces):
                        field[p // 8] |= 0x80 >> (p % 8)
                    msg += struct.pack(">IB", 1 + len(field), 5) + bytes(field)
                    msg += struct.pack(">IB", 1, 2)  # interested: and then nothing
                try:
                    s.sendall(msg)
                except OSError:
                    refused += 1
                    s.close()
                    continue
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
                socks.append(s)
                opened += 1
            by_segment[number] = socks
        for number in [n for n in by_segment if n not in live]:
            for s in by_segment.pop(number):
                sel.unregister(s)
                s.close()
        # Read (and drop) what the seeder sends: its Haves must not fill our buffers.
        for key, _ in sel.select(timeout=0):
            try:
                data = key.fileobj.recv(65536)
                received += len(data)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
    print(f"mode {mode}: {len(by_segment)} segments held, {opened} connections opened, "
          f"{refused} refused, {received} bytes received")


if __name__ == "__main__":
    main()
