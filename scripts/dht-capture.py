#!/usr/bin/env python3
"""What the lab's DHT host answered, by who asked, what and for which target.

Reads a capture taken on the DHT host of a `@manifests=dht` lab run, e.g.

    ip netns exec swc-<lab pid>-h22 tcpdump -i eth0 -s 0 -w dht.pcap udp

(the DHT host is the lab's last host; its namespace exists while the run does), and the stream's
link (`pk=`, from the run's run.json). Prints the IP bytes of the host's answers by the asker's
role (the publisher at 10.77.1.2, viewers at other 10.77.x.y; port 6881 is a process's `mainline`
node, any other its librqbit DHT), the query, and the target: the stream's pointer (BEP 44,
SHA-1 of the key and the salt `swarmcast/1`), the stream's peer key (SHA-1 of `swarmcast/peers/1`
and the key), another info hash (segments; a find_node's target), or none (ping). Then the figures the scale
model takes (crates/swarmcast-lab/src/scale.rs): bytes per viewer and per node that answered, for
the peer key's lookups and the pointer's gets.

Standard library only. docs/netlab.md, "The DHT host".
"""
import base64
import collections
import hashlib
import struct
import sys

from bencoding import bdecode

DHT_HOST = "10.77.22.2"
PUBLISHER = "10.77.1.2"


def packets(path):
    """(src, sport, dst, dport, ip_len, payload) of each IPv4 UDP packet of a pcap file."""
    with open(path, "rb") as f:
        if len(f.read(24)) < 24:
            sys.exit(f"{path}: not a pcap file (no header)")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            _, _, incl, _ = struct.unpack("<IIII", h)
            d = f.read(incl)
            if d[12:14] != b"\x08\x00":
                continue
            ihl = (d[14] & 15) * 4
            ip = d[14:14 + ihl]
            if len(ip) < 20 or ip[9] != 17:
                continue
            ip_len = struct.unpack(">H", ip[2:4])[0]
            udp = d[14 + ihl:]
            sport, dport = struct.unpack(">HH", udp[:4])
            yield (".".join(map(str, ip[12:16])), sport, ".".join(map(str, ip[16:20])), dport,
                   ip_len, udp[8:])


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dht-capture.py CAPTURE.pcap STREAM_KEY (the link's pk= value)")
    path, pk = sys.argv[1], sys.argv[2].strip().lower()
    try:
        key = base64.b32decode(pk.upper() + "=" * (-len(pk) % 8))
    except ValueError as e:
        sys.exit(f"stream key {pk!r}: not base32 ({e})")
    if len(key) != 32:
        sys.exit(f"stream key {pk!r}: {len(key)} bytes, expected 32")
    pointer = hashlib.sha1(key + b"swarmcast/1").digest()
    peer_key = hashlib.sha1(b"swarmcast/peers/1" + key).digest()

    def target_kind(args):
        t = args.get(b"info_hash") or args.get(b"target")
        if t is None or t == b"":
            return "none"
        if t == pointer:
            return "pointer"
        if t == peer_key:
            return "peer key"
        return "other"

    def role(ip, port):
        who = "publisher" if ip == PUBLISHER else "viewer" if ip.startswith("10.77.") else ip
        return who + (" mainline" if port == 6881 else " librqbit")

    pending = {}
    answers = collections.Counter()
    count = collections.Counter()
    nodes = collections.defaultdict(set)
    viewers = set()
    for src, sport, dst, dport, ip_len, payload in packets(path):
        try:
            m, _ = bdecode(payload)
        except (ValueError, IndexError):
            continue
        if not isinstance(m, dict):
            continue
        y, tid = m.get(b"y"), m.get(b"t")
        if dst == DHT_HOST and y == b"q":
            q = m.get(b"q", b"?").decode(errors="replace")
            args = m.get(b"a", {})
            kind = target_kind(args if isinstance(args, dict) else {})
            pending[(src, sport, tid)] = (role(src, sport), q, kind, dport)
            if src != PUBLISHER:
                viewers.add(src)
        elif src == DHT_HOST and y in (b"r", b"e"):
            k = pending.pop((dst, dport, tid), None)
            if k is None:
                continue
            answers[k[:3]] += ip_len
            count[k[:3]] += 1
            nodes[k[:3]].add(k[3])
    total = sum(answers.values())
    if total == 0:
        sys.exit(f"{path}: no DHT answers from {DHT_HOST}")
    print(f"{total} bytes of answers from {DHT_HOST}, {len(viewers)} viewers\n")
    print("| asker | query | target | answers | bytes | share | nodes |")
    print("|---|---|---|---:|---:|---:|---:|")
    for k, v in sorted(answers.items(), key=lambda kv: -kv[1]):
        print(f"| {k[0]} | {k[1]} | {k[2]} | {count[k]} | {v} | {100 * v / total:.1f}% | "
              f"{len(nodes[k])} |")

    def per_viewer_node(kind, queries, who="viewer"):
        picked = [k for k in answers if k[2] == kind and k[1] in queries and k[0].startswith(who)]
        if not picked or not viewers:
            return 0.0, 0
        n = len(set().union(*(nodes[k] for k in picked)))
        return sum(answers[k] for k in picked) / len(viewers) / n, n

    key_b, key_n = per_viewer_node("peer key", ("get_peers", "announce_peer"))
    ptr_b, ptr_n = per_viewer_node("pointer", ("get",))
    print(f"\npeer key: {key_b:.0f} bytes per viewer and node ({key_n} nodes answered)")
    print(f"pointer gets: {ptr_b:.0f} bytes per viewer and node ({ptr_n} nodes answered)")


if __name__ == "__main__":
    main()
