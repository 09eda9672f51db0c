//! The super-seeding policy of the wire seeder, sans IO: which piece to announce to which
//! connection. It is the policy of librqbit patch 0007 (`librqbit::super_seed`, docs/librqbit.md)
//! written again on this side of the wire, so that the two placements can be compared with the
//! same rule: offer each downloader a piece nobody has yet (a Have), the next one as soon as it
//! has it, and reveal every piece at a deadline the caller keeps. The caller starts that deadline
//! when [`SuperSeed::first_copy_out`] turns true (every piece held once), not when seeding starts:
//! a reveal while the first copy is still queued behind a capped uplink turns the seed into a plain
//! one, every downloader asks it for everything, and the next segment's first copy is late too.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// A Have to send: tell `peer` we have `piece`.
pub type Offer<P> = (P, u32);

/// Who has what, and what was offered to whom, for one segment. Peers are any ordered key (the
/// wire seeder uses a connection number); offers go out in key order, so runs are reproducible.
#[derive(Debug)]
pub struct SuperSeed<P> {
    offers_per_peer: usize,
    /// Peers expected (see [`with_audience`](Self::with_audience)).
    audience: usize,
    /// Per piece: live peers known to have it.
    holders: Vec<u32>,
    /// Per piece: the peer it is offered to while nobody has it yet.
    offered_to: Vec<Option<P>>,
    /// Per live peer: pieces offered to it that it does not have yet, and pieces it has.
    peers: BTreeMap<P, PeerView>,
    /// Where the search for a fresh piece starts (pieces are handed out in turn).
    next: usize,
    revealed: bool,
    /// Per piece: whether any peer ever had it; and how many have been.
    held_once: Vec<bool>,
    held_once_count: usize,
}

#[derive(Debug, Default)]
struct PeerView {
    offered: Vec<u32>,
    has: BTreeSet<u32>,
    /// Pieces it claimed (a Have or its bitfield) before any peer was sent them: not believed,
    /// so not counted as held, but not offered to it either.
    claimed: BTreeSet<u32>,
    /// A piece counted as its own did not arrive in time (see [`SuperSeed::peer_lost`]): offered
    /// nothing new until it has a piece again.
    slow: bool,
    /// It asked for a piece: it downloads, so fresh pieces go to it before peers that never
    /// asked (new ones, or ones that take offers and never ask).
    asked: bool,
}

impl<P: Copy + Ord> SuperSeed<P> {
    /// A segment of `pieces` pieces; each peer is offered up to `offers_per_peer` (at least 1)
    /// pieces at a time.
    pub fn new(pieces: u32, offers_per_peer: usize) -> Self {
        Self {
            offers_per_peer: offers_per_peer.max(1),
            audience: 0,
            holders: vec![0; pieces as usize],
            offered_to: vec![None; pieces as usize],
            peers: BTreeMap::new(),
            next: 0,
            revealed: false,
            held_once: vec![false; pieces as usize],
            held_once_count: 0,
        }
    }

    /// Expects about `peers` downloaders (e.g. how many the previous segment had). While the
    /// crowd (this, or the live peers if more) could not each be offered `offers_per_peer`
    /// pieces, each is offered one at a time: the pieces start from as many viewers as there
    /// are pieces, instead of the first few connections taking them all (8 pieces of a 2 s
    /// segment among 20 viewers: 8 first holders, not 4). A small crowd keeps the deeper offer,
    /// so a lone downloader's next piece is already announced when one ends.
    pub fn with_audience(mut self, peers: usize) -> Self {
        self.audience = peers;
        self
    }

    /// Whether [`reveal`](Self::reveal) was called: every piece goes to everyone now.
    pub fn is_revealed(&self) -> bool {
        self.revealed
    }

    /// Whether the first copy is out: every piece has been held by some peer (whether or not that
    /// peer is still connected). A segment of no pieces has it at once.
    pub fn first_copy_out(&self) -> bool {
        self.held_once_count == self.held_once.len()
    }

    /// The deadline passed: returns the live peers, to be told of every piece.
    pub fn reveal(&mut self) -> Vec<P> {
        self.revealed = true;
        std::mem::take(&mut self.peers).into_keys().collect()
    }

    /// A peer connected: the pieces to offer it.
    pub fn peer_live(&mut self, peer: P) -> Vec<Offer<P>> {
        if self.revealed {
            return Vec::new();
        }
        self.peers.entry(peer).or_default();
        self.assign()
    }

    /// A peer known to download (its address asked for pieces before) connected: as
    /// [`peer_live`](Self::peer_live), offered fresh pieces before peers never seen to ask.
    pub fn peer_live_downloader(&mut self, peer: P) -> Vec<Offer<P>> {
        if self.revealed {
            return Vec::new();
        }
        self.peers.entry(peer).or_default().asked = true;
        self.assign()
    }

    /// `peer` demonstrably has `piece`: the seeder wrote it whole to it (or its TCP acknowledged
    /// it late). The new offers this allows.
    pub fn peer_has(&mut self, peer: P, piece: u32) -> Vec<Offer<P>> {
        let Some(view) = self.live_view(peer, piece) else {
            return Vec::new();
        };
        view.slow = false;
        view.asked = true;
        if self.count_holder(peer, piece) {
            self.assign()
        } else {
            Vec::new()
        }
    }

    /// `peer` asked for a block of `piece`: it downloads. Peers that asked are offered fresh
    /// pieces first, so an offer that a silent peer ignored ([`offer_ignored`](Self::offer_ignored))
    /// goes to a downloader, not to the next silent peer.
    pub fn peer_asked(&mut self, peer: P, piece: u32) {
        if let Some(view) = self.live_view(peer, piece) {
            view.asked = true;
        }
    }

    /// `peer` says it has `pieces` (its Haves, or its bitfield). A claim costs nothing to make,
    /// so it is believed only once the piece is out: some peer was sent it whole, and the
    /// claimant may have it from that peer. Then it counts as [`peer_has`](Self::peer_has) does,
    /// except that it does not end the claimant's [`peer_lost`](Self::peer_lost) wait. A claim
    /// of a piece nobody was sent yet is not believed: the piece stays fresh, so a peer that
    /// claims every piece and asks for none (an attacker, or a client that got the segment
    /// elsewhere) withholds nothing from the others; it is only not offered what it claims. The
    /// new offers this allows.
    pub fn peer_claims(&mut self, peer: P, pieces: impl IntoIterator<Item = u32>) -> Vec<Offer<P>> {
        let mut changed = false;
        for piece in pieces {
            let out_already = self.held_once.get(piece as usize).copied().unwrap_or(false);
            let Some(view) = self.live_view(peer, piece) else {
                continue;
            };
            if out_already {
                changed |= self.count_holder(peer, piece);
                continue;
            }
            view.claimed.insert(piece);
            if view.offered.contains(&piece) {
                // Offered to it, it will not ask for it: fresh again, for whoever has room.
                view.offered.retain(|p| *p != piece);
                if self.offered_to[piece as usize] == Some(peer) {
                    self.offered_to[piece as usize] = None;
                }
                changed = true;
            }
        }
        if changed {
            self.assign()
        } else {
            Vec::new()
        }
    }

    /// Counts live `peer` as a holder of `piece` (in range); whether that is new.
    fn count_holder(&mut self, peer: P, piece: u32) -> bool {
        let Some(view) = self.peers.get_mut(&peer) else {
            return false;
        };
        if !view.has.insert(piece) {
            return false;
        }
        self.holders[piece as usize] += 1;
        if !self.held_once[piece as usize] {
            self.held_once[piece as usize] = true;
            self.held_once_count += 1;
        }
        // Whoever it was offered to need not get it from us any more.
        if let Some(v) = self.offered_to[piece as usize]
            .take()
            .and_then(|to| self.peers.get_mut(&to))
        {
            v.offered.retain(|p| *p != piece);
        }
        true
    }

    /// A peer disconnected: pieces only it had, or that were offered to it, are fresh again.
    pub fn peer_gone(&mut self, peer: P) -> Vec<Offer<P>> {
        let Some(view) = self.peers.remove(&peer) else {
            return Vec::new();
        };
        for p in view.has {
            self.holders[p as usize] -= 1;
        }
        for p in view.offered {
            if self.offered_to[p as usize] == Some(peer) {
                self.offered_to[p as usize] = None;
            }
        }
        self.assign()
    }

    /// `piece`, counted as `peer`'s since it was written to it whole (or only offered to it), has
    /// not arrived there in time: its bytes are still unacknowledged (a congested path, or a peer
    /// gone silent). It is no longer counted as `peer`'s, so it is fresh again for the next peer
    /// with room instead of everybody waiting for a holder that does not have it, and `peer` is
    /// offered nothing new until it has a piece again ([`peer_has`](Self::peer_has), e.g. this
    /// one, arriving late). Without this, a piece whose one copy is stuck on its way is lost to
    /// the whole swarm: no viewer completes the segment (docs/experiments.md, "A piece stuck on
    /// its way").
    pub fn peer_lost(&mut self, peer: P, piece: u32) -> Vec<Offer<P>> {
        let Some(view) = self.live_view(peer, piece) else {
            return Vec::new();
        };
        view.slow = true;
        view.offered.retain(|p| *p != piece);
        if view.has.remove(&piece) {
            self.holders[piece as usize] -= 1;
        }
        if self.offered_to[piece as usize] == Some(peer) {
            self.offered_to[piece as usize] = None;
        }
        self.assign()
    }

    /// `piece`, offered to `peer`, was not asked for in time ([`Unrequested`]): as
    /// [`peer_lost`](Self::peer_lost), if it is still offered to `peer` (not claimed, received
    /// or revealed since); `None` otherwise.
    pub fn offer_ignored(&mut self, peer: P, piece: u32) -> Option<Vec<Offer<P>>> {
        if !self.live_view(peer, piece)?.offered.contains(&piece) {
            return None;
        }
        Some(self.peer_lost(peer, piece))
    }

    /// `peer`'s view, if offers are still made (not revealed), `piece` is in range and `peer` is
    /// live: the guard of [`peer_has`](Self::peer_has) and [`peer_lost`](Self::peer_lost).
    fn live_view(&mut self, peer: P, piece: u32) -> Option<&mut PeerView> {
        if self.revealed || piece as usize >= self.holders.len() {
            return None;
        }
        self.peers.get_mut(&peer)
    }

    /// Offers fresh pieces (nobody has them, nobody was offered them) to peers with room, in
    /// key order, until either runs out. A slow peer has no room.
    fn assign(&mut self) -> Vec<Offer<P>> {
        let mut out = Vec::new();
        let crowd = self.audience.max(self.peers.len());
        let per_peer = if crowd.saturating_mul(self.offers_per_peer) <= self.holders.len() {
            self.offers_per_peer
        } else {
            1
        };
        // Peers that asked for something first, then the others; each in key order.
        let mut waiting: Vec<(bool, P)> = self
            .peers
            .iter()
            .filter(|(_, v)| !v.slow && v.offered.len() < per_peer)
            .map(|(p, v)| (!v.asked, *p))
            .collect();
        waiting.sort();
        let waiting = waiting.into_iter().map(|(_, p)| p);
        for peer in waiting {
            while self.peers[&peer].offered.len() < per_peer {
                let Some(piece) = self.next_fresh(peer) else {
                    // Nothing fresh this peer did not claim: others may still take a piece.
                    break;
                };
                self.offered_to[piece as usize] = Some(peer);
                if let Some(v) = self.peers.get_mut(&peer) {
                    v.offered.push(piece);
                }
                out.push((peer, piece));
            }
        }
        out
    }

    /// The next fresh piece (in turn) that `peer` did not claim.
    fn next_fresh(&mut self, peer: P) -> Option<u32> {
        let n = self.holders.len();
        let claimed = &self.peers.get(&peer)?.claimed;
        for i in 0..n {
            let p = (self.next + i) % n;
            if self.holders[p] == 0
                && self.offered_to[p].is_none()
                && !claimed.contains(&(p as u32))
            {
                self.next = (p + 1) % n;
                return Some(p as u32);
            }
        }
        None
    }
}

/// The pieces offered to one connection (a Have sent) that its peer has not asked for yet. An
/// offer is a piece nobody else is offered while it waits, so a peer that takes offers and never
/// asks withholds them from everyone; after a while an offer not asked for is made to somebody
/// else ([`SuperSeed::peer_lost`]). Sans IO: the caller passes the time.
#[derive(Debug, Default)]
pub struct Unrequested {
    /// (piece, when it was offered or last found waiting on a busy peer), oldest first.
    pending: VecDeque<(u32, Instant)>,
}

impl Unrequested {
    /// `piece` was offered at `at`.
    pub fn offered(&mut self, piece: u32, at: Instant) {
        if !self.pending.iter().any(|&(p, _)| p == piece) {
            self.pending.push_back((piece, at));
        }
    }

    /// The peer asked for `piece`: its offer is taken up.
    pub fn requested(&mut self, piece: u32) {
        self.pending.retain(|&(p, _)| p != piece);
    }

    /// The offers made `after` ago or more and not asked for, removed. While the peer is `busy`
    /// (it has requests of its own waiting or being served: its request window may be full),
    /// nothing is found; each offer waits `after` again from `now`.
    pub fn expired(&mut self, now: Instant, after: Duration, busy: bool) -> Vec<u32> {
        let due = |at: Instant| now.saturating_duration_since(at) >= after;
        if busy {
            for (_, at) in self.pending.iter_mut().filter(|(_, at)| due(*at)) {
                *at = now;
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        self.pending.retain(|&(p, at)| {
            let gone = due(at);
            if gone {
                out.push(p);
            }
            !gone
        });
        out
    }

    /// When the oldest offer is due, if any waits.
    pub fn next_deadline(&self, after: Duration) -> Option<Instant> {
        self.pending.iter().map(|&(_, at)| at + after).min()
    }
}

/// The pieces written whole to one connection, until its peer's TCP acknowledges their last
/// byte. The seeder counts a piece as the peer's once it is written (so the next offer goes out
/// at once, not a round trip later); this tells which of those pieces did not arrive in time, to
/// be offered to somebody else ([`SuperSeed::peer_lost`]), and which of those arrived after all.
/// Sans IO: the caller passes the bytes acknowledged so far and the time.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// (piece, the connection's byte count after its last block, when that was written), in the
    /// order written, so in byte order.
    pending: VecDeque<(u32, u64, Instant)>,
    /// Pieces found late, with their byte counts, while they may still arrive.
    late: Vec<(u32, u64)>,
}

/// What [`Deliveries::check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Pieces not acknowledged within the delay, found now.
    pub late: Vec<u32>,
    /// Pieces found late before, acknowledged now.
    pub arrived_late: Vec<u32>,
    /// Pieces acknowledged now within the delay, with how long after their writing (at the
    /// resolution of the checks).
    pub arrived: Vec<(u32, Duration)>,
}

impl Deliveries {
    /// `piece` was written whole at `at`, the connection having been written `end` bytes then.
    pub fn written(&mut self, piece: u32, end: u64, at: Instant) {
        self.pending.push_back((piece, end, at));
    }

    /// Whether a piece waits for its acknowledgement (in time or late).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.late.is_empty()
    }

    /// With `acked` bytes of the connection acknowledged at `now`: every piece whose last byte
    /// is acknowledged has arrived; any other written `late_after` ago or more is late.
    pub fn check(&mut self, acked: u64, now: Instant, late_after: Duration) -> Checked {
        let mut out = Checked::default();
        while let Some(&(piece, end, at)) = self.pending.front() {
            if end <= acked {
                out.arrived.push((piece, now.saturating_duration_since(at)));
            } else if now.saturating_duration_since(at) >= late_after {
                out.late.push(piece);
                self.late.push((piece, end));
            } else {
                break;
            }
            self.pending.pop_front();
        }
        self.late.retain(|&(piece, end)| {
            let arrived = end <= acked;
            if arrived {
                out.arrived_late.push(piece);
            }
            !arrived
        });
        out
    }

    /// When the next [`check`](Self::check) is due: `poll` from `now` while anything waits, and
    /// no later than the oldest piece's deadline.
    pub fn next_check(
        &self,
        now: Instant,
        late_after: Duration,
        poll: Duration,
    ) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let next = now + poll;
        Some(match self.pending.front() {
            Some(&(_, _, at)) => next.min(at + late_after),
            None => next,
        })
    }
}

#[cfg(test)]
mod tests {
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
}
