//! Peers carried from one segment's swarm to the next, sans IO (docs/manifest.md, "Peers carried
//! from segment to segment").
//!
//! Every segment is a new torrent, and on the DHT path a new torrent meant a new DHT lookup:
//! measured on the emulated network, those lookups were most of a viewer's control traffic and
//! of the DHT's load. Yet the peers of the next segment's swarm are, nearly all, the peers of
//! the one before. So a viewer finds its stream's peers once, under one key for the whole
//! stream, and carries them from segment to segment:
//!
//! - **The stream's peer key** ([`peer_key`]): an info hash derived from the stream key. Every
//!   viewer looks it up on the DHT (BEP 5, announcing itself there) when it starts and every
//!   [`KEY_EVERY`] after; the peers it returns are candidates ([`Carry::found`]).
//! - **Carried**: the listen addresses of the peers on a live connection, and of the candidates
//!   found within [`CarryConfig::fresh`], the most recently seen first, at most
//!   [`CarryConfig::max`], are dialled when a segment is added. A peer that was live and is not
//!   any more has left (a viewer that stays keeps a connection of some segment in the window):
//!   it is no longer carried, until it is found again (each dial of it would fail, and a failed
//!   peer is dialled again after a second, [`RECONNECT_FIRST_WAIT`]).
//! - **Looked up**: a segment's torrent is looked up on the DHT only while the viewer has fewer
//!   than [`CarryConfig::want`] live peers (a newcomer whose key lookup found nobody yet, or a
//!   small audience); otherwise its peers are those carried.
//!
//! A newcomer finds the audience under the peer key and dials it; the viewers it dials learn
//! where it listens from its extended handshake, and carry it from then on. The clock is passed
//! in; nothing here does I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::StreamKey;

/// What [`peer_key`] hashes before the stream key.
pub const PEER_KEY_PREFIX: &[u8] = b"swarmcast/peers/1";

/// How often a viewer looks its stream's peer key up again (and announces itself there).
pub const KEY_EVERY: Duration = Duration::from_secs(300);

/// Live peers under which a viewer looks every segment up on the DHT.
pub const WANT: usize = 4;

/// Peers dialled at most when a segment is added (besides the publisher's seeder).
pub const MAX_CARRIED: usize = 32;

/// How long a peer is carried after its last live connection was seen (or it was found).
pub const FRESH: Duration = Duration::from_secs(20);

/// A segment whose peers are carried waits this long before it dials a failed peer again (then
/// 6 times longer at each failure; librqbit's own first wait is 10 s). A carried peer is dialled
/// as soon as the segment is added, often before that peer has added it and while its
/// connection is refused: a second later it usually has (librqbit patch 0024).
pub const RECONNECT_FIRST_WAIT: Duration = Duration::from_secs(1);

/// The info hash under which a stream's viewers announce themselves on the DHT:
/// SHA-1(`swarmcast/peers/1` ‖ the 32 bytes of the stream key). No torrent has it; it names the
/// stream's audience, as a segment's info hash names a segment's swarm.
pub fn peer_key(key: &StreamKey) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(PEER_KEY_PREFIX);
    h.update(key.as_bytes());
    h.finalize().into()
}

/// What [`Carry`] is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarryConfig {
    /// Live peers under which every segment is looked up.
    pub want: usize,
    /// Peers carried at most.
    pub max: usize,
    /// How long a peer found under the peer key is carried (one seen live, then gone, is not).
    pub fresh: Duration,
}

impl Default for CarryConfig {
    fn default() -> Self {
        Self {
            want: WANT,
            max: MAX_CARRIED,
            fresh: FRESH,
        }
    }
}

/// What to do for one segment ([`Carry::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarryPlan {
    /// Peers to dial at once, the most recently seen first.
    pub peers: Vec<SocketAddr>,
    /// Whether the DHT looks the segment up (and announces it).
    pub lookup: bool,
}

/// The peers a viewer has seen or found, and when (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Carry {
    config: CarryConfig,
    /// When each peer was last found or seen live, and whether it was live then.
    seen: HashMap<SocketAddr, (Instant, bool)>,
}

impl Carry {
    /// A viewer that has seen no peer yet.
    pub fn new(config: CarryConfig) -> Self {
        Self {
            config,
            seen: HashMap::new(),
        }
    }

    /// Peers found at `now` (under the stream's peer key): carried as if seen then.
    pub fn found(&mut self, addrs: &[SocketAddr], now: Instant) {
        for &a in addrs {
            self.seen.insert(a, (now, false));
        }
        self.bound(now);
    }

    /// The plan for a segment added at `now`, when the peers listening at `live` have a live
    /// connection: they are seen now; peers live at an earlier plan and not now have left and
    /// are forgotten, and so are peers found longer than [`CarryConfig::fresh`] ago.
    pub fn plan(&mut self, live: &[SocketAddr], now: Instant) -> CarryPlan {
        self.seen
            .retain(|a, &mut (_, was_live)| !was_live || live.contains(a));
        for &a in live {
            self.seen.insert(a, (now, true));
        }
        let peers = self.bound(now);
        let mut distinct = live.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        CarryPlan {
            peers,
            lookup: distinct.len() < self.config.want,
        }
    }

    /// Forgets the peers gone stale and, past four times [`CarryConfig::max`], all but the
    /// ones carried; returns those, the most recently seen first.
    fn bound(&mut self, now: Instant) -> Vec<SocketAddr> {
        let fresh = self.config.fresh;
        self.seen
            .retain(|_, &mut (t, _)| now.saturating_duration_since(t) <= fresh);
        let mut peers: Vec<(Instant, SocketAddr)> =
            self.seen.iter().map(|(&a, &(t, _))| (t, a)).collect();
        // Newest first; the address breaks ties, so a plan does not depend on the map's order.
        peers.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        peers.truncate(self.config.max);
        if self.seen.len() > self.config.max.saturating_mul(4) {
            let keep: std::collections::HashSet<SocketAddr> =
                peers.iter().map(|&(_, a)| a).collect();
            self.seen.retain(|a, _| keep.contains(a));
        }
        peers.into_iter().map(|(_, a)| a).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, (i % 250) as u8 + 1], 6000 + i))
    }

    fn addrs(r: std::ops::Range<u16>) -> Vec<SocketAddr> {
        r.map(addr).collect()
    }

    #[test]
    fn the_peer_key_is_sha1_of_the_prefix_and_the_stream_key() {
        let key = crate::StreamSecret::from_seed(&[7; 32]).public();
        let mut h = Sha1::new();
        h.update(b"swarmcast/peers/1");
        h.update(key.as_bytes());
        let want: [u8; 20] = h.finalize().into();
        assert_eq!(peer_key(&key), want);
        let other = crate::StreamSecret::from_seed(&[8; 32]).public();
        assert_ne!(peer_key(&key), peer_key(&other));
    }

    #[test]
    fn a_viewer_short_of_live_peers_looks_segments_up_and_one_with_enough_does_not() {
        let mut c = Carry::new(CarryConfig::default());
        let t = Instant::now();
        assert!(c.plan(&[], t).lookup, "no peer");
        assert!(c.plan(&addrs(0..3), t).lookup, "three peers");
        assert!(!c.plan(&addrs(0..4), t).lookup, "four peers");
        // The same peer twice is one peer.
        let twice = [addr(0), addr(0), addr(1), addr(1), addr(2)];
        assert!(c.plan(&twice, t).lookup);
        // Peers found but not (yet) connected are dialled, but do not count as live.
        c.found(&addrs(10..20), t);
        let plan = c.plan(&[], t);
        assert!(plan.lookup);
        assert!(addrs(10..20).iter().all(|a| plan.peers.contains(a)));
    }

    #[test]
    fn peers_are_carried_newest_first_until_they_leave_or_go_stale() {
        let mut c = Carry::new(CarryConfig::default());
        let t0 = Instant::now();
        let first = c.plan(&addrs(0..2), t0);
        assert_eq!(first.peers, addrs(0..2), "ties by address");
        // Peer 1 has left (live before, not now), peer 2 is new: peer 1 is no longer carried.
        let t1 = t0 + Duration::from_secs(4);
        let second = c.plan(&[addr(2), addr(0)], t1);
        assert_eq!(second.peers, vec![addr(0), addr(2)]);
        // Peers found under the key come first, the one that left too (found again).
        let t2 = t1 + Duration::from_secs(1);
        c.found(&[addr(3), addr(1)], t2);
        let third = c.plan(&[addr(2), addr(0)], t2);
        assert_eq!(third.peers, vec![addr(0), addr(1), addr(2), addr(3)]);
        // A found peer is carried for `fresh` though never live; the live ones stay.
        let t3 = t2 + FRESH;
        let fourth = c.plan(&[addr(2), addr(0)], t3);
        assert_eq!(fourth.peers, vec![addr(0), addr(2), addr(1), addr(3)]);
        let t4 = t3 + Duration::from_millis(1);
        let fifth = c.plan(&[addr(2), addr(0)], t4);
        assert_eq!(fifth.peers, vec![addr(0), addr(2)]);
        // Everyone left: nothing carried.
        assert_eq!(c.plan(&[], t4).peers, Vec::<SocketAddr>::new());
    }

    #[test]
    fn at_most_max_peers_are_carried_and_the_memory_is_bounded() {
        let config = CarryConfig::default();
        let mut c = Carry::new(config);
        let t = Instant::now();
        for i in 0..20u16 {
            let batch = addrs(i * 50..i * 50 + 50);
            let now = t + Duration::from_millis(u64::from(i));
            if i % 2 == 0 {
                c.found(&batch, now);
            }
            let plan = c.plan(&batch, now);
            assert_eq!(plan.peers.len(), config.max);
            // The newest batch first.
            assert!(plan.peers.iter().all(|a| batch.contains(a)));
            assert!(c.seen.len() <= config.max * 4);
        }
    }
}
