#!/usr/bin/env python3
"""A peer that serves corrupted pieces: libtorrent (python3-libtorrent) seeding garbage in place
of a live stream's segments, for the test of what viewers do with such a peer.

Usage: lt-corrupt-seed.py PUBLISHER_HTTP BIND_IP FIRST LAST SECONDS [VIEWER_PEER ...]
   or: lt-corrupt-seed.py -   (prints `ready` once libtorrent is loaded, then reads the same
       arguments, separated by spaces, from one line of stdin)

The second form lets a test load python and libtorrent (seconds on a loaded machine) before it
starts the stream, so the bad seed is there from the first segment on.

For each segment number FIRST..=LAST, as soon as the publisher at PUBLISHER_HTTP (host:port)
serves its `.torrent`, writes a file of the segment's length made of random bytes (so every
piece fails its hash check) and adds the torrent in libtorrent's seed mode with hash checks
disabled: libtorrent takes the file as the segment without checking it and serves it. It
announces itself as a seed to the torrent's tracker (the publisher's embedded tracker), from
BIND_IP, where it also listens, and dials each VIEWER_PEER (host:port) for the segment, and
again every 0.1 s while it runs (a bad peer that keeps coming back: a viewer that dropped it
sees it dial in again). Runs for at most SECONDS, or until it is killed.

Prints, flushed, one line per segment added: `added N PORT BYTES SECS` (SECS since it read its
arguments), and once a second the payload bytes it has sent over all segments: `uploaded BYTES`.
"""
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

import libtorrent as lt


def main():
    args = sys.argv[1:]
    if args == ['-']:
        print('ready', flush=True)
        args = sys.stdin.readline().split()
    http, bind_ip = args[0], args[1]
    first, last, seconds = int(args[2]), int(args[3]), float(args[4])
    viewers = []
    for v in args[5:]:
        host, port = v.rsplit(':', 1)
        viewers.append((host, int(port)))
    save = tempfile.mkdtemp(prefix='lt-corrupt-')
    ses = lt.session({'listen_interfaces': bind_ip + ':0', 'outgoing_interfaces': bind_ip,
                      'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
                      'enable_natpmp': False, 'allow_multiple_connections_per_ip': True,
                      # Serve what is on disk as is: the point is to send bad pieces.
                      'disable_hash_checks': True, 'alert_mask': 0,
                      # Dial a peer that dropped us again after 1 s (default 60 s).
                      'min_reconnect_time': 1,
                      # Dial over TCP, where the viewers listen (libtorrent tries uTP first).
                      'enable_outgoing_utp': False})
    handles = []
    started = time.time()
    deadline = started + seconds
    n, last_report, last_dial = first, 0.0, 0.0
    while time.time() < deadline:
        if n <= last:
            url = 'http://%s/segments/%08d.torrent' % (http, n)
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    ti = lt.torrent_info(lt.bdecode(r.read()))
            except (urllib.error.URLError, OSError, RuntimeError):
                ti = None
            if ti is not None:
                path = os.path.join(save, ti.files().file_path(0))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, 'wb') as f:
                    f.write(os.urandom(ti.total_size()))
                h = ses.add_torrent({'ti': ti, 'save_path': save,
                                     'flags': lt.torrent_flags.seed_mode})
                for v in viewers:
                    h.connect_peer(v)
                handles.append(h)
                print('added', n, ses.listen_port(), ti.total_size(),
                      '%.3f' % (time.time() - started), flush=True)
                n += 1
                continue
        now = time.time()
        # Dial again every 0.1 s (a connection that is up is left alone): a viewer refuses a
        # connection for a segment it has not added yet, and a segment takes it about 0.5 s.
        if now - last_dial >= 0.1:
            last_dial = now
            for h in handles:
                for v in viewers:
                    h.connect_peer(v)
        if now - last_report >= 1.0:
            last_report = now
            sent = sum(h.status().total_payload_upload for h in handles)
            print('uploaded', sent, flush=True)
        time.sleep(0.05)


if __name__ == '__main__':
    main()
