//! The embedded BitTorrent HTTP tracker (BEP 3, compact peers BEP 23, IPv6 peers BEP 7), sans-IO:
//! the HTTP layer hands it the raw query string, the caller's address and the time.
//!
//! It tracks only the torrents the publisher seeds (other info hashes get a `failure reason`), lists
//! the publisher itself as a seed of each, and forgets a peer that has not announced for three
//! intervals. The `ip` parameter is ignored: a peer is listed at the address it announced from, so
//! nobody can point a swarm at a third party.
//!
//! With a [`NatCheck`] (BitTornado's `--nat_check`), a peer is handed out to others only once the
//! tracker has connected back to its listed address: peers behind a NAT can dial out but nobody can
//! dial in, and a dial into a NAT costs a client a connect timeout and a long backoff. Reachability
//! is kept per listed address, across torrents (a viewer listens on one port for all its segment
//! torrents), for [`NatCheck::ttl_ms`], then re-checked on the address's next announce. The tracker
//! does no IO: [`Tracker::to_check`] says which addresses to connect to, and the caller reports each
//! verdict with [`Tracker::set_reachable`]. A peer that fails the check still gets peer lists (it can
//! dial out to reachable peers); it is just never listed to others. A new peer is listed from the
//! first announce of another peer after its check succeeds, and the publisher (always listed, and
//! in the manifest) is there meanwhile. librqbit re-announces after each answer's `min interval`
//! (5 s by default): a peer that can be dialled need not hear of later peers sooner, since they
//! dial it; a peer nobody can dial (failed or pending check) is answered a `min interval` of 1 s
//! while live reachable peers are missing from its answer ([`CATCH_UP_MIN_INTERVAL_S`]), so it
//! finds, within about a second, the reachable peers that added the torrent after it.
//!
//! With [`NatCheck::spare_reachable`] (on by default), while at least as many live addresses
//! (announced within three intervals, across torrents) failed the check as passed it, a reachable
//! peer's announce is answered with the publisher alone. Peers behind NAT can only get pieces from
//! reachable peers, which can get theirs from anyone, the NATed peers that dial them included; so
//! reachable peers stop dialling each other, and their uplinks go to the NATed peers.
//!
//! With [`Tracker::with_punch`] (TCP hole punching), a peer that failed the NAT check is also
//! listed a few other such peers ([`PUNCH_DEGREE`], the same pairs both ways) at the segment's
//! punch port, which both ends dial from that same port, so that each one's SYN opens its own NAT
//! for the other's.

//!
//! The parts: `tracker/nat.rs` keeps the NAT check's table, `tracker/punch.rs` pairs peers
//! behind NAT, `tracker/query.rs` parses announces, `tracker/response.rs` encodes the answers;
//! this file keeps the swarms and answers an announce step by step.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

mod nat;
mod punch;
mod query;
mod response;
#[cfg(test)]
mod tests;

pub use nat::{NatCheck, Reachability, NAT_CHECKS_IN_FLIGHT, NAT_CHECK_ADDRS, NAT_CHECK_TTL};
use nat::{NatTable, Reach, ReachState};
use punch::port_of;
pub use query::{
    parse_announce, Announce, AnnounceError, AnnounceEvent, DEFAULT_NUMWANT, MAX_NUMWANT,
};
pub use response::failure;

/// The `min interval` answered to a peer nobody can dial (it failed the NAT check or was not
/// checked yet) while live reachable peers are missing from its answer or NAT checks are in
/// flight: such a peer learns of a reachable one that added the torrent after it (or was found
/// reachable after it announced) only from its own next announce, since nobody dials it, and
/// librqbit re-announces after each answer's `min interval`.
pub const CATCH_UP_MIN_INTERVAL_S: u64 = 1;

/// Most peers behind NAT listed to each peer behind NAT at a punch port, per segment
/// ([`Tracker::with_punch`]). Each is a connection of the segment's swarm, and each connection
/// costs both ends its handshakes and a Have per piece on uplinks capped at a small multiple of the
/// bitrate: at 35 viewers, 21 behind NAT, listing every one made 35 connections per segment per
/// NATed viewer.
pub const PUNCH_DEGREE: usize = 8;

/// Most peers one swarm (one segment's torrent) keeps; a newcomer then displaces the one heard
/// from least recently. Bounds the tracker's memory and each announce's work (its answer picks
/// the most recent `numwant` of them).
pub const MAX_SWARM_PEERS: usize = 1_000;

/// Most entries one address (an IPv4 address, or an IPv6 /64) holds in a swarm: viewers behind
/// one NAT share an address. A newcomer beyond it displaces that address's least recent entry,
/// so one host announcing many ports cannot crowd the others out.
pub const MAX_PEERS_PER_ADDRESS: usize = 16;

/// A peer, keyed in its swarm by the address it announced from (the remote IP and the port it
/// announced), never by the peer id it claims: anyone can send any id.
#[derive(Debug, Clone)]
struct Peer {
    peer_id: [u8; 20],
    seed: bool,
    last_ms: u64,
}

#[derive(Debug, Default)]
struct Swarm {
    /// The publisher's own listening address: always listed, always a seed.
    publisher: Option<SocketAddr>,
    /// The segment's number, when the torrent is a segment's: it picks the punch port.
    number: Option<u64>,
    peers: HashMap<SocketAddr, Peer>,
}

/// Counters of the tracker's work, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerCounters {
    /// Announces answered with peers.
    pub announces: u64,
    /// Announces refused (malformed, unknown torrent).
    pub failures: u64,
    /// Peers dropped for not announcing within three intervals.
    pub expired: u64,
    /// NAT checks handed out (connections back to a peer's listed address).
    pub nat_checks: u64,
    /// NAT checks that found the address unreachable (refused or timed out).
    pub nat_unreachable: u64,
    /// Announces from reachable peers answered with the publisher alone, keeping their uplinks
    /// for the peers behind a NAT ([`NatCheck::spare_reachable`]).
    pub spared: u64,
    /// Announces from peers nobody can dial answered with a `min interval` of 1 s, since live
    /// reachable peers were missing from the answer or checks were in flight
    /// ([`CATCH_UP_MIN_INTERVAL_S`]).
    pub caught_up: u64,
    /// Announces from peers that failed the NAT check answered with other such peers at the
    /// segment's punch port ([`Tracker::with_punch`]).
    pub punched: u64,
    /// Peers listed at a punch port, over all those announces.
    pub punch_listed: u64,
    /// Peers displaced by newcomers: their address held [`MAX_PEERS_PER_ADDRESS`] entries, or
    /// their swarm [`MAX_SWARM_PEERS`].
    pub displaced: u64,
}

/// The tracker's state.
#[derive(Debug)]
pub struct Tracker {
    interval_s: u64,
    min_interval_s: u64,
    swarms: HashMap<[u8; 20], Swarm>,
    counters: TrackerCounters,
    /// The NAT check, when on.
    nat: Option<NatTable>,
    /// The hole punching's port range, when on.
    punch: Option<std::ops::RangeInclusive<u16>>,
}

impl Tracker {
    /// A tracker telling clients to re-announce every `interval_s` seconds (at least 1), and not
    /// more often than `min_interval_s` (at least 1, at most the interval).
    pub fn new(interval_s: u64, min_interval_s: u64) -> Self {
        let interval_s = interval_s.max(1);
        Self {
            interval_s,
            min_interval_s: min_interval_s.clamp(1, interval_s),
            swarms: HashMap::new(),
            counters: TrackerCounters::default(),
            nat: None,
            punch: None,
        }
    }

    /// TCP hole punching between peers behind NAT: with the NAT check on, a peer that failed it
    /// is also listed the other live peers that failed it (announced within three intervals, any
    /// torrent of the stream, on another IP address), each at the port `ports` assigns to this
    /// segment (its first port plus the segment's number modulo the range's length), rather
    /// than the port it announced. Both ends of a pair are listed each other at the same port;
    /// a viewer that dials a peer at a port of its punch range dials it from that same port
    /// (`watch --punch-ports`), so each end's SYN opens its own NAT for the other's: a NAT that
    /// keeps the source port and filters by address and port lets the pair connect (TCP
    /// simultaneous open). The port changes with the segment, so that the connection of one
    /// segment never needs the address pair of the previous one's, which TIME_WAIT holds for a
    /// minute: a range of 64 ports covers 64 segments. No effect without the NAT check, without
    /// a segment number ([`add_segment`](Self::add_segment)), or with `None` or an empty range.
    pub fn with_punch(mut self, ports: Option<std::ops::RangeInclusive<u16>>) -> Self {
        self.punch = ports.filter(|p| !p.is_empty());
        self
    }

    /// The port the pairs of peers behind NAT of segment `number` are listed each other at.
    pub fn punch_port(&self, number: u64) -> Option<u16> {
        self.punch.as_ref().map(|ports| port_of(ports, number))
    }

    /// Lists a peer to others only once it passed a NAT check (see the module docs); without this
    /// every peer is listed. `max_in_flight` and `max_addrs` are taken as at least 1.
    pub fn with_nat_check(mut self, nat: NatCheck) -> Self {
        self.nat = Some(NatTable {
            config: NatCheck {
                max_in_flight: nat.max_in_flight.max(1),
                max_addrs: nat.max_addrs.max(1),
                ..nat
            },
            addrs: HashMap::new(),
            in_flight: 0,
            pending: Vec::new(),
        });
        self
    }

    /// The NAT check's settings, when it is on.
    pub fn nat_check(&self) -> Option<NatCheck> {
        self.nat.as_ref().map(|n| n.config)
    }

    /// The addresses to connect to now, each once; report each verdict with
    /// [`set_reachable`](Self::set_reachable). Empty with the NAT check off.
    pub fn to_check(&mut self) -> Vec<SocketAddr> {
        self.nat
            .as_mut()
            .map_or_else(Vec::new, |n| std::mem::take(&mut n.pending))
    }

    /// Records a NAT check's verdict for `addr` at `now_ms`. A verdict for an address the tracker
    /// no longer remembers is dropped.
    pub fn set_reachable(&mut self, addr: SocketAddr, reachable: bool, now_ms: u64) {
        if let Some(nat) = &mut self.nat {
            if nat.verdict(addr, reachable, now_ms) && !reachable {
                self.counters.nat_unreachable += 1;
            }
        }
    }

    /// What the NAT check knows of `addr` ([`Reachability::Unchecked`] when it is off).
    pub fn reachability(&self, addr: &SocketAddr) -> Reachability {
        match self.nat.as_ref().and_then(|n| n.addrs.get(addr)) {
            None => Reachability::Unchecked,
            Some(r) => match r.state {
                ReachState::Unchecked => Reachability::Unchecked,
                ReachState::Checking { .. } => Reachability::Checking,
                ReachState::Known {
                    reachable: true, ..
                } => Reachability::Reachable,
                ReachState::Known {
                    reachable: false, ..
                } => Reachability::Unreachable,
            },
        }
    }

    /// NAT checks in flight (handed out, no verdict yet).
    pub fn nat_checks_in_flight(&self) -> usize {
        self.nat.as_ref().map_or(0, |n| n.in_flight)
    }

    /// Starts tracking a torrent the publisher seeds from `publisher` (its peer address). Without
    /// a segment number it is never punched: see [`add_segment`](Self::add_segment).
    pub fn add_torrent(&mut self, info_hash: [u8; 20], publisher: Option<SocketAddr>) {
        self.swarms.entry(info_hash).or_default().publisher = publisher;
    }

    /// Starts tracking segment `number`'s torrent, seeded from `publisher`.
    pub fn add_segment(&mut self, info_hash: [u8; 20], publisher: Option<SocketAddr>, number: u64) {
        let swarm = self.swarms.entry(info_hash).or_default();
        swarm.publisher = publisher;
        swarm.number = Some(number);
    }

    /// Stops tracking a torrent (it left the window and its grace period).
    pub fn remove_torrent(&mut self, info_hash: &[u8; 20]) {
        self.swarms.remove(info_hash);
    }

    /// Torrents tracked.
    pub fn torrents(&self) -> usize {
        self.swarms.len()
    }

    /// Peers known for a torrent (the publisher not counted).
    pub fn peers(&self, info_hash: &[u8; 20]) -> usize {
        self.swarms.get(info_hash).map_or(0, |s| s.peers.len())
    }

    /// The counters.
    pub fn counters(&self) -> TrackerCounters {
        self.counters.clone()
    }

    /// Forgets peers not heard from for three intervals before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        let ttl = 3 * self.interval_s * 1000;
        for swarm in self.swarms.values_mut() {
            let before = swarm.peers.len();
            swarm
                .peers
                .retain(|_, p| now_ms.saturating_sub(p.last_ms) < ttl);
            self.counters.expired += (before - swarm.peers.len()) as u64;
        }
        if let Some(nat) = &mut self.nat {
            // An address is remembered while a swarm may still list it, and at least as long as
            // its verdict holds.
            let keep = nat.config.ttl_ms.max(ttl);
            nat.expire(now_ms, keep);
        }
    }

    /// Answers an announce's raw query string from `remote` at `now_ms`, as bencoded bytes.
    pub fn handle(&mut self, query: &str, remote: IpAddr, now_ms: u64) -> Vec<u8> {
        match parse_announce(query, remote) {
            Ok(a) => self.announce(&a, now_ms),
            Err(e) => {
                self.counters.failures += 1;
                failure(&e.0)
            }
        }
    }

    /// Answers a parsed announce: the publisher, then the other peers (most recently heard
    /// first, at most `numwant`); with the NAT check, only those that passed it, and to a
    /// reachable announcer none while NATed peers are as many (see the module docs).
    pub fn announce(&mut self, a: &Announce, now_ms: u64) -> Vec<u8> {
        self.expire(now_ms);
        let Some(swarm) = self.swarms.get_mut(&a.info_hash) else {
            self.counters.failures += 1;
            return failure(
                "unknown info_hash: this tracker serves only the stream's live segments",
            );
        };
        self.counters.announces += 1;
        let stopped = a.event == Some(AnnounceEvent::Stopped);
        if !stopped {
            if let Some(nat) = &mut self.nat {
                if nat.announced(a.addr, now_ms) {
                    self.counters.nat_checks += 1;
                }
            }
        }
        self.counters.displaced += swarm.record(a, now_ms);
        let (seeds, leechers) = swarm.counts();
        // The publisher first (it has every piece), then the others, most recently heard first.
        // With the NAT check on, only peers that passed it; and none at all to a reachable
        // announcer while NATed peers are at least as many as reachable ones (`spare_reachable`).
        let nat = self.nat.as_ref();
        // Live: heard from within three intervals, as long as a swarm keeps a peer.
        let live_ms = 3 * self.interval_s * 1000;
        let spare = nat.is_some_and(|n| n.spares(a.addr, now_ms, live_ms));
        if spare {
            self.counters.spared += 1;
        }
        let listed = swarm.listed(a, nat, spare);
        // Hole punching: an announcer behind NAT, and the others behind NAT, at the punch port.
        let punch = swarm
            .number
            .zip(self.punch.as_ref())
            .map(|(n, ports)| (n, port_of(ports, n)));
        let punched: Vec<([u8; 20], SocketAddr)> = match (nat, punch) {
            (Some(n), Some((number, port)))
                if !stopped && n.addrs.get(&a.addr).is_some_and(Reach::unreachable) =>
            {
                n.punch_partners(a.addr, number, now_ms, live_ms, PUNCH_DEGREE)
                    .into_iter()
                    .map(|addr| ([0u8; 20], SocketAddr::new(addr.ip(), port)))
                    .take(a.numwant.saturating_sub(listed.len()))
                    .collect()
            }
            _ => Vec::new(),
        };
        if !punched.is_empty() {
            self.counters.punched += 1;
            self.counters.punch_listed += punched.len() as u64;
        }
        // An announcer nobody can dial (behind a NAT, or not checked yet) learns of a reachable
        // peer only from its own announces: while live reachable peers are not all in its answer
        // (they may add this torrent after it did), or checks are in flight (a peer may be found
        // reachable), it may re-announce after 1 s.
        // (`numwant=0` lists nobody, not even the publisher.)
        let listed_others = listed
            .iter()
            .filter(|(_, addr)| swarm.publisher != Some(*addr))
            .count();
        let catch_up = a.left > 0
            && !stopped
            && !spare
            && nat.is_some_and(|n| n.catches_up(a, listed_others, now_ms, live_ms));
        if catch_up {
            self.counters.caught_up += 1;
        }
        let listed: Vec<([u8; 20], SocketAddr)> = listed.into_iter().chain(punched).collect();
        let min_interval = if catch_up {
            CATCH_UP_MIN_INTERVAL_S.min(self.min_interval_s)
        } else {
            self.min_interval_s
        };
        response::peers(
            a.compact,
            response::Counts {
                complete: seeds,
                incomplete: leechers,
                interval: self.interval_s,
                min_interval,
            },
            &listed,
        )
    }
}

impl Swarm {
    /// Records an announce, keyed by the address it came from: a stopped peer leaves at once
    /// (an announce can stop only its own address's entry), any other is (re)listed at
    /// `now_ms`. A newcomer beyond the caps displaces the least recent entry of its address, or
    /// of the swarm; how many were displaced.
    fn record(&mut self, a: &Announce, now_ms: u64) -> u64 {
        if a.event == Some(AnnounceEvent::Stopped) {
            self.peers.remove(&a.addr);
            return 0;
        }
        let mut displaced = 0;
        if !self.peers.contains_key(&a.addr) {
            let host = swarmcast_swarm::wire::address_key(a.addr.ip());
            let same_host = |k: &SocketAddr| swarmcast_swarm::wire::address_key(k.ip()) == host;
            if self.peers.keys().filter(|k| same_host(k)).count() >= MAX_PEERS_PER_ADDRESS {
                displaced += u64::from(self.displace_oldest(same_host));
            }
            if self.peers.len() >= MAX_SWARM_PEERS {
                displaced += u64::from(self.displace_oldest(|_| true));
            }
        }
        self.peers.insert(
            a.addr,
            Peer {
                peer_id: a.peer_id,
                seed: a.left == 0,
                last_ms: now_ms,
            },
        );
        displaced
    }

    /// Removes the least recently heard entry among those `of` selects; false if none.
    fn displace_oldest(&mut self, of: impl Fn(&SocketAddr) -> bool) -> bool {
        let oldest = self
            .peers
            .iter()
            .filter(|(k, _)| of(k))
            .min_by_key(|(k, p)| (p.last_ms, **k))
            .map(|(k, _)| *k);
        oldest.is_some_and(|k| self.peers.remove(&k).is_some())
    }

    /// Seeds (the publisher included) and leechers.
    fn counts(&self) -> (u64, u64) {
        let seeds = self.peers.values().filter(|p| p.seed).count() as u64
            + u64::from(self.publisher.is_some());
        let leechers = self.peers.values().filter(|p| !p.seed).count() as u64;
        (seeds, leechers)
    }

    /// The peers listed to announcer `a`: the publisher, then the others most recently heard
    /// first (with the NAT check, only those that passed it; none when `spare`), never the
    /// announcer itself, at most `numwant`.
    fn listed(
        &self,
        a: &Announce,
        nat: Option<&NatTable>,
        spare: bool,
    ) -> Vec<([u8; 20], SocketAddr)> {
        let mut others: Vec<(&SocketAddr, &Peer)> = self
            .peers
            .iter()
            .filter(|(addr, p)| **addr != a.addr && p.peer_id != a.peer_id)
            .filter(|(addr, _)| nat.is_none_or(|n| n.listed(addr)) && !spare)
            .collect();
        // The most recent `numwant` only are put in order (a swarm holds up to
        // MAX_SWARM_PEERS, an answer a few dozen).
        let recent_first = |x: &(&SocketAddr, &Peer), y: &(&SocketAddr, &Peer)| {
            y.1.last_ms.cmp(&x.1.last_ms).then(x.0.cmp(y.0))
        };
        if a.numwant < others.len() {
            others.select_nth_unstable_by(a.numwant, recent_first);
            others.truncate(a.numwant);
        }
        others.sort_by(recent_first);
        self.publisher
            .filter(|p| *p != a.addr)
            .map(|p| ([0u8; 20], p))
            .into_iter()
            .chain(others.into_iter().map(|(addr, p)| (p.peer_id, *addr)))
            .take(a.numwant)
            .collect()
    }
}
