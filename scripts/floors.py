#!/usr/bin/env python3
"""The floors of docs/experiments.md ("Floors"): what physics allows each configuration of the
net-lab baseline, before any protocol is blamed. Pure arithmetic, no measurement; the inputs that
come from measurements (manifest bytes per fetch) are named below.

Usage: python3 scripts/floors.py            # the Markdown table of docs/experiments.md
"""
import math

R = 125_000                 # the bitrate, 1 Mbit/s, bytes/s
MSS = 1448                  # TCP payload per full packet (timestamps on)
WIRE = 1500 / MSS           # IP bytes per TCP payload byte on a full packet
BT = (16384 + 13) / 16384   # a piece message's header per 16 KiB block
PIECE = 32 * 1024           # piece length
INIT_WINDOW = 10            # TCP's initial congestion window, packets
MANIFEST = 2_400            # bytes of one manifest answer (measured: 0.95 MB to 20 viewers in 40 s)
# A manifest delta of one new segment: about 560 bytes plus the segment's 20-byte piece hashes
# (measured: 720 bytes for 8 pieces at 2 s segments; docs/manifest.md, "Deltas").
DELTA_FIXED = 560

# name, segment s, viewers, RTT ms, loss %, publisher cap (x bitrate, None: uncapped),
# viewer cap (x), NAT share
CONFIGS = [
    ("base", 2, 20, 50, 0, 1.5, 2, 0),
    ("segment-10s", 10, 20, 50, 0, 1.5, 2, 0),
    ("viewers-50", 2, 50, 50, 0, 1.5, 2, 0),
    ("viewers-100", 2, 100, 50, 0, 1.5, 2, 0),
    ("rtt 0", 2, 20, 0, 0, 1.5, 2, 0),
    ("rtt 150", 2, 20, 150, 0, 1.5, 2, 0),
    ("loss-1", 2, 20, 50, 1, 1.5, 2, 0),
    ("viewer-upload-unlimited", 2, 20, 50, 0, 1.5, None, 0),
    ("publisher-uncapped", 2, 20, 50, 0, None, 2, 0),
    ("nat-60", 2, 20, 50, 0, 1.5, 2, 0.6),
    ("issue 14 target, 2 s", 2, 50, 150, 1, 1.5, 2, 0.6),
    ("issue 14 target, 10 s", 10, 50, 150, 1, 1.5, 2, 0.6),
]


def payload_rate(wire_rate, loss):
    """Payload bytes/s that wire_rate IP bytes/s carry (TCP/IP headers, piece headers and, with
    loss, retransmissions taken off); None when uncapped."""
    if wire_rate is None:
        return None
    return wire_rate / WIRE / BT * (1 - loss / 100)


def flights(nbytes):
    """Round trips of slow start to deliver nbytes on a fresh connection (window doubling from
    INIT_WINDOW packets)."""
    packets = math.ceil(nbytes / MSS)
    window, sent, n = INIT_WINDOW, 0, 0
    while sent < packets:
        sent += window
        window *= 2
        n += 1
    return n


def cap(x):
    return "none" if x is None else f"{x}x"


def row(name, secs, n, rtt_ms, loss, pub_x, viewer_x, nat):
    seg = R * secs
    rtt = rtt_ms / 1000
    # The publisher's control floor: one manifest per viewer per segment, on the wire (no
    # tracker: peers could be listed in the manifest).
    control = n * MANIFEST * WIRE / secs
    pub = None if pub_x is None else payload_rate(max(pub_x * R - control, 0.0), loss)
    # The same with manifest deltas: each follower gets the new entry only.
    delta = DELTA_FIXED + 20 * math.ceil(seg / PIECE)
    control_delta = n * delta * WIRE / secs
    pub_delta = None if pub_x is None else payload_rate(max(pub_x * R - control_delta, 0.0), loss)
    one_copy_delta = 0.0 if pub_delta is None else (
        math.inf if pub_delta == 0 else seg / pub_delta)
    viewer = None if viewer_x is None else payload_rate(viewer_x * R, loss)
    one_copy = 0.0 if pub is None else (math.inf if pub == 0 else seg / pub)
    up = math.inf if (pub is None or viewer is None) else pub + n * viewer
    aggregate = n * seg / up
    fluid = max(one_copy, aggregate)
    # Store and forward: a piece is passed on only once verified; the publisher's last piece
    # still has to reach the other viewers, whose number of holders at most doubles per piece
    # time at the viewers' cap (an estimate of the tail, not a strict bound).
    piece_time = 0.0 if viewer is None else PIECE / viewer
    tail = math.ceil(math.log2(n)) * piece_time if n > 1 else 0.0
    # Setup from *learned*, the peer already known (no tracker): TCP handshake (1 RTT),
    # BitTorrent handshake with interested -> unchoke (1 RTT), request -> a 32 KiB piece on a
    # fresh connection (slow start: 1 RTT per flight beyond the first half trip), plus the
    # piece's time at the sender's cap.
    # (A viewer's first piece comes from a peer, at the viewers' cap; only the first holders get
    # theirs from the publisher.)
    serial = 0.0 if viewer is None else PIECE / viewer
    piece_rtts = flights(PIECE)
    setup_today = (2 + piece_rtts) * rtt + serial
    setup_tracker = setup_today + 2 * rtt      # plus a tracker announce on a new connection
    setup_fast = (1 + piece_rtts) * rtt + serial  # BEP 6: the request goes with the handshake
    setup_kept = rtt + serial                  # a connection kept from the previous segment
    # Least behind live (published -> every viewer holds the segment): the fastest setup the
    # protocol allows today plus the fluid delivery floor.
    behind = setup_today + fluid
    # Behind NAT, a viewer exchanges pieces only with reachable viewers (and the publisher): the
    # reachable ones must upload the whole stream of the NATed ones (the publisher's one copy
    # aside), so their uplinks carry this share of their cap in payload alone.
    natted = round(nat * n)
    reachable = n - natted
    nat_load = None
    if natted and viewer is not None and reachable:
        nat_load = max(natted * R - (pub or 0.0), 0.0) / (reachable * viewer)
    return [
        name,
        f"{secs} s, {n}, {rtt_ms} ms, {loss}%, {cap(pub_x)} / {cap(viewer_x)}, NAT {nat:.0%}",
        f"{one_copy:.2f} s ({one_copy / secs:.0%})",
        f"{100 * control / (pub_x * R):.1f}%" if pub_x else "-",
        f"{one_copy_delta:.2f} s ({one_copy_delta / secs:.0%}), {100 * control_delta / (pub_x * R):.1f}%"
        if pub_x else "-",
        f"{aggregate:.2f} s",
        f"{fluid:.2f} s",
        f"{tail:.2f} s",
        f"{1000 * setup_tracker:.0f}",
        f"{1000 * setup_today:.0f}",
        f"{1000 * setup_fast:.0f}",
        f"{1000 * setup_kept:.0f}",
        f"{behind:.2f} s",
        "-" if nat_load is None else f"{nat_load:.0%}",
    ]


def main():
    head = ["configuration", "segment, viewers, RTT, loss, caps (publisher / viewer), NAT",
            "publisher: one copy", "manifests' share of its cap",
            "with deltas: one copy, manifests' share",
            "aggregate upload bound", "delivery floor", "piece tail (estimate)",
            "setup ms: tracker + fresh connection", "fresh, peer known", "BEP 6", "kept connection",
            "least behind live", "NAT: reachable viewers' uplinks busy with payload"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
    for c in CONFIGS:
        print("| " + " | ".join(row(*c)) + " |")


if __name__ == "__main__":
    main()
