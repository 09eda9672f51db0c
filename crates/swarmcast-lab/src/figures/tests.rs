use swarmcast_metrics::{Event, Kind, Role};

use super::align::{align, PACKET};
use super::playout::TICKS;
use super::*;

const S: u64 = 1_000_000;
/// The nodes start at 100 s (wall clock).
const T0: u64 = 100 * S;

fn ev(node: &str, seg: Option<u64>, wall_us: u64, kind: Kind) -> Event {
    Event {
        v: 1,
        node: node.into(),
        role: Role::Viewer,
        seg,
        wall_us,
        mono_us: wall_us - T0,
        kind,
    }
}

/// Five 2 s segments of 10 packets each, cut at 102, 104, ... s.
fn publisher() -> Vec<Event> {
    (0..5)
        .map(|n| {
            ev(
                "publisher",
                Some(n),
                T0 + (n + 1) * 2 * S,
                Kind::Cut {
                    size: 10 * PACKET as u64,
                    media_start: n * 2 * TICKS,
                    duration: 2 * TICKS,
                    discontinuity: false,
                },
            )
        })
        .collect()
}

fn stream() -> Vec<u8> {
    (0..50u64)
        .flat_map(|i| {
            let mut p = vec![(i % 251) as u8; PACKET];
            p[0] = 0x47;
            p[1..9].copy_from_slice(&i.to_le_bytes());
            p
        })
        .collect()
}

#[test]
fn a_segment_viewer_that_skipped_one_loses_its_bytes() {
    let p = published(&publisher());
    assert_eq!(p.bytes(), 50 * PACKET as u64);
    let mut events = vec![ev("v", None, T0, Kind::Added)];
    for n in [0u64, 1, 3, 4] {
        let done = T0 + (n + 1) * 2 * S + S / 2;
        events.push(ev(
            "v",
            Some(n),
            done,
            Kind::Completed {
                since_added_us: 1,
                via: "swarm".into(),
                from_publisher: 500,
                from_peers: 1380,
                from_http: 0,
                connect_attempts: None,
                connect_errors: None,
                failed_dials: None,
            },
        ));
        events.push(ev(
            "v",
            Some(n),
            done + 1,
            Kind::Played {
                deadline_us: 0,
                stall_us: 0,
                bytes: 1880,
            },
        ));
    }
    let f = segment_node("v", &events, &p, 2 * TICKS, false);
    assert_eq!(f.range_bytes, 50 * PACKET as u64);
    assert_eq!(f.lost_bytes, 10 * PACKET as u64);
    assert_eq!(f.payload_bytes, 4 * 1880);
    assert_eq!(f.from_publisher_bytes, 4 * 500);
    // Segment 0 there at 102.5 s: startup 2.5 s; media 0 came in at 100 s.
    assert_eq!(f.startup_ms, Some(2500.0));
    assert_eq!(f.playout.played_ticks, 8 * TICKS);
    assert!((f.playout.glass_ms[0] - 2500.0).abs() < 1e-6);
    // Left after segment 1: its range ends there, nothing lost.
    let f = segment_node("v", &events[..5], &p, 2 * TICKS, true);
    assert_eq!((f.range_bytes, f.lost_bytes), (20 * PACKET as u64, 0));
}

#[test]
fn a_continuous_node_maps_its_bytes_to_media_and_counts_the_gap() {
    let p = published(&publisher());
    let s = stream();
    // Packets 0..20 from the source (the publisher's host), then 25..50 from another relay.
    let out: Vec<u8> = [&s[..20 * PACKET], &s[25 * PACKET..]].concat();
    let a = align(&s, &out);
    let mut events = vec![ev(
        "v",
        None,
        T0,
        Kind::StreamConnected {
            url: "http://10.0.0.1:8000/live.ts".into(),
            from: None,
            position: None,
        },
    )];
    // 10 packets (2 s of media) a sample, each 1 s after its segment's cut.
    for k in 1..=2u64 {
        events.push(ev(
            "v",
            None,
            T0 + k * 2 * S + S,
            Kind::StreamBytes {
                total: k * 10 * PACKET as u64,
            },
        ));
    }
    events.push(ev(
        "v",
        None,
        T0 + 7 * S,
        Kind::StreamConnected {
            url: "http://10.0.0.7:8000/live.ts".into(),
            from: None,
            position: None,
        },
    ));
    events.push(ev(
        "v",
        None,
        T0 + 11 * S,
        Kind::StreamBytes {
            total: out.len() as u64,
        },
    ));
    let hosts = vec!["10.0.0.1".to_string()];
    let f = continuous_node("v", &events, &a, &p, 2 * TICKS, false, &hosts);
    assert_eq!(f.lost_bytes, 5 * PACKET as u64);
    assert_eq!(f.range_bytes, 50 * PACKET as u64);
    assert_eq!(f.payload_bytes, out.len() as u64);
    assert_eq!(f.from_publisher_bytes, 20 * PACKET as u64);
    assert_eq!(f.foreign_bytes, 0);
    // 9 s of media played, 1 s (the gap) frozen.
    assert_eq!(f.playout.played_ticks, 9 * TICKS);
    assert_eq!(f.playout.skipped_ticks, TICKS);
    assert_eq!(f.startup_ms, Some(3000.0));
    // Starts at 103 s, plays media 0..4 s until 107 s, freezes 1 s, then needs media 5 s at
    // 108 s: the rest is there at 111 s, a 3 s stall.
    assert_eq!(f.playout.stalls, 1);
    assert_eq!(f.playout.stall_us, 3 * S);
}

#[test]
fn a_striped_node_takes_the_publishers_share_from_its_frame_bytes() {
    let p = published(&publisher());
    let s = stream();
    let a = align(&s, &s);
    // Connected last to a node (so by connections none would be the publisher's), but a
    // quarter of its frame bytes came from the publisher's host.
    let events = vec![
        ev(
            "v",
            None,
            T0,
            Kind::StreamConnected {
                url: "http://10.0.0.9:8095/stripe/2".into(),
                from: None,
                position: None,
            },
        ),
        ev(
            "v",
            None,
            T0 + 11 * S,
            Kind::StreamBytes {
                total: s.len() as u64,
            },
        ),
        ev(
            "v",
            None,
            T0 + 11 * S,
            Kind::StripeBytes {
                received: 4000,
                from_source: 1000,
            },
        ),
    ];
    let hosts = vec!["10.0.0.1".to_string()];
    let f = continuous_node("v", &events, &a, &p, 2 * TICKS, false, &hosts);
    assert_eq!(f.payload_bytes, s.len() as u64);
    assert_eq!(f.from_publisher_bytes, (s.len() as u64 + 2) / 4);
}

#[test]
fn url_hosts() {
    assert_eq!(url_host("http://10.0.0.2:8000/live.ts"), "10.0.0.2");
    assert_eq!(
        url_host("http://source:pw@10.0.0.2:8000/live.ts"),
        "10.0.0.2"
    );
    assert_eq!(url_host("http://host/stream?from=3:0"), "host");
}
