//! The tracker's unit tests: parsing, peer lists and expiry on the given clock here, with the
//! helpers the others share; the NAT check, sparing and catching up in `tests/nat.rs`, hole
//! punching in `tests/punch.rs`.

use super::*;
use percent_encoding::{percent_encode, NON_ALPHANUMERIC};

mod nat;
mod punch;

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn query(info_hash: &[u8; 20], peer_id: &[u8; 20], port: u16, extra: &str) -> String {
    format!(
        "info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0{extra}",
        percent_encode(info_hash, NON_ALPHANUMERIC),
        percent_encode(peer_id, NON_ALPHANUMERIC)
    )
}

fn decode(bytes: &[u8]) -> serde_bencode::value::Value {
    serde_bencode::from_bytes(bytes).unwrap()
}

fn dict_get<'a>(
    v: &'a serde_bencode::value::Value,
    key: &str,
) -> Option<&'a serde_bencode::value::Value> {
    match v {
        serde_bencode::value::Value::Dict(d) => d.get(key.as_bytes()),
        _ => None,
    }
}

fn failure_reason(bytes: &[u8]) -> Option<String> {
    match dict_get(&decode(bytes), "failure reason") {
        Some(serde_bencode::value::Value::Bytes(b)) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

fn compact_peers(bytes: &[u8]) -> Vec<SocketAddr> {
    match dict_get(&decode(bytes), "peers") {
        Some(serde_bencode::value::Value::Bytes(b)) => b
            .chunks(6)
            .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
            .collect(),
        other => panic!("no compact peers: {other:?}"),
    }
}

#[test]
fn binary_info_hashes_and_peer_ids_are_percent_decoded_to_bytes() {
    // Every byte value, including ones that are not UTF-8 and ones that look like separators.
    let info_hash: [u8; 20] = [
        0x00, 0xFF, b'&', b'=', b'%', b'+', 0x80, 0xC3, 0x28, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    ];
    let peer_id = *b"-qB4650-abcdefghijkl";
    let a = parse_announce(
        &query(
            &info_hash,
            &peer_id,
            6881,
            "&left=10&compact=1&event=started",
        ),
        LOCAL,
    )
    .unwrap();
    assert_eq!(a.info_hash, info_hash);
    assert_eq!(a.peer_id, peer_id);
    assert_eq!(a.addr, "127.0.0.1:6881".parse().unwrap());
    assert_eq!(
        (a.left, a.compact, a.event),
        (10, true, Some(AnnounceEvent::Started))
    );
    // Unencoded unreserved characters are their own bytes.
    let raw = parse_announce(
        "info_hash=abcdefghij0123456789&peer_id=ABCDEFGHIJ0123456789&port=1",
        LOCAL,
    )
    .unwrap();
    assert_eq!(&raw.info_hash, b"abcdefghij0123456789");
}

#[test]
fn malformed_announces_get_a_failure_reason() {
    let mut t = Tracker::new(10, 1);
    let ih = [1u8; 20];
    t.add_torrent(ih, None);
    let cases = [
        (
            "info_hash=short&peer_id=ABCDEFGHIJ0123456789&port=1".to_string(),
            "info_hash must be exactly 20 bytes, found 5",
        ),
        (query(&ih, &[2; 20], 0, ""), "port must be 1-65535"),
        (
            format!("info_hash={}&port=1", percent_encode(&ih, NON_ALPHANUMERIC)),
            "missing peer_id",
        ),
        (
            query(&ih, &[2; 20], 1, "&left=-5"),
            "left must be a non-negative integer",
        ),
        (query(&ih, &[2; 20], 1, "&event=bogus"), "unknown event"),
        (query(&[9; 20], &[2; 20], 1, ""), "unknown info_hash"),
    ];
    for (q, want) in cases {
        let reason = failure_reason(&t.handle(&q, LOCAL, 0)).unwrap_or_default();
        assert!(reason.contains(want), "{q}: {reason:?}");
    }
    assert_eq!(t.counters().failures, 6);
}

#[test]
fn compact_and_list_forms_list_the_publisher_first_and_never_the_caller() {
    let mut t = Tracker::new(10, 2);
    let ih = [7u8; 20];
    let publisher: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    t.add_torrent(ih, Some(publisher));
    let a = t.handle(
        &query(&ih, &[1; 20], 5001, "&left=100&compact=1"),
        LOCAL,
        1000,
    );
    assert_eq!(compact_peers(&a), vec![publisher]);
    let b = t.handle(
        &query(&ih, &[2; 20], 5002, "&left=100&compact=1"),
        LOCAL,
        2000,
    );
    assert_eq!(
        compact_peers(&b),
        vec![publisher, "127.0.0.1:5001".parse().unwrap()]
    );
    let v = decode(&b);
    assert!(matches!(
        dict_get(&v, "interval"),
        Some(serde_bencode::value::Value::Int(10))
    ));
    assert!(matches!(
        dict_get(&v, "min interval"),
        Some(serde_bencode::value::Value::Int(2))
    ));
    assert!(matches!(
        dict_get(&v, "complete"),
        Some(serde_bencode::value::Value::Int(1))
    ));
    assert!(matches!(
        dict_get(&v, "incomplete"),
        Some(serde_bencode::value::Value::Int(2))
    ));

    // The BEP 3 list form, with peer ids.
    let list = t.handle(&query(&ih, &[3; 20], 5003, "&left=0"), LOCAL, 3000);
    let Some(serde_bencode::value::Value::List(peers)) = dict_get(&decode(&list), "peers").cloned()
    else {
        panic!("no peer list")
    };
    let ports: Vec<i64> = peers
        .iter()
        .map(|p| match dict_get(p, "port") {
            Some(serde_bencode::value::Value::Int(port)) => *port,
            _ => panic!("no port"),
        })
        .collect();
    assert_eq!(
        ports,
        vec![4000, 5002, 5001],
        "publisher, then most recent first"
    );
    assert!(
        matches!(dict_get(&peers[1], "peer id"), Some(serde_bencode::value::Value::Bytes(id)) if id == &vec![2u8; 20])
    );
    // numwant caps the list.
    let one = t.handle(
        &query(&ih, &[4; 20], 5004, "&compact=1&numwant=1"),
        LOCAL,
        3000,
    );
    assert_eq!(compact_peers(&one).len(), 1);
}

#[test]
fn only_that_info_hashs_peers_are_returned() {
    let mut t = Tracker::new(10, 1);
    let (x, y) = ([1u8; 20], [2u8; 20]);
    t.add_torrent(x, None);
    t.add_torrent(y, None);
    t.handle(&query(&x, &[1; 20], 5001, "&compact=1"), LOCAL, 0);
    let other = t.handle(&query(&y, &[2; 20], 5002, "&compact=1"), LOCAL, 0);
    assert!(compact_peers(&other).is_empty());
    t.remove_torrent(&x);
    assert!(failure_reason(&t.handle(&query(&x, &[3; 20], 5003, ""), LOCAL, 0)).is_some());
}

#[test]
fn peers_expire_after_three_intervals_on_the_given_clock_and_stopped_leaves_at_once() {
    let mut t = Tracker::new(10, 1);
    let ih = [5u8; 20];
    t.add_torrent(ih, None);
    t.handle(&query(&ih, &[1; 20], 5001, "&compact=1"), LOCAL, 0);
    t.handle(&query(&ih, &[2; 20], 5002, "&compact=1"), LOCAL, 20_000);
    t.expire(29_999);
    assert_eq!(t.peers(&ih), 2);
    t.expire(30_000); // peer 1: 3 x 10 s without an announce
    assert_eq!(t.peers(&ih), 1);
    assert_eq!(t.counters().expired, 1);
    let seen = t.handle(&query(&ih, &[3; 20], 5003, "&compact=1"), LOCAL, 30_000);
    assert_eq!(
        compact_peers(&seen),
        vec!["127.0.0.1:5002".parse().unwrap()]
    );
    t.handle(&query(&ih, &[2; 20], 5002, "&event=stopped"), LOCAL, 30_001);
    assert_eq!(t.peers(&ih), 1);
}

#[test]
fn an_announce_expires_peers_at_its_own_time_and_an_earlier_clock_expires_none() {
    // No `expire` call: each announce expires peers at the time it is given, in ms.
    let mut t = Tracker::new(2, 1);
    let ih = [6u8; 20];
    t.add_torrent(ih, None);
    t.handle(&query(&ih, &[1; 20], 5001, "&compact=1"), LOCAL, 1_000);
    t.handle(&query(&ih, &[2; 20], 5002, "&compact=1"), LOCAL, 4_000);
    // 6,999 ms: peer 1 was heard 5,999 ms ago, under 3 x 2 s; it is still listed.
    let seen = t.handle(&query(&ih, &[3; 20], 5003, "&compact=1"), LOCAL, 6_999);
    assert_eq!(
        compact_peers(&seen),
        vec![addr(5002), addr(5001)],
        "most recently heard first"
    );
    assert_eq!(t.counters().expired, 0);
    // A clock before a peer's last announce (saturating) expires nobody.
    t.expire(0);
    assert_eq!(t.peers(&ih), 3);
    // 7,000 ms: exactly three intervals since peer 1's announce; it is gone.
    let seen = t.handle(&query(&ih, &[3; 20], 5003, "&compact=1"), LOCAL, 7_000);
    assert_eq!(compact_peers(&seen), vec![addr(5002)]);
    assert_eq!((t.peers(&ih), t.counters().expired), (2, 1));
    // Far later, one announce expires every peer (its own stale entry too) before it is
    // listed again, alone.
    let seen = t.handle(&query(&ih, &[3; 20], 5003, "&compact=1"), LOCAL, 1_000_000);
    assert!(compact_peers(&seen).is_empty());
    assert_eq!((t.peers(&ih), t.counters().expired), (1, 3));
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(LOCAL, port)
}

/// A tracker with the NAT check on, seeding `ih` from 127.0.0.1:4000.
fn nat_tracker(interval_s: u64, nat: NatCheck, ih: [u8; 20]) -> Tracker {
    let mut t = Tracker::new(interval_s, 1).with_nat_check(nat);
    t.add_torrent(ih, Some(addr(4000)));
    t
}

fn announce(t: &mut Tracker, ih: &[u8; 20], id: u8, port: u16, now_ms: u64) -> Vec<SocketAddr> {
    compact_peers(&t.handle(
        &query(ih, &[id; 20], port, "&left=10&compact=1"),
        LOCAL,
        now_ms,
    ))
}

#[test]
fn ipv6_peers_go_to_peers6() {
    let mut t = Tracker::new(10, 1);
    let ih = [6u8; 20];
    t.add_torrent(ih, Some("[::1]:4000".parse().unwrap()));
    let r = t.handle(&query(&ih, &[1; 20], 5001, "&compact=1"), LOCAL, 0);
    let v = decode(&r);
    assert!(
        matches!(dict_get(&v, "peers6"), Some(serde_bencode::value::Value::Bytes(b)) if b.len() == 18)
    );
}

/// An announce of `id` at `port` from `ip` at `now_ms`, compact unless `extra` says otherwise.
fn from(
    t: &mut Tracker,
    ih: &[u8; 20],
    ip: [u8; 4],
    id: u8,
    port: u16,
    extra: &str,
    now_ms: u64,
) -> Vec<u8> {
    t.handle(&query(ih, &[id; 20], port, extra), IpAddr::from(ip), now_ms)
}

#[test]
fn a_peer_id_claimed_from_another_address_neither_stops_nor_redirects_its_owner() {
    let mut t = Tracker::new(10, 1);
    let ih = [7u8; 20];
    t.add_torrent(ih, None);
    let victim: SocketAddr = "127.0.0.2:6001".parse().unwrap();
    from(&mut t, &ih, [127, 0, 0, 2], 1, 6001, "&compact=1", 0);
    // The attacker learns the victim's id (a list answer shows it) and claims it: a `stopped`
    // for the victim's id and port, then an announce of the id at a port of its own.
    let list = from(&mut t, &ih, [127, 0, 0, 3], 9, 7001, "", 1);
    let Some(serde_bencode::value::Value::List(peers)) = dict_get(&decode(&list), "peers").cloned()
    else {
        panic!("no peer list")
    };
    assert!(
        matches!(dict_get(&peers[0], "peer id"), Some(serde_bencode::value::Value::Bytes(id)) if id == &vec![1u8; 20])
    );
    from(&mut t, &ih, [127, 0, 0, 3], 1, 6001, "&event=stopped", 2);
    from(&mut t, &ih, [127, 0, 0, 3], 1, 7002, "&compact=1", 3);
    // The victim is still listed where it announced, and the claim is listed where it came from.
    let seen = compact_peers(&from(&mut t, &ih, [127, 0, 0, 4], 4, 8001, "&compact=1", 4));
    assert!(seen.contains(&victim), "{seen:?}");
    assert!(
        seen.contains(&"127.0.0.3:7002".parse().unwrap()),
        "{seen:?}"
    );
    // Its own `stopped` (from its address) does remove it.
    from(&mut t, &ih, [127, 0, 0, 2], 1, 6001, "&event=stopped", 5);
    let seen = compact_peers(&from(&mut t, &ih, [127, 0, 0, 4], 4, 8001, "&compact=1", 6));
    assert!(!seen.contains(&victim), "{seen:?}");
}

#[test]
fn one_address_holds_at_most_its_share_and_a_swarm_at_most_its_cap() {
    let mut t = Tracker::new(1_000, 1);
    let ih = [8u8; 20];
    t.add_torrent(ih, None);
    from(&mut t, &ih, [127, 0, 0, 2], 2, 6001, "&compact=1", 0);
    // One address announcing many ports keeps only its most recent MAX_PEERS_PER_ADDRESS.
    let extra = 4;
    for i in 0..(MAX_PEERS_PER_ADDRESS + extra) as u16 {
        from(
            &mut t,
            &ih,
            [127, 0, 0, 9],
            9,
            7000 + i,
            "&compact=1",
            1 + u64::from(i),
        );
    }
    assert_eq!(t.peers(&ih), 1 + MAX_PEERS_PER_ADDRESS);
    assert_eq!(t.counters().displaced, extra as u64);
    let seen = compact_peers(&from(
        &mut t,
        &ih,
        [127, 0, 0, 4],
        4,
        8001,
        "&compact=1&numwant=200",
        100,
    ));
    assert!(
        seen.contains(&"127.0.0.2:6001".parse().unwrap()),
        "the other host stays"
    );
    assert!(
        !seen.contains(&"127.0.0.9:7000".parse().unwrap()),
        "the oldest port went"
    );
    assert!(
        seen.contains(&"127.0.0.9:7019".parse().unwrap()),
        "the newest stays"
    );

    // A swarm keeps at most MAX_SWARM_PEERS: newcomers displace the least recently heard.
    let mut u = Tracker::new(1_000, 1);
    u.add_torrent(ih, None);
    let n = MAX_SWARM_PEERS + 3;
    for i in 0..n {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        from(&mut u, &ih, ip, 1, 6881, "&compact=1", i as u64);
    }
    assert_eq!(u.peers(&ih), MAX_SWARM_PEERS);
    assert_eq!(u.counters().displaced, 3);
    // The answer is the most recent `numwant`, newest first.
    let seen = compact_peers(&from(
        &mut u,
        &ih,
        [127, 0, 0, 5],
        5,
        9000,
        "&compact=1&numwant=3",
        n as u64,
    ));
    let newest =
        |i: usize| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
    assert_eq!(seen, vec![newest(n - 1), newest(n - 2), newest(n - 3)]);
}

#[test]
fn numwant_zero_lists_nobody_with_the_nat_check_on_too() {
    // aria2 announces `numwant=0` when it stops: the answer lists nobody, and nothing overflows
    // (it once did, counting the publisher out of an empty list).
    let ih = [9u8; 20];
    let publisher: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    for nat in [false, true] {
        let mut t = Tracker::new(10, 1);
        if nat {
            t = t.with_nat_check(NatCheck::default());
        }
        t.add_torrent(ih, Some(publisher));
        from(&mut t, &ih, [127, 0, 0, 2], 2, 6001, "&compact=1", 0);
        for extra in [
            "&compact=1&numwant=0",
            "&compact=1&numwant=0&event=stopped&left=5",
        ] {
            let answer = from(&mut t, &ih, [127, 0, 0, 3], 3, 6002, extra, 1);
            assert_eq!(failure_reason(&answer), None);
            assert!(compact_peers(&answer).is_empty(), "nat {nat}, {extra}");
        }
    }
}
