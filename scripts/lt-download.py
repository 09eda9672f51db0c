#!/usr/bin/env python3
"""Downloads one torrent with libtorrent (python3-libtorrent), for the tests that check
swarmcast against a BitTorrent client it did not write.

Usage: lt-download.py TORRENT SAVE_DIR [PEER_PORT]

With PEER_PORT, libtorrent is told of a peer at 127.0.0.1:PEER_PORT; without, it finds peers
through the torrent's trackers. Gives up after 60 s. Prints whether it completed, its peer count
and the tracker it last used: `True 1 http://127.0.0.1:8080/announce`.
"""
import sys
import time

import libtorrent as lt

ses = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                  'enable_upnp': False, 'enable_natpmp': False,
                  'allow_multiple_connections_per_ip': True, 'alert_mask': 0})
h = ses.add_torrent({'ti': lt.torrent_info(sys.argv[1]), 'save_path': sys.argv[2]})
if len(sys.argv) > 3:
    h.connect_peer(('127.0.0.1', int(sys.argv[3])))
deadline = time.time() + 60
while not h.status().is_seeding and time.time() < deadline:
    time.sleep(0.05)
s = h.status()
print(s.is_seeding, s.num_peers, s.current_tracker)
