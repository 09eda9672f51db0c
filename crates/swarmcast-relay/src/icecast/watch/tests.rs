use super::*;
use crate::directory::{Announce, Directory};

const S: u64 = 1_000_000;
const TIMEOUT: u64 = 3 * S;

fn listing(relays: &[(&str, Option<&str>)], ended: bool) -> Listing {
    let mut d = Directory::new(url("source"), 2);
    for (node, parent) in relays {
        d.announce(
            Announce {
                node: (*node).into(),
                url: url(node),
                parent: parent.map(url),
                capacity: 2,
            },
            0,
        )
        .unwrap();
    }
    if ended {
        d.end();
    }
    d.listing(0)
}

fn url(node: &str) -> String {
    format!("http://{node}:8000/live.ts")
}

#[test]
fn a_node_takes_a_parent_at_the_start_with_no_detection_time() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let l = listing(&[], false);
    let s = w.on_listing(5 * S, &l).unwrap();
    assert_eq!(
        s,
        Switch {
            from: None,
            to: url("source"),
            detect_us: 0
        }
    );
    assert_eq!(w.parent(), Some(url("source").as_str()));
    // Nothing changes while it has one.
    assert_eq!(w.on_listing(6 * S, &l), None);
}

#[test]
fn a_silent_parent_is_given_up_after_the_timeout_and_avoided() {
    let mut w = ParentWatch::relay("c", TIMEOUT);
    let l = listing(&[("a", Some("source")), ("b", Some("source"))], false);
    // The source is full (a, b): c takes a or b.
    let first = w.on_listing(0, &l).unwrap().to;
    assert_ne!(first, url("source"));
    w.on_bytes(S);
    assert_eq!(w.on_tick(S + TIMEOUT - 1), None);
    // Silent for the timeout: probed; no answer: given up.
    assert_eq!(w.on_tick(S + TIMEOUT), Some(Step::Probe(first.clone())));
    assert_eq!(w.on_tick(S + TIMEOUT + 1), None, "one probe at a time");
    assert_eq!(
        w.on_probe(S + TIMEOUT + 200_000, &first, false),
        Some(GaveUp::Timeout)
    );
    assert_eq!(w.parent(), None);
    // The listing may predate the departure, and other orphans read it too: the directory's
    // join (under one lock) has its say first.
    assert_eq!(w.on_listing(S + TIMEOUT + 250_000, &l), None);
    assert_eq!(
        w.join_request(S + TIMEOUT + 250_000),
        Some(vec![first.clone()])
    );
    assert_eq!(w.on_joined(S + TIMEOUT + 290_000, None), None);
    let s = w.on_listing(S + TIMEOUT + 300_000, &l).unwrap();
    assert_eq!(s.from.as_deref(), Some(first.as_str()));
    assert_ne!(s.to, first, "the dead parent is still listed but avoided");
    assert_eq!(s.detect_us, TIMEOUT + 300_000);
}

#[test]
fn a_new_parent_gets_the_timeout_to_deliver_its_first_byte() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let p = w.on_listing(10 * S, &listing(&[], false)).unwrap().to;
    assert_eq!(w.on_tick(10 * S + TIMEOUT - 1), None);
    assert_eq!(w.on_tick(10 * S + TIMEOUT), Some(Step::Probe(p)));
}

#[test]
fn an_ended_stream_is_probed_once_and_a_parent_that_answers_is_kept() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let p = w.on_listing(0, &listing(&[], false)).unwrap().to;
    w.on_bytes(S);
    assert_eq!(w.on_stream_end(S), Some(p.clone()));
    assert_eq!(w.on_stream_end(S + 1), None, "one probe at a time");
    assert_eq!(w.on_probe(S + 2, &p, true), None);
    assert_eq!(w.parent(), Some(p.as_str()));
    // It answered but still sends nothing: probed again a timeout after it answered.
    assert_eq!(w.on_tick(S + TIMEOUT), None);
    assert_eq!(w.on_tick(S + 2 + TIMEOUT), Some(Step::Probe(p.clone())));
}

#[test]
fn a_starved_parent_that_answers_is_waited_for_up_to_max_silence() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let p = w.on_listing(0, &listing(&[], false)).unwrap().to;
    w.on_bytes(S);
    let mut now = S + TIMEOUT;
    while now < S + MAX_SILENCE * TIMEOUT {
        if let Some(step) = w.on_tick(now) {
            assert_eq!(step, Step::Probe(p.clone()), "at {now}");
            assert_eq!(w.on_probe(now + 1_000, &p, true), None);
        }
        now += 100_000;
    }
    assert_eq!(w.parent(), Some(p.as_str()));
    assert_eq!(w.on_tick(now), Some(Step::GaveUp(GaveUp::Timeout)));
    // Bytes again before that: kept, and the silence counts anew.
    let mut w = ParentWatch::relay("n", TIMEOUT);
    w.on_listing(0, &listing(&[], false)).unwrap();
    w.on_bytes(S);
    w.on_tick(S + TIMEOUT).unwrap();
    w.on_probe(S + TIMEOUT, &p, true);
    w.on_bytes(S + 2 * TIMEOUT);
    assert_eq!(w.on_tick(S + 3 * TIMEOUT - 1), None);
}

#[test]
fn a_parent_that_does_not_answer_is_given_up_at_once() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let l = listing(&[("a", Some("source"))], false);
    let p = w.on_listing(0, &l).unwrap().to;
    w.on_bytes(2 * S);
    let probe = w.on_stream_end(2 * S + 10).unwrap();
    // A probe of another URL, or a late one, changes nothing.
    assert_eq!(w.on_probe(2 * S + 20, "http://x/live.ts", false), None);
    assert_eq!(w.on_probe(2 * S + 50, &probe, false), Some(GaveUp::Gone));
    w.join_request(2 * S + 60).unwrap();
    w.on_joined(2 * S + 70, None);
    let s = w.on_listing(2 * S + 80, &l).unwrap();
    assert_eq!((s.from.as_deref(), s.detect_us), (Some(p.as_str()), 80));
    assert_ne!(s.to, p);
}

#[test]
fn nodes_that_joined_at_once_spread_out_only_the_surplus_moving() {
    // Four nodes all took the source (capacity 2) from the same listing.
    let names = ["a", "b", "c", "d"];
    let l = listing(&names.map(|n| (n, Some("source"))), false);
    let mut moved = Vec::new();
    for n in names {
        let mut w = ParentWatch::relay(n, TIMEOUT);
        let first = w.on_listing(0, &listing(&[], false)).unwrap();
        assert_eq!(first.to, url("source"));
        if let Some(s) = w.on_listing(S, &l) {
            assert_eq!(
                (s.from.as_deref(), s.detect_us),
                (Some(url("source").as_str()), 0)
            );
            assert_ne!(s.to, url("source"));
            assert_ne!(s.to, url(n));
            moved.push(n);
        }
        // Never once settled.
        assert_eq!(w.on_listing(S + SETTLE_US, &l), None);
    }
    assert_eq!(moved.len(), 2, "only the surplus moves: {moved:?}");
    // ... and never under another node that moves.
    let mut w = ParentWatch::relay(moved[0], TIMEOUT);
    w.on_listing(0, &listing(&[], false)).unwrap();
    let to = w.on_listing(S, &l).unwrap().to;
    assert_ne!(to, url(moved[1]));
    // Past the settling time nobody moves.
    let mut w = ParentWatch::relay("c", TIMEOUT);
    w.on_listing(0, &listing(&[], false)).unwrap();
    assert_eq!(w.on_listing(SETTLE_US, &l), None);
}

#[test]
fn settling_never_moves_back_under_a_parent_given_up() {
    // Fan-out 1. b took a; a hangs (its node still announces it, under the source).
    let listing1 = |relays: &[(&str, &str)]| {
        let mut d = Directory::new(url("source"), 1);
        for (n, p) in relays {
            let a = Announce {
                node: (*n).into(),
                url: url(n),
                parent: Some(url(p)),
                capacity: 1,
            };
            d.announce(a, 0).unwrap();
        }
        d.listing(0)
    };
    let mut w = ParentWatch::relay("b", TIMEOUT);
    let a = w.on_listing(0, &listing1(&[("a", "source")])).unwrap().to;
    assert_eq!(a, url("a"));
    w.on_tick(TIMEOUT).unwrap();
    w.on_probe(TIMEOUT, &a, false).unwrap();
    // b takes the full source (a is avoided), and is its surplus; a has the free slot, but b
    // gave it up: it stays.
    w.join_request(TIMEOUT).unwrap();
    w.on_joined(TIMEOUT, None);
    let l = listing1(&[("a", "source")]);
    assert_eq!(w.on_listing(TIMEOUT + 1, &l).unwrap().to, url("source"));
    let l = listing1(&[("a", "source"), ("b", "source")]);
    assert_eq!(surplus(&l), ["b"], "the case this test is about");
    assert_eq!(w.on_listing(TIMEOUT + 2, &l), None);
}

#[test]
fn a_join_asks_the_directory_avoiding_parents_given_up() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    assert_eq!(w.join_request(0), Some(Vec::new()));
    assert_eq!(w.join_request(1), None, "one join at a time");
    // While the join is under way, listings choose nothing.
    let l = listing(&[("a", Some("source"))], false);
    assert_eq!(w.on_listing(2, &l), None);
    let s = w.on_joined(10, Some(url("a"))).unwrap();
    assert_eq!(
        (s.from, s.to.as_str(), s.detect_us),
        (None, url("a").as_str(), 0)
    );
    assert_eq!(w.join_request(11), None, "it has a parent");
    w.on_bytes(S);
    w.on_tick(S + TIMEOUT).unwrap();
    w.on_probe(S + TIMEOUT, &url("a"), false).unwrap();
    assert_eq!(w.join_request(S + TIMEOUT + 5), Some(vec![url("a")]));
    // No parent given: the next listing chooses locally (never a).
    assert_eq!(w.on_joined(S + TIMEOUT + 10, None), None);
    let s = w.on_listing(S + TIMEOUT + 20, &l).unwrap();
    assert_eq!(
        (s.from.as_deref(), s.to.as_str()),
        (Some(url("a").as_str()), url("source").as_str())
    );
    assert_eq!(s.detect_us, TIMEOUT + 20);
    // After the end, no join.
    let mut w = ParentWatch::relay("n", TIMEOUT);
    w.on_listing(0, &listing(&[], true));
    assert_eq!(w.join_request(1), None);
}

#[test]
fn given_up_parents_are_avoided_for_a_while_only() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    let l = listing(&[], false);
    let p = w.on_listing(0, &l).unwrap().to;
    w.on_tick(TIMEOUT).unwrap();
    w.on_probe(TIMEOUT, &p, false).unwrap();
    w.join_request(TIMEOUT).unwrap();
    w.on_joined(TIMEOUT, None);
    // Only the source is listed, and it was given up: no parent for now.
    assert_eq!(w.on_listing(TIMEOUT + 1, &l), None);
    let s = w.on_listing(TIMEOUT + AVOID_US, &l).unwrap();
    assert_eq!(s.to, url("source"));
}

#[test]
fn the_node_exits_once_ended_and_quiet_never_switching_at_the_end() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    w.on_listing(0, &listing(&[], false)).unwrap();
    w.on_bytes(5 * S);
    assert!(!w.should_exit(5 * S));
    assert_eq!(w.on_listing(5 * S, &listing(&[], true)), None);
    assert!(w.ended());
    assert!(!w.should_exit(5 * S + END_QUIET_US - 1));
    assert_eq!(w.on_stream_end(5 * S + 10), None, "no probe after the end");
    assert_eq!(w.on_tick(20 * S), None, "no switch after the end");
    assert!(w.should_exit(5 * S + END_QUIET_US));
}

#[test]
fn the_listing_is_wanted_only_without_a_parent_or_while_settling() {
    let mut w = ParentWatch::relay("n", TIMEOUT);
    assert!(w.wants_listing(0), "no parent yet");
    w.on_listing(0, &listing(&[], false)).unwrap();
    w.on_bytes(S);
    assert!(w.wants_listing(SETTLE_US - 1), "it may still settle");
    assert!(!w.wants_listing(SETTLE_US));
    // Given up: wanted again.
    w.on_tick(SETTLE_US + TIMEOUT).unwrap();
    w.on_probe(SETTLE_US + TIMEOUT, &url("source"), false)
        .unwrap();
    assert!(w.wants_listing(SETTLE_US + TIMEOUT));
    // Not after the end, and never for the source.
    w.on_listing(SETTLE_US + TIMEOUT, &listing(&[], true));
    assert!(!w.wants_listing(SETTLE_US + TIMEOUT));
    assert!(!ParentWatch::source("s").wants_listing(0));
}

#[test]
fn the_source_never_takes_a_parent() {
    let mut w = ParentWatch::source("s");
    assert_eq!(w.on_listing(0, &listing(&[], false)), None);
    assert_eq!(w.on_tick(100 * S), None);
    assert!(!w.should_exit(100 * S));
    w.on_listing(101 * S, &listing(&[], true));
    assert!(w.should_exit(101 * S), "no byte ever: exits at once");
}

fn packets(n: usize, first: u8) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let mut p = vec![first.wrapping_add(i as u8); PACKET];
            p[0] = 0x47;
            p
        })
        .collect()
}

#[test]
fn the_aligner_skips_to_whole_packets_and_holds_back_partial_ones() {
    let stream = packets(12, 1);
    let mut a = Aligner::default();
    // A connection that starts mid-packet and ends mid-packet.
    let mut out = a.push(&stream[100..700]);
    out.extend(a.push(&stream[700..1000]));
    assert_eq!(out, stream[188..940]);
    assert_eq!(a.skipped, 88);
    // Reconnected further on: the partial packet held back is dropped.
    a.reset();
    assert_eq!(a.skipped, 88 + 60);
    let out = a.push(&stream[1500..]);
    assert_eq!(out, stream[1504..]);
    assert_eq!(a.skipped, 88 + 60 + 4);
}

#[test]
fn the_aligner_resyncs_after_garbage_and_waits_for_three_packets() {
    let stream = packets(6, 7);
    let mut a = Aligner::default();
    assert!(
        a.push(&stream[..2 * PACKET]).is_empty(),
        "two packets: not yet synced"
    );
    let mut input = stream[2 * PACKET..3 * PACKET].to_vec();
    input.extend_from_slice(&[1, 2, 3]);
    input.extend_from_slice(&stream[3 * PACKET..]);
    let out = a.push(&input);
    assert_eq!(out, stream);
    assert_eq!(a.skipped, 3);
}
