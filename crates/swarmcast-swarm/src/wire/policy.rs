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
/// wire seeder uses a connection number); offers go out in a fixed order (peers that asked for
/// something first, then key order), so runs are reproducible. What a peer is sent counts; what
/// it claims counts only for pieces already out ([`SuperSeed::peer_claims`]).
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
    /// A peer holding a piece gets no fresh one while the audience is still coming (see
    /// [`with_hold`](Self::with_hold)).
    hold: bool,
    /// Per piece: whether any peer ever had it; and how many have been.
    held_once: Vec<bool>,
    held_once_count: usize,
    /// Per piece: its one holder passed it on to nobody in time ([`SuperSeed::stranded`]), so
    /// it is fresh for one more peer, until a new holder is counted.
    spare: Vec<bool>,
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
            hold: false,
            held_once: vec![false; pieces as usize],
            held_once_count: 0,
            spare: vec![false; pieces as usize],
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

    /// Holds fresh pieces for the audience still coming: while fewer peers are live than
    /// expected ([`with_audience`](Self::with_audience), at most one a piece), a peer that holds
    /// a piece is offered no fresh one; the pieces left wait for the peers that connect next.
    /// Without it, when the audience learns of a segment over a few hundred milliseconds (a
    /// manifest spreading hop by hop in the swarm), the first few peers took a second and
    /// third fresh piece before the others connected, and each had to upload two or three
    /// pieces to everyone: the lab's download tails and stalls with swarm-carried manifests
    /// (docs/experiments.md, "Fresh pieces held for the audience"). The owner ends the hold
    /// with [`end_hold`](Self::end_hold) after a while (the audience may have shrunk).
    pub fn with_hold(mut self) -> Self {
        self.hold = true;
        self
    }

    /// Ends the hold ([`with_hold`](Self::with_hold)): the offers it held back.
    pub fn end_hold(&mut self) -> Vec<Offer<P>> {
        if !self.hold || self.revealed {
            self.hold = false;
            return Vec::new();
        }
        self.hold = false;
        self.assign()
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
        self.spare[piece as usize] = false;
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

    /// Pieces held by exactly one live peer that a live peer still lacks (neither holds nor
    /// claims it) and that are not offered to anyone: if one stays so for a while, its holder is
    /// passing it on to nobody ([`stranded`](Self::stranded)). Empty once revealed.
    pub fn lone_pieces(&self) -> Vec<u32> {
        (0..self.holders.len() as u32)
            .filter(|&p| self.is_lone(p))
            .collect()
    }

    /// Whether `piece` is one [`lone_pieces`](Self::lone_pieces) lists.
    fn is_lone(&self, piece: u32) -> bool {
        let p = piece as usize;
        !self.revealed
            && p < self.holders.len()
            && self.holders[p] == 1
            && !self.spare[p]
            && self.offered_to[p].is_none()
            && self
                .peers
                .values()
                .any(|v| !v.has.contains(&piece) && !v.claimed.contains(&piece))
    }

    /// `piece`'s one holder has passed it on to nobody for a while ([`Lone`]): a peer that
    /// takes pieces and shares them with nobody (behind a NAT and met by no peer, say) would
    /// otherwise hold the only copy, and no viewer would complete the segment. The piece is
    /// fresh again for one more peer (the seeder sends one more copy); counting any new holder
    /// ends that. Only a piece [`lone_pieces`](Self::lone_pieces) lists; the new offers.
    ///
    /// The copy goes to a peer that holds no lone piece of its own if there is one: a peer
    /// whose pieces stay with it may be as cut off as the holder (in the lab, a second viewer
    /// behind NAT that nobody met took the spare copy, and the segment was lost all the same);
    /// then to peers that asked first, holding fewest pieces, in key order.
    pub fn stranded(&mut self, piece: u32) -> Vec<Offer<P>> {
        if !self.is_lone(piece) {
            return Vec::new();
        }
        self.spare[piece as usize] = true;
        let holders = &self.holders;
        let target = self
            .peers
            .iter()
            .filter(|(_, v)| !v.slow && !v.has.contains(&piece) && !v.claimed.contains(&piece))
            .map(|(p, v)| {
                let holds_lone = v.has.iter().any(|&h| holders[h as usize] == 1);
                ((holds_lone, !v.asked, v.has.len()), *p)
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, p)| p);
        let Some(peer) = target else {
            return self.assign();
        };
        self.offered_to[piece as usize] = Some(peer);
        if let Some(v) = self.peers.get_mut(&peer) {
            v.offered.push(piece);
        }
        let mut offers = vec![(peer, piece)];
        offers.extend(self.assign());
        offers
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

    /// Offers fresh pieces (nobody has them, nobody was offered them, the peer did not claim
    /// them) to peers with room, those that asked for something first, each group by the pieces
    /// it holds (fewest first) then key order, until either runs out. A slow peer has no room;
    /// while [held](Self::with_hold), neither has a peer holding a piece.
    fn assign(&mut self) -> Vec<Offer<P>> {
        let mut out = Vec::new();
        let crowd = self.audience.max(self.peers.len());
        let per_peer = if crowd.saturating_mul(self.offers_per_peer) <= self.holders.len() {
            self.offers_per_peer
        } else {
            1
        };
        // While the audience is still coming, fresh pieces are for peers holding none.
        let holding = self.hold && self.peers.len() < self.audience.min(self.holders.len());
        // Peers that asked for something first, then the others; in each group those holding
        // fewer pieces first (fresh pieces spread wide), then key order.
        let mut waiting: Vec<(bool, usize, P)> = self
            .peers
            .iter()
            .filter(|(_, v)| !v.slow && v.offered.len() < per_peer)
            .filter(|(_, v)| !holding || v.has.is_empty())
            .map(|(p, v)| (!v.asked, v.has.len(), *p))
            .collect();
        waiting.sort();
        let waiting = waiting.into_iter().map(|(_, _, p)| p);
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

    /// The next fresh piece (in turn) that `peer` did not claim and does not have: held by
    /// nobody, or a [spare](Self::stranded) copy.
    fn next_fresh(&mut self, peer: P) -> Option<u32> {
        let n = self.holders.len();
        let view = self.peers.get(&peer)?;
        for i in 0..n {
            let p = (self.next + i) % n;
            if (self.holders[p] == 0 || self.spare[p])
                && self.offered_to[p].is_none()
                && !view.claimed.contains(&(p as u32))
                && !view.has.contains(&(p as u32))
            {
                self.next = (p + 1) % n;
                return Some(p as u32);
            }
        }
        None
    }
}

/// How long each piece has had one holder ([`SuperSeed::lone_pieces`]), to tell which were
/// passed on to nobody in time ([`SuperSeed::stranded`]). Sans IO: the caller passes the time.
#[derive(Debug, Default)]
pub struct Lone {
    /// Piece, and since when it has been lone (as far as the checks saw).
    since: BTreeMap<u32, Instant>,
}

impl Lone {
    /// `lone` are the pieces lone at `now`: those lone at every check for `after` or more are
    /// returned (and start over). A piece missing from `lone` starts over.
    pub fn check(&mut self, now: Instant, lone: &[u32], after: Duration) -> Vec<u32> {
        self.since.retain(|p, _| lone.contains(p));
        let mut due = Vec::new();
        for &p in lone {
            let since = *self.since.entry(p).or_insert(now);
            if now.saturating_duration_since(since) >= after {
                due.push(p);
                self.since.remove(&p);
            }
        }
        due
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
mod tests;
