//! Hole punching's tests: peers behind NAT listed each other at the segment's punch port, a few
//! partners each, the same both ways, changing per segment; nothing without the NAT check.

use super::*;

fn announce_from(
    t: &mut Tracker,
    ih: &[u8; 20],
    id: u8,
    from: SocketAddr,
    now_ms: u64,
    extra: &str,
) -> Vec<SocketAddr> {
    compact_peers(&t.handle(
        &query(
            ih,
            &[id; 20],
            from.port(),
            &format!("&left=10&compact=1{extra}"),
        ),
        from.ip(),
        now_ms,
    ))
}

/// `v` with its elements after the first `keep` sorted (the punched peers come in ring order).
fn tail_sorted(mut v: Vec<SocketAddr>, keep: usize) -> Vec<SocketAddr> {
    let keep = keep.min(v.len());
    v[keep..].sort();
    v
}

#[test]
fn peers_behind_nat_are_listed_each_other_at_the_segments_punch_port() {
    let (a, b) = ([21u8; 20], [22u8; 20]);
    let publisher: SocketAddr = "10.0.0.9:4000".parse().unwrap();
    let mut t = Tracker::new(10, 1)
        .with_nat_check(NatCheck::default())
        .with_punch(Some(52000..=52063));
    t.add_segment(a, Some(publisher), 5);
    t.add_segment(b, Some(publisher), 70);
    let r: SocketAddr = "10.0.0.1:5001".parse().unwrap();
    let n1: SocketAddr = "10.0.0.2:5002".parse().unwrap();
    let n2: SocketAddr = "10.0.0.3:5003".parse().unwrap();
    let n3: SocketAddr = "10.0.0.4:5004".parse().unwrap();
    // n3 announces only the other segment's torrent: it is live all the same.
    for (id, peer, ih, at) in [(1, r, a, 0), (2, n1, a, 10), (3, n2, a, 20), (4, n3, b, 30)] {
        announce_from(&mut t, &ih, id, peer, at, "");
    }
    assert_eq!(t.to_check(), vec![r, n1, n2, n3]);
    t.set_reachable(r, true, 40);
    for n in [n1, n2, n3] {
        t.set_reachable(n, false, 40);
    }
    let at = |peer: SocketAddr, port: u16| SocketAddr::new(peer.ip(), port);
    // Segment 5: port 52005, after the publisher and the reachable peers, never the announcer.
    assert_eq!(
        tail_sorted(announce_from(&mut t, &a, 2, n1, 50, ""), 2),
        vec![publisher, r, at(n2, 52005), at(n3, 52005)]
    );
    assert_eq!(
        tail_sorted(announce_from(&mut t, &a, 3, n2, 60, ""), 2),
        vec![publisher, r, at(n1, 52005), at(n3, 52005)]
    );
    // Segment 70: 52000 + 70 mod 64 (r announced only segment 5).
    assert_eq!(
        tail_sorted(announce_from(&mut t, &b, 4, n3, 70, ""), 1),
        vec![publisher, at(n1, 52006), at(n2, 52006)]
    );
    assert_eq!(t.punch_port(70), Some(52006));
    // A reachable announcer is never listed the peers behind NAT (here it is spared).
    assert_eq!(announce_from(&mut t, &a, 1, r, 80, ""), vec![publisher]);
    // numwant bounds the whole answer; a stopped announce gets nobody punched.
    let three = announce_from(&mut t, &a, 2, n1, 90, "&numwant=3");
    assert_eq!(three.len(), 3);
    assert!(
        [at(n2, 52005), at(n3, 52005)].contains(&three[2]),
        "{three:?}"
    );
    assert!(!announce_from(&mut t, &a, 2, n1, 95, "&event=stopped")
        .iter()
        .any(|p| p.port() == 52005));
    let c = t.counters();
    assert_eq!((c.punched, c.punch_listed), (4, 7));
    // A peer silent for three intervals (30 s) is no longer listed (n1, last heard at 90 ms;
    // r left segment 5's swarm too).
    announce_from(&mut t, &b, 4, n3, 29_000, "");
    assert_eq!(
        announce_from(&mut t, &a, 3, n2, 30_100, ""),
        vec![publisher, at(n3, 52005)]
    );
    // A torrent with no segment number is never punched.
    let c = [23u8; 20];
    t.add_torrent(c, Some(publisher));
    assert_eq!(
        announce_from(&mut t, &c, 3, n2, 30_110, ""),
        vec![publisher]
    );
}

#[test]
fn each_peer_behind_nat_gets_a_few_partners_who_get_it_back_and_they_change_per_segment() {
    let publisher: SocketAddr = "10.0.0.250:4000".parse().unwrap();
    let mut t = Tracker::new(10, 1)
        .with_nat_check(NatCheck::default())
        .with_punch(Some(52000..=52063));
    let peers: Vec<SocketAddr> = (1..=30u8)
        .map(|i| SocketAddr::from(([10, 0, 1, i], 5000)))
        .collect();
    let segs: Vec<[u8; 20]> = (0..3u8).map(|n| [100 + n; 20]).collect();
    for (n, ih) in segs.iter().enumerate() {
        t.add_segment(*ih, Some(publisher), n as u64);
    }
    for (i, p) in peers.iter().enumerate() {
        announce_from(&mut t, &segs[0], i as u8, *p, 0, "");
    }
    t.to_check();
    for p in &peers {
        t.set_reachable(*p, false, 10);
    }
    let mut per_seg = Vec::new();
    for (n, ih) in segs.iter().enumerate() {
        let port = 52000 + n as u16;
        let mut partners = std::collections::BTreeMap::new();
        for (i, p) in peers.iter().enumerate() {
            let listed = announce_from(&mut t, ih, i as u8, *p, 20 + n as u64, "");
            assert_eq!(listed[0], publisher);
            let mine: std::collections::BTreeSet<std::net::IpAddr> = listed[1..]
                .iter()
                .map(|a| {
                    assert_eq!(a.port(), port);
                    a.ip()
                })
                .collect();
            assert_eq!(mine.len(), PUNCH_DEGREE, "{listed:?}");
            assert!(!mine.contains(&p.ip()));
            partners.insert(p.ip(), mine);
        }
        // Symmetric: whoever is listed to me is listed me.
        for (me, mine) in &partners {
            for other in mine {
                assert!(partners[other].contains(me), "{me} lists {other}, not back");
            }
        }
        per_seg.push(partners);
    }
    assert_ne!(
        per_seg[0], per_seg[1],
        "the same partners for every segment"
    );
    assert_ne!(per_seg[1], per_seg[2]);
}

#[test]
fn punching_needs_the_nat_check() {
    let ih = [24u8; 20];
    let mut t = Tracker::new(10, 1).with_punch(Some(52000..=52063));
    t.add_segment(ih, None, 1);
    let n1: SocketAddr = "10.0.0.2:5002".parse().unwrap();
    let n2: SocketAddr = "10.0.0.3:5003".parse().unwrap();
    announce_from(&mut t, &ih, 1, n1, 0, "");
    // Without the check nobody is known to be behind NAT: listed as announced, not punched.
    assert_eq!(announce_from(&mut t, &ih, 2, n2, 10, ""), vec![n1]);
    assert_eq!(t.counters().punched, 0);
    // An empty range is off.
    let (first, last) = (52001, 52000);
    let t = Tracker::new(10, 1).with_punch(Some(first..=last));
    assert_eq!(t.punch_port(3), None);
}

#[test]
fn with_the_nat_check_off_every_peer_is_listed_and_nothing_is_checked() {
    let ih = [15u8; 20];
    let mut off = Tracker::new(10, 1);
    off.add_torrent(ih, Some(addr(4000)));
    let mut on = nat_tracker(10, NatCheck::default(), ih);
    assert_eq!(off.nat_check(), None);
    assert_eq!(on.nat_check(), Some(NatCheck::default()));
    for (now, (id, port)) in [(1, 5001), (2, 5002), (3, 5003)].into_iter().enumerate() {
        let q = query(&ih, &[id; 20], port, "&left=10&compact=1");
        off.handle(&q, LOCAL, now as u64);
        on.handle(&q, LOCAL, now as u64);
    }
    assert!(off.to_check().is_empty());
    assert_eq!(off.reachability(&addr(5001)), Reachability::Unchecked);
    for a in on.to_check() {
        on.set_reachable(a, true, 10);
    }
    // Once every peer passed, the answers are byte for byte those of the tracker without it.
    for q in [
        query(&ih, &[1; 20], 5001, "&left=10&compact=1"),
        query(&ih, &[2; 20], 5002, "&left=0"),
    ] {
        assert_eq!(off.handle(&q, LOCAL, 20), on.handle(&q, LOCAL, 20));
    }
    // Without it, a new peer is listed from its first announce.
    off.handle(&query(&ih, &[4; 20], 5004, "&compact=1"), LOCAL, 30);
    assert_eq!(
        compact_peers(&off.handle(&query(&ih, &[5; 20], 5005, "&compact=1"), LOCAL, 30)),
        vec![addr(4000), addr(5004), addr(5001), addr(5002), addr(5003)]
    );
    let c = off.counters();
    assert_eq!((c.nat_checks, c.nat_unreachable), (0, 0));
}
