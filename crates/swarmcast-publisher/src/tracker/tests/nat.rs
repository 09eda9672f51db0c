//! The NAT check's tests: who is listed before, during and after a check, verdicts expiring on
//! the given clock, the bounds on checks and addresses, sparing reachable peers, and catching up.

use super::*;

#[test]
fn unchecked_peers_are_not_listed_and_reachable_ones_are_from_the_next_announce() {
    let ih = [8u8; 20];
    let mut t = nat_tracker(10, NatCheck::default(), ih);
    assert_eq!(announce(&mut t, &ih, 1, 5001, 0), vec![addr(4000)]);
    assert_eq!(t.to_check(), vec![addr(5001)]);
    assert!(t.to_check().is_empty(), "each check is handed out once");
    assert_eq!(t.reachability(&addr(5001)), Reachability::Checking);
    // Peer 2 does not see peer 1 while it is being checked (the publisher, always).
    assert_eq!(announce(&mut t, &ih, 2, 5002, 100), vec![addr(4000)]);
    // Peer 1 re-announces while its check is in flight: no second check.
    announce(&mut t, &ih, 1, 5001, 200);
    assert_eq!(t.to_check(), vec![addr(5002)]);
    assert_eq!(t.nat_checks_in_flight(), 2);
    t.set_reachable(addr(5001), true, 300);
    assert_eq!(t.reachability(&addr(5001)), Reachability::Reachable);
    assert_eq!(
        announce(&mut t, &ih, 2, 5002, 400),
        vec![addr(4000), addr(5001)]
    );
    t.set_reachable(addr(5002), true, 500);
    assert_eq!(
        announce(&mut t, &ih, 1, 5001, 600),
        vec![addr(4000), addr(5002)]
    );
    assert!(t.to_check().is_empty(), "a fresh verdict is not re-checked");
    let c = t.counters();
    assert_eq!((c.nat_checks, c.nat_unreachable), (2, 0));
    assert_eq!(t.nat_checks_in_flight(), 0);
}

#[test]
fn unreachable_peers_are_never_listed_but_still_get_peer_lists() {
    let ih = [9u8; 20];
    let mut t = nat_tracker(10, NatCheck::default(), ih);
    announce(&mut t, &ih, 1, 5001, 0);
    announce(&mut t, &ih, 2, 5002, 0);
    assert_eq!(t.to_check(), vec![addr(5001), addr(5002)]);
    t.set_reachable(addr(5001), true, 10);
    t.set_reachable(addr(5002), false, 10);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Unreachable);
    // The NAT'd peer is answered, with the reachable peers.
    assert_eq!(
        announce(&mut t, &ih, 2, 5002, 20),
        vec![addr(4000), addr(5001)]
    );
    // Nobody is handed the NAT'd peer.
    assert_eq!(announce(&mut t, &ih, 1, 5001, 30), vec![addr(4000)]);
    t.set_reachable(addr(5003), true, 30); // never announced: dropped
    assert_eq!(t.reachability(&addr(5003)), Reachability::Unchecked);
    assert_eq!(
        announce(&mut t, &ih, 3, 5003, 40),
        vec![addr(4000), addr(5001)]
    );
    // The list form filters the same way.
    let list = t.handle(&query(&ih, &[4; 20], 5004, "&left=1"), LOCAL, 50);
    let Some(serde_bencode::value::Value::List(peers)) = dict_get(&decode(&list), "peers").cloned()
    else {
        panic!("no peer list")
    };
    assert_eq!(peers.len(), 2, "the publisher and 5001: {peers:?}");
    // The swarm's counts still include every peer.
    assert!(matches!(
        dict_get(&decode(&list), "incomplete"),
        Some(serde_bencode::value::Value::Int(4))
    ));
    assert_eq!(t.counters().nat_unreachable, 1);
}

#[test]
fn verdicts_expire_on_the_given_clock_and_the_next_announce_rechecks() {
    let ih = [10u8; 20];
    let nat = NatCheck::default();
    // A long interval, so peers outlive the verdicts.
    let mut t = nat_tracker(1000, nat, ih);
    announce(&mut t, &ih, 1, 5001, 0);
    announce(&mut t, &ih, 2, 5002, 0);
    t.to_check();
    t.set_reachable(addr(5001), true, 1_000);
    t.set_reachable(addr(5002), false, 1_000);
    let expiry = 1_000 + nat.ttl_ms;
    announce(&mut t, &ih, 1, 5001, expiry - 1);
    announce(&mut t, &ih, 2, 5002, expiry - 1);
    assert!(t.to_check().is_empty(), "verdicts still hold");
    // At the TTL, an announce re-checks; the old verdict stands meanwhile.
    announce(&mut t, &ih, 1, 5001, expiry);
    assert_eq!(t.to_check(), vec![addr(5001)]);
    assert_eq!(t.reachability(&addr(5001)), Reachability::Checking);
    assert_eq!(
        announce(&mut t, &ih, 3, 5003, expiry),
        vec![addr(4000), addr(5001)],
        "a reachable peer being re-checked stays listed"
    );
    t.set_reachable(addr(5001), false, expiry + 10);
    announce(&mut t, &ih, 2, 5002, expiry + 20);
    assert_eq!(t.to_check(), vec![addr(5003), addr(5002)]);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Checking);
    t.set_reachable(addr(5002), true, expiry + 30);
    // 5001 now fails, 5002 now passes.
    assert_eq!(
        announce(&mut t, &ih, 3, 5003, expiry + 40),
        vec![addr(4000), addr(5002)]
    );
    assert_eq!(t.counters().nat_checks, 5);
    assert_eq!(t.counters().nat_unreachable, 2);
}

#[test]
fn one_check_per_address_serves_every_torrent() {
    let (x, y) = ([11u8; 20], [12u8; 20]);
    let mut t = nat_tracker(10, NatCheck::default(), x);
    t.add_torrent(y, Some(addr(4000)));
    // One viewer (one listening port), two segment torrents.
    announce(&mut t, &x, 1, 5001, 0);
    announce(&mut t, &y, 1, 5001, 0);
    assert_eq!(t.to_check(), vec![addr(5001)]);
    t.set_reachable(addr(5001), true, 5);
    assert_eq!(
        announce(&mut t, &x, 2, 5002, 10),
        vec![addr(4000), addr(5001)]
    );
    assert_eq!(
        announce(&mut t, &y, 2, 5002, 10),
        vec![addr(4000), addr(5001)]
    );
    assert_eq!(t.counters().nat_checks, 2, "5001 once, 5002 once");
}

#[test]
fn checks_in_flight_are_bounded_and_lost_ones_are_handed_out_again() {
    let ih = [13u8; 20];
    let nat = NatCheck {
        max_in_flight: 2,
        ..NatCheck::default()
    };
    let mut t = nat_tracker(1000, nat, ih);
    for (id, port) in [(1, 5001), (2, 5002), (3, 5003)] {
        announce(&mut t, &ih, id, port, 0);
    }
    assert_eq!(t.to_check(), vec![addr(5001), addr(5002)]);
    assert_eq!(t.reachability(&addr(5003)), Reachability::Unchecked);
    // No room yet.
    announce(&mut t, &ih, 3, 5003, 100);
    assert!(t.to_check().is_empty());
    t.set_reachable(addr(5001), true, 200);
    announce(&mut t, &ih, 3, 5003, 300);
    assert_eq!(t.to_check(), vec![addr(5003)]);
    // 5002's verdict never comes: after `lost_ms` it is handed out again.
    announce(&mut t, &ih, 2, 5002, nat.lost_ms - 1);
    assert!(t.to_check().is_empty());
    t.set_reachable(addr(5003), true, nat.lost_ms - 1);
    announce(&mut t, &ih, 2, 5002, nat.lost_ms);
    assert_eq!(t.to_check(), vec![addr(5002)]);
    assert_eq!(t.nat_checks_in_flight(), 1);
    // A late verdict of the lost check counts; the second one just renews it.
    t.set_reachable(addr(5002), true, nat.lost_ms + 1);
    t.set_reachable(addr(5002), true, nat.lost_ms + 2);
    assert_eq!(t.nat_checks_in_flight(), 0);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Reachable);
}

#[test]
fn the_address_table_is_bounded_and_forgets_silent_addresses() {
    let ih = [14u8; 20];
    let nat = NatCheck {
        max_addrs: 2,
        ..NatCheck::default()
    };
    let mut t = nat_tracker(10, nat, ih);
    announce(&mut t, &ih, 1, 5001, 0);
    announce(&mut t, &ih, 2, 5002, 10);
    t.to_check();
    t.set_reachable(addr(5001), true, 20);
    t.set_reachable(addr(5002), true, 20);
    // Full: the least recently heard from (5001) makes room for 5003.
    announce(&mut t, &ih, 3, 5003, 30);
    assert_eq!(t.to_check(), vec![addr(5003)]);
    assert_eq!(t.reachability(&addr(5001)), Reachability::Unchecked);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Reachable);
    announce(&mut t, &ih, 2, 5002, 40);
    // Full of checks in flight: a new address waits (unlisted, unchecked).
    let mut t2 = nat_tracker(10, nat, ih);
    announce(&mut t2, &ih, 1, 5001, 0);
    announce(&mut t2, &ih, 2, 5002, 0);
    announce(&mut t2, &ih, 3, 5003, 0);
    assert_eq!(t2.to_check(), vec![addr(5001), addr(5002)]);
    assert_eq!(t2.reachability(&addr(5003)), Reachability::Unchecked);
    // Addresses silent for the verdict's lifetime are forgotten.
    t.expire(40 + nat.ttl_ms - 1);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Reachable);
    t.expire(40 + nat.ttl_ms);
    assert_eq!(t.reachability(&addr(5002)), Reachability::Unchecked);
}

#[test]
fn reachable_peers_are_spared_for_natted_ones_once_those_are_as_many() {
    let ih = [16u8; 20];
    let interval_s = 10;
    let checked = |spare_reachable: bool, natted: &[u16]| {
        let mut t = nat_tracker(
            interval_s,
            NatCheck {
                spare_reachable,
                ..NatCheck::default()
            },
            ih,
        );
        for (id, port) in [(1, 5001), (2, 5002)]
            .into_iter()
            .chain(natted.iter().enumerate().map(|(i, p)| (10 + i as u8, *p)))
        {
            announce(&mut t, &ih, id, port, 0);
        }
        for a in t.to_check() {
            t.set_reachable(a, !natted.contains(&a.port()), 10);
        }
        t
    };
    // Two reachable viewers, one behind a NAT: reachable ones still get each other.
    let mut t = checked(true, &[5003]);
    assert_eq!(
        announce(&mut t, &ih, 1, 5001, 20),
        vec![addr(4000), addr(5002)]
    );
    assert_eq!(t.counters().spared, 0);
    // Two and two: a reachable viewer gets the publisher alone (the NATed ones dial it) ...
    let mut t = checked(true, &[5003, 5004]);
    assert_eq!(announce(&mut t, &ih, 1, 5001, 20), vec![addr(4000)]);
    assert_eq!(t.counters().spared, 1);
    // ... and a NATed viewer gets every reachable one, as before.
    assert_eq!(
        announce(&mut t, &ih, 10, 5003, 20),
        vec![addr(4000), addr(5001), addr(5002)]
    );
    // Switched off, every reachable viewer is listed to every viewer.
    let mut off = checked(false, &[5003, 5004]);
    assert_eq!(
        announce(&mut off, &ih, 1, 5001, 20),
        vec![addr(4000), addr(5002)]
    );
    assert_eq!(off.counters().spared, 0);
    // NATed viewers count while they announce: silent for three intervals, they are gone and
    // the reachable ones are listed to each other again.
    let live = 3 * interval_s * 1000;
    announce(&mut t, &ih, 2, 5002, live - 1);
    assert_eq!(announce(&mut t, &ih, 1, 5001, live - 1), vec![addr(4000)]);
    announce(&mut t, &ih, 2, 5002, live);
    assert_eq!(
        announce(&mut t, &ih, 1, 5001, live),
        vec![addr(4000), addr(5002)]
    );
}

#[test]
fn peers_nobody_can_dial_re_announce_soon_while_reachable_peers_are_missing() {
    let (ih, other) = ([17u8; 20], [18u8; 20]);
    let mut t = Tracker::new(10, 5).with_nat_check(NatCheck::default());
    t.add_torrent(ih, Some(addr(4000)));
    t.add_torrent(other, Some(addr(4000)));
    let min_interval = |t: &mut Tracker, ih: &[u8; 20], id: u8, port: u16, now_ms: u64| {
        let answer = t.handle(
            &query(ih, &[id; 20], port, "&left=10&compact=1"),
            LOCAL,
            now_ms,
        );
        match dict_get(&decode(&answer), "min interval") {
            Some(serde_bencode::value::Value::Int(i)) => *i,
            v => panic!("no min interval: {v:?}"),
        }
    };
    // Two reachable viewers and one behind a NAT (on the other torrent). The first has only
    // its own check in flight (its verdict tells it nothing); the later ones come back soon,
    // as the checks in flight may find someone reachable.
    for (id, port, expected) in [(1, 5001, 5), (2, 5002, 1), (10, 5010, 1)] {
        assert_eq!(
            min_interval(&mut t, &other, id, port, 0),
            expected,
            "{port}"
        );
    }
    for a in t.to_check() {
        t.set_reachable(a, a.port() != 5010, 10);
    }
    // The NATed viewer adds `ih` first: neither reachable viewer is in its answer, so it may
    // come back after 1 s; the reachable viewers get the configured 5 s.
    assert_eq!(min_interval(&mut t, &ih, 10, 5010, 100), 1);
    assert_eq!(min_interval(&mut t, &ih, 1, 5001, 200), 5);
    assert_eq!(
        min_interval(&mut t, &ih, 10, 5010, 1100),
        1,
        "5002 still missing"
    );
    assert_eq!(min_interval(&mut t, &ih, 2, 5002, 1200), 5);
    // Every live reachable viewer listed: the configured interval.
    assert_eq!(min_interval(&mut t, &ih, 10, 5010, 2100), 5);
    assert_eq!(t.counters().caught_up, 4);
    // A viewer not checked yet is not dialled either: it catches up while a live reachable
    // viewer is missing from its answer (not here, on `ih`; on a new torrent, yes). A seed
    // never does.
    assert_eq!(min_interval(&mut t, &ih, 11, 5011, 2200), 5, "all listed");
    let third = [19u8; 20];
    t.add_torrent(third, Some(addr(4000)));
    assert_eq!(min_interval(&mut t, &third, 12, 5012, 2300), 1);
    let seed = t.handle(
        &query(&third, &[13; 20], 5013, "&left=0&compact=1"),
        LOCAL,
        2400,
    );
    assert!(matches!(
        dict_get(&decode(&seed), "min interval"),
        Some(serde_bencode::value::Value::Int(5))
    ));
    // A reachable viewer that stops announcing is not waited for after three intervals.
    let live = 3 * 10 * 1000;
    assert_eq!(min_interval(&mut t, &other, 1, 5001, live), 5);
    assert_eq!(
        min_interval(&mut t, &third, 12, 5012, live + 50),
        1,
        "5001 is live"
    );
    assert_eq!(min_interval(&mut t, &third, 1, 5001, live + 60), 5);
    assert_eq!(
        min_interval(&mut t, &third, 12, 5012, 1200 + live),
        5,
        "5002 is gone"
    );
}
