use super::*;

#[test]
fn each_piece_is_offered_to_one_peer() {
    let mut s = SuperSeed::new(8, 1);
    let mut offered = Vec::new();
    for peer in 1..=20u64 {
        offered.extend(s.peer_live(peer));
    }
    let pieces: Vec<u32> = offered.iter().map(|o| o.1).collect();
    assert_eq!(pieces, (0..8).collect::<Vec<_>>());
    let to: Vec<u64> = offered.iter().map(|o| o.0).collect();
    assert_eq!(to, (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_crowd_is_offered_one_piece_each_so_every_piece_starts_somewhere_else() {
    // 8 pieces, 20 viewers expected: the first 8 to connect get one piece each, though the
    // first ones connect alone.
    let mut s = SuperSeed::new(8, 2).with_audience(20);
    let mut offered = Vec::new();
    for peer in 1..=20u64 {
        offered.extend(s.peer_live(peer));
    }
    assert_eq!(
        offered,
        (1..=8).map(|p| (p, p as u32 - 1)).collect::<Vec<_>>()
    );
    // Without the hint, the first four take all eight.
    let mut d = SuperSeed::new(8, 2);
    let mut offered = Vec::new();
    for peer in 1..=20u64 {
        offered.extend(d.peer_live(peer));
    }
    let to: Vec<u64> = offered.iter().map(|o| o.0).collect();
    assert_eq!(to, [1, 1, 2, 2, 3, 3, 4, 4]);
    // A small crowd keeps two offers per peer: a lone viewer has its next piece announced.
    let mut small = SuperSeed::new(8, 2).with_audience(2);
    assert_eq!(small.peer_live(1u64), vec![(1, 0), (1, 1)]);
    // A piece that arrives frees its peer for one more, in a crowd.
    assert_eq!(s.peer_has(1, 0), vec![]); // nothing fresh left: all 8 are out
    assert_eq!(s.peer_gone(2), vec![(1, 1)]);
}

#[test]
fn a_piece_that_arrived_frees_the_peer_for_a_fresh_one() {
    let mut s = SuperSeed::new(4, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    assert_eq!(s.peer_has(1, 0), vec![(1, 2)]);
    // Peer 2 got piece 0 from peer 1: no new offer, it still waits for piece 1.
    assert_eq!(s.peer_has(2, 0), vec![]);
    assert_eq!(s.peer_has(2, 1), vec![(2, 3)]);
    assert_eq!(s.peer_has(1, 2), vec![]);
    assert_eq!(s.peer_has(2, 3), vec![]);
    assert_eq!(s.peer_live(3), vec![]);
}

#[test]
fn a_lone_peer_is_offered_every_piece_once() {
    let mut s = SuperSeed::new(5, 2);
    let mut got = Vec::new();
    let mut pending = s.peer_live(1u64);
    while let Some((p, piece)) = pending.pop() {
        got.push(piece);
        pending.extend(s.peer_has(p, piece));
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
}

#[test]
fn pieces_of_a_peer_that_left_are_fresh_again() {
    let mut s = SuperSeed::new(2, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_has(1, 0), vec![(1, 1)]);
    assert_eq!(s.peer_live(2), vec![]);
    assert_eq!(s.peer_gone(1), vec![(2, 0)]);
    assert_eq!(s.peer_has(2, 0), vec![(2, 1)]);
}

#[test]
fn out_of_range_and_unknown_peers_change_nothing() {
    let mut s = SuperSeed::new(2, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_has(1, 7), vec![]);
    assert_eq!(s.peer_has(9, 1), vec![]);
    assert_eq!(s.peer_gone(9), vec![]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
}

#[test]
fn the_first_copy_is_out_once_every_piece_was_held_even_by_a_peer_gone_since() {
    let mut s = SuperSeed::new(3, 1);
    assert!(!s.first_copy_out());
    s.peer_live(1u64);
    s.peer_live(2);
    s.peer_has(1, 0);
    s.peer_has(2, 0); // a second holder of the same piece adds nothing
    assert!(!s.first_copy_out());
    s.peer_has(2, 1);
    s.peer_gone(2);
    assert!(!s.first_copy_out());
    s.peer_has(1, 2);
    assert!(
        s.first_copy_out(),
        "pieces 0 and 2 by peer 1, piece 1 by peer 2 (gone)"
    );
    assert!(SuperSeed::<u64>::new(0, 1).first_copy_out());
}

#[test]
fn a_piece_stuck_on_its_way_is_offered_to_someone_else_and_its_peer_waits() {
    let mut s = SuperSeed::new(2, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    // Both written whole: both count as held, nothing is left to offer.
    assert_eq!(s.peer_has(1, 0), vec![]);
    assert_eq!(s.peer_has(2, 1), vec![]);
    assert_eq!(s.peer_live(3), vec![]);
    // Piece 0 never arrived at peer 1: the next peer with room gets it (not peer 1).
    assert_eq!(s.peer_lost(1, 0), vec![(2, 0)]);
    // Lost again: peer 3 is next; peers 1 and 2 are slow now, so nothing once 3 has it.
    assert_eq!(s.peer_lost(2, 0), vec![(3, 0)]);
    assert_eq!(s.peer_has(3, 0), vec![]);
    // A slow peer that has a piece again (it arrived late) is no longer slow.
    assert_eq!(s.peer_has(1, 0), vec![]);
    assert_eq!(s.peer_lost(3, 0), vec![]); // peer 1 still holds piece 0
    assert_eq!(s.peer_lost(2, 1), vec![(1, 1)]);
    // Unknown peers, pieces out of range, and a revealed segment change nothing.
    assert_eq!(s.peer_lost(9, 0), vec![]);
    assert_eq!(s.peer_lost(1, 7), vec![]);
    s.reveal();
    assert_eq!(s.peer_lost(1, 1), vec![]);
}

#[test]
fn deliveries_tell_pieces_acknowledged_in_time_from_late_ones_and_late_ones_that_arrive() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let late = ms(1000);
    let mut d = Deliveries::default();
    assert!(d.is_empty());
    assert_eq!(d.next_check(t0, late, ms(100)), None);
    d.written(3, 1_000, t0);
    d.written(5, 2_000, t0 + ms(300));
    d.written(1, 3_000, t0 + ms(600));
    assert_eq!(d.next_check(t0, late, ms(100)), Some(t0 + ms(100)));
    assert_eq!(d.next_check(t0 + ms(950), late, ms(100)), Some(t0 + late));
    // Piece 3 acknowledged at 400 ms; nothing else yet.
    let c = d.check(1_500, t0 + ms(400), late);
    assert_eq!(c.arrived, vec![(3, ms(400))]);
    assert!(c.late.is_empty() && c.arrived_late.is_empty());
    // At 1.35 s piece 5 (written at 300 ms) is late; piece 1 is not yet.
    let c = d.check(1_500, t0 + ms(1350), late);
    assert_eq!(c.late, vec![5]);
    assert!(c.arrived.is_empty());
    // Its bytes and piece 1's arrive: piece 5 arrived late, piece 1 in time.
    let c = d.check(3_000, t0 + ms(1400), late);
    assert_eq!(c.arrived_late, vec![5]);
    assert_eq!(c.arrived, vec![(1, ms(800))]);
    assert!(c.late.is_empty());
    assert!(d.is_empty());
    // A late piece keeps the checks going until it arrives.
    d.written(2, 4_000, t0 + ms(1400));
    assert_eq!(d.check(3_000, t0 + ms(2400), late).late, vec![2]);
    assert_eq!(
        d.next_check(t0 + ms(2400), late, ms(100)),
        Some(t0 + ms(2500))
    );
    assert_eq!(d.check(4_000, t0 + ms(9000), late).arrived_late, vec![2]);
    assert!(d.is_empty());
}

#[test]
fn claims_of_pieces_nobody_was_sent_withhold_nothing() {
    // 4 pieces; five connections claim every piece (an all-ones bitfield) and ask for none.
    let mut s = SuperSeed::new(4, 1).with_audience(7);
    for liar in 100..105u64 {
        let offered = s.peer_live(liar);
        let freed = s.peer_claims(liar, 0..4);
        // What it was offered is fresh again, and it is offered nothing it claims.
        assert!(
            offered.len() <= 1 && freed.iter().all(|o| o.0 != liar),
            "{freed:?}"
        );
    }
    assert!(!s.first_copy_out(), "claims do not make the first copy");
    // Two honest viewers still get every piece offered, one at a time each.
    let mut offers = s.peer_live(1);
    offers.extend(s.peer_live(2));
    assert_eq!(offers, vec![(1, 1), (2, 2)]);
    assert_eq!(s.peer_has(1, 1), vec![(1, 3)]);
    assert_eq!(s.peer_has(2, 2), vec![(2, 0)]);
    s.peer_has(1, 3);
    s.peer_has(2, 0);
    assert!(s.first_copy_out());
}

#[test]
fn a_claim_of_a_piece_that_is_out_counts_but_does_not_end_a_wait() {
    let mut s = SuperSeed::new(3, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    assert_eq!(s.peer_has(1, 0), vec![(1, 2)]);
    // Peer 2 got piece 0 from peer 1: believed, so piece 0 stays held when peer 1 leaves.
    assert_eq!(s.peer_claims(2, [0]), vec![]);
    assert_eq!(s.peer_gone(1), vec![]);
    assert_eq!(s.peer_live(3), vec![(3, 2)]);
    // Peer 3's offer did not arrive in time: it waits, and a claim does not end the wait...
    assert_eq!(s.peer_lost(3, 2), vec![]);
    assert_eq!(s.peer_claims(3, [0]), vec![]);
    assert_eq!(s.peer_live(4), vec![(4, 2)]);
    assert_eq!(s.peer_gone(4), vec![]);
    // ...a piece it was sent does: piece 2 goes to peer 3 (it received a piece) before peer 2
    // (freed of its offer of piece 1, it never asked for anything).
    assert_eq!(s.peer_has(3, 1), vec![(3, 2)]);
}

#[test]
fn a_claimed_offer_goes_to_somebody_else() {
    let mut s = SuperSeed::new(2, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    assert_eq!(s.peer_live(3), vec![]);
    // Peer 1 says it has piece 0 (from HTTP, say) before we sent it: peer 3 is offered it.
    assert_eq!(s.peer_claims(1, [0]), vec![(3, 0)]);
    // Peer 1 is not offered what it claims, even when nothing else is fresh.
    assert_eq!(s.peer_gone(3), vec![]);
}

#[test]
fn an_ignored_offer_goes_to_somebody_else_unless_it_is_no_longer_an_offer() {
    let mut s = SuperSeed::new(3, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    assert_eq!(s.peer_live(3), vec![(3, 2)]);
    assert_eq!(s.offer_ignored(1, 0), Some(vec![]), "nobody has room");
    // Peer 1 waits; peer 2, freed by its piece, takes piece 0.
    assert_eq!(s.peer_has(2, 1), vec![(2, 0)]);
    // Claimed meanwhile (not believed, but no longer its offer), received, or gone: nothing.
    assert_eq!(s.peer_claims(3, [2]), vec![]);
    assert_eq!(s.offer_ignored(3, 2), None);
    assert_eq!(s.offer_ignored(2, 1), None);
    assert_eq!(s.offer_ignored(9, 0), None);
}

#[test]
fn an_ignored_offer_goes_to_a_peer_that_asked_before_one_that_did_not() {
    let mut s = SuperSeed::new(4, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]); // silent
    assert_eq!(s.peer_live(2), vec![(2, 1)]); // silent
    assert_eq!(s.peer_live(3), vec![(3, 2)]);
    assert_eq!(s.peer_live(4), vec![(4, 3)]);
    s.peer_asked(3, 2);
    // Peer 1 ignored piece 0: peer 3 has room once its piece is in, and it gets piece 0...
    assert_eq!(s.offer_ignored(1, 0), Some(vec![]), "nobody has room");
    assert_eq!(s.peer_has(3, 2), vec![(3, 0)]);
    // ...and once peer 2 ignored piece 1, peer 3 (asked) gets it before peer 4 (silent so
    // far), though peer 4 comes later in key order only: both have room.
    assert_eq!(s.peer_has(3, 0), vec![]);
    assert_eq!(s.offer_ignored(4, 3), Some(vec![(3, 3)]));
    assert_eq!(
        s.offer_ignored(2, 1),
        Some(vec![]),
        "peer 3 is busy with piece 3"
    );
    assert_eq!(s.peer_has(3, 3), vec![(3, 1)]);
}

#[test]
fn a_known_downloader_is_offered_before_peers_that_connected_first() {
    let mut s = SuperSeed::new(2, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_live(2), vec![(2, 1)]);
    assert_eq!(s.peer_live(3), vec![]);
    assert_eq!(s.peer_live_downloader(4), vec![]);
    // Peer 1 ignored its offer: peer 4, known to download, gets it before peer 3.
    assert_eq!(s.offer_ignored(1, 0), Some(vec![(4, 0)]));
}

#[test]
fn an_offer_not_asked_for_expires_unless_the_peer_is_busy() {
    let t0 = Instant::now();
    let wait = Duration::from_millis(250);
    let mut u = Unrequested::default();
    assert_eq!(u.next_deadline(wait), None);
    u.offered(3, t0);
    u.offered(5, t0 + Duration::from_millis(100));
    u.offered(3, t0 + Duration::from_millis(200)); // the same offer again: one entry
    assert_eq!(u.next_deadline(wait), Some(t0 + wait));
    u.requested(5);
    let none: Vec<u32> = Vec::new();
    assert_eq!(
        u.expired(t0 + Duration::from_millis(249), wait, false),
        none
    );
    // Busy with requests of its own at the deadline: it waits another `wait` from now.
    let t1 = t0 + Duration::from_millis(300);
    assert_eq!(u.expired(t1, wait, true), none);
    assert_eq!(u.next_deadline(wait), Some(t1 + wait));
    assert_eq!(u.expired(t1 + wait, wait, false), vec![3]);
    assert_eq!(u.next_deadline(wait), None);
}

#[test]
fn reveal_lists_live_peers_and_ends_the_bookkeeping() {
    let mut s = SuperSeed::new(2, 1);
    s.peer_live(2u64);
    s.peer_live(1);
    assert_eq!(s.reveal(), vec![1, 2]);
    assert!(s.is_revealed());
    assert_eq!(s.peer_live(3), vec![]);
    assert_eq!(s.peer_has(1, 0), vec![]);
}

#[test]
fn with_the_hold_fresh_pieces_wait_for_the_audience_still_coming() {
    // 8 pieces, 20 viewers expected, the first four connect well before the others (they
    // learned of the segment first).
    let mut s = SuperSeed::new(8, 2).with_audience(20).with_hold();
    let mut offered = Vec::new();
    for peer in 1..=4u64 {
        offered.extend(s.peer_live(peer));
    }
    assert_eq!(offered, vec![(1, 0), (2, 1), (3, 2), (4, 3)]);
    // Their pieces arrive before anyone else connects: no second fresh piece for them...
    for peer in 1..=4u64 {
        assert_eq!(s.peer_has(peer, peer as u32 - 1), vec![]);
    }
    // ...the next to connect take the rest, one each (known downloaders, as every viewer is
    // after its first segment: they come before peers never seen to ask, and among them those
    // holding fewer pieces come first, so the eighth does not lose its piece to peer 1 when
    // the hold ends with it).
    let mut later = Vec::new();
    for peer in 5..=9u64 {
        later.extend(s.peer_live_downloader(peer));
    }
    assert_eq!(later, vec![(5, 4), (6, 5), (7, 6), (8, 7)]);

    // Without the hold (as before), the first four take the second four pieces as their first
    // arrive.
    let mut d = SuperSeed::new(8, 2).with_audience(20);
    for peer in 1..=4u64 {
        d.peer_live(peer);
    }
    let second: Vec<_> = (1..=4u64)
        .flat_map(|peer| d.peer_has(peer, peer as u32 - 1))
        .collect();
    assert_eq!(second, vec![(1, 4), (2, 5), (3, 6), (4, 7)]);

    // The audience did not come (it shrank): the owner ends the hold, and the pieces left go
    // to the peers there.
    let mut h = SuperSeed::new(8, 2).with_audience(20).with_hold();
    h.peer_live(1u64);
    h.peer_live(2);
    assert_eq!(h.peer_has(1, 0), vec![]);
    assert_eq!(h.end_hold(), vec![(1, 2)]);
    assert_eq!(h.peer_has(2, 1), vec![(2, 3)]);
    assert_eq!(h.end_hold(), vec![], "ended once");

    // A crowd as large as expected (or as the pieces) is not held back.
    let mut full = SuperSeed::new(2, 1).with_audience(20).with_hold();
    assert_eq!(full.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(full.peer_live(2), vec![(2, 1)]);
    assert_eq!(full.peer_gone(2), vec![]);
    // One live peer of the two the pieces need: held...
    assert_eq!(full.peer_has(1, 0), vec![]);
    // ...until a second (a known downloader) connects.
    assert_eq!(full.peer_live_downloader(3), vec![(3, 1)]);
}

#[test]
fn a_piece_its_one_holder_passes_on_to_nobody_is_offered_once_more() {
    // One piece, two peers: 1 gets it, 2 is offered nothing (the piece is out).
    let mut s = SuperSeed::new(1, 1);
    assert_eq!(s.peer_live(1u64), vec![(1, 0)]);
    assert_eq!(s.peer_has(1, 0), Vec::<(u64, u32)>::new());
    assert_eq!(s.peer_live(2), Vec::<(u64, u32)>::new());
    assert_eq!(s.lone_pieces(), vec![0]);
    // Stranded: one more copy, to the peer that lacks it, and only one.
    assert_eq!(s.stranded(0), vec![(2, 0)]);
    assert_eq!(s.lone_pieces(), Vec::<u32>::new(), "offered to 2");
    assert_eq!(s.stranded(0), Vec::<(u64, u32)>::new());
    assert_eq!(
        s.peer_live(3),
        Vec::<(u64, u32)>::new(),
        "one spare copy, not one per peer"
    );
    // 2 has it: the spare is used up, and 3 is left to the two holders.
    assert_eq!(s.peer_has(2, 0), Vec::<(u64, u32)>::new());
    assert_eq!(s.lone_pieces(), Vec::<u32>::new());
    assert_eq!(s.stranded(0), Vec::<(u64, u32)>::new());
    // A piece passed on in time (its second holder's Have) is never lone.
    let mut t = SuperSeed::new(1, 1);
    t.peer_live(1u64);
    t.peer_has(1, 0);
    t.peer_live(2);
    assert_eq!(t.peer_claims(2, [0]), Vec::<(u64, u32)>::new());
    assert_eq!(t.lone_pieces(), Vec::<u32>::new());
    // A lone piece that everybody live has (or claims) is not stranded: nobody lacks it.
    let mut u = SuperSeed::new(2, 1);
    u.peer_live(1u64);
    u.peer_has(1, 0);
    assert_eq!(
        u.lone_pieces(),
        Vec::<u32>::new(),
        "a lone peer lacks nothing it holds"
    );
    // An extra copy that does not arrive in time goes to another peer, still one at a time.
    let mut v = SuperSeed::new(1, 1);
    v.peer_live(1u64);
    v.peer_has(1, 0);
    v.peer_live(2);
    v.peer_live(3);
    assert_eq!(v.stranded(0), vec![(2, 0)]);
    assert_eq!(v.peer_lost(2, 0), vec![(3, 0)]);
    // After the reveal nothing is lone.
    v.reveal();
    assert_eq!(v.lone_pieces(), Vec::<u32>::new());
    assert_eq!(v.stranded(0), Vec::<(u64, u32)>::new());
}

#[test]
fn a_piece_is_stranded_once_lone_at_every_check_for_the_delay() {
    let after = Duration::from_secs(3);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut lone = Lone::default();
    assert_eq!(lone.check(at(0), &[0, 1], after), Vec::<u32>::new());
    assert_eq!(lone.check(at(1000), &[0, 1], after), Vec::<u32>::new());
    // Piece 1 got a second holder, then lost it: it starts over.
    assert_eq!(lone.check(at(2000), &[0], after), Vec::<u32>::new());
    assert_eq!(lone.check(at(2500), &[0, 1], after), Vec::<u32>::new());
    assert_eq!(lone.check(at(3000), &[0, 1], after), vec![0]);
    // Once returned, a piece starts over too.
    assert_eq!(lone.check(at(5000), &[0, 1], after), Vec::<u32>::new());
    assert_eq!(lone.check(at(5500), &[0, 1], after), vec![1]);
    assert_eq!(lone.check(at(8000), &[0, 1], after), vec![0]);
}

#[test]
fn a_spare_copy_goes_to_a_peer_whose_own_pieces_were_passed_on() {
    // Two pieces, four peers: 1 holds piece 0 and passes it on to nobody; 2 holds piece 1,
    // lone too; 3 holds piece 1 as well (from 2), so piece 1 is not lone and 3 holds no lone
    // piece; 4 holds nothing.
    let mut s = SuperSeed::new(2, 1);
    for p in 1..=4u64 {
        s.peer_live(p);
    }
    s.peer_has(1, 0);
    s.peer_has(2, 1);
    s.peer_asked(4, 0);
    assert_eq!(s.peer_claims(3, [1]), Vec::<(u64, u32)>::new());
    assert_eq!(s.lone_pieces(), vec![0]);
    // 2, 3 and 4 lack it and hold no lone piece (piece 1 has two holders): 4 asked and holds
    // fewest.
    assert_eq!(s.stranded(0), vec![(4, 0)]);
    // Without a peer that holds no lone piece, the copy goes to one that does.
    let mut t = SuperSeed::new(2, 1);
    for p in 1..=2u64 {
        t.peer_live(p);
    }
    t.peer_has(1, 0);
    t.peer_has(2, 1);
    assert_eq!(t.lone_pieces(), vec![0, 1]);
    assert_eq!(t.stranded(0), vec![(2, 0)]);
    // A peer holding a lone piece comes after one that does not, even one that asked.
    let mut u = SuperSeed::new(3, 1);
    for p in 1..=4u64 {
        u.peer_live(p);
    }
    u.peer_has(1, 0);
    u.peer_has(2, 1);
    u.peer_has(3, 2);
    u.peer_claims(4, [2]);
    u.peer_asked(2, 1);
    assert_eq!(u.lone_pieces(), vec![0, 1]);
    // 2 holds lone piece 1; 3 and 4 hold piece 2, which has two holders; 3 downloaded from the
    // seed (it asked), 4 only claims.
    assert_eq!(u.stranded(0), vec![(3, 0)]);
}
