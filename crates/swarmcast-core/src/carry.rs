//! Peers carried from one segment's swarm to the next, sans IO (docs/manifest.md, "Peers carried
//! from segment to segment").
//!
//! Every segment is a new torrent, and on the DHT path a new torrent means a new DHT lookup:
//! measured on the emulated network, those lookups were most of a viewer's control traffic and
//! of the DHT's load. Yet the peers of the next segment's swarm are, nearly all, the peers of
//! the one before. [`Carry`] decides, for each segment a viewer adds, which peers it dials at
//! once and whether the DHT looks the segment up:
//!
//! - **Carried**: the listen addresses of the peers seen on a live connection within
//!   [`CarryConfig::fresh`], the most recently seen first, at most [`CarryConfig::max`].
//! - **Looked up**: every segment while fewer than [`CarryConfig::want`] peers are live; then
//!   only the stream's rendezvous segments, those whose number is a multiple of
//!   [`CarryConfig::every`] (about one every [`RENDEZVOUS`]). Every viewer looks up (and
//!   announces) the same segments, so their lookups meet: each viewer is found by the others
//!   once a rendezvous period, and a newcomer finds them all at the first rendezvous after it
//!   joins (until then its own lookups find the publisher and other newcomers).
//!
//! The clock is passed in; nothing here does I/O.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// About how often the whole audience looks a segment up on the DHT.
pub const RENDEZVOUS: Duration = Duration::from_secs(8);

/// Live peers under which a viewer looks up every segment.
pub const WANT: usize = 4;

/// Peers dialled at most when a segment is added (besides the publisher's seeder).
pub const MAX_CARRIED: usize = 32;

/// How long a peer is carried after its last live connection was seen.
pub const FRESH: Duration = Duration::from_secs(10);

/// What [`Carry`] is told to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarryConfig {
    /// Live peers under which every segment is looked up.
    pub want: usize,
    /// Peers carried at most.
    pub max: usize,
    /// How long a peer is carried after it was last seen live.
    pub fresh: Duration,
    /// Rendezvous segments are those whose number is a multiple of this (at least 1: 1 looks
    /// every segment up).
    pub every: u64,
}

impl CarryConfig {
    /// The defaults for a stream of `segment`-long segments: a rendezvous about every
    /// [`RENDEZVOUS`] (every segment once they are that long).
    pub fn for_segments(segment: Duration) -> Self {
        let every = if segment.is_zero() {
            1
        } else {
            RENDEZVOUS.as_nanos().div_ceil(segment.as_nanos()).max(1)
        };
        Self {
            want: WANT,
            max: MAX_CARRIED,
            fresh: FRESH,
            every: u64::try_from(every).unwrap_or(u64::MAX),
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

/// The peers a viewer has seen, and when (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Carry {
    config: CarryConfig,
    seen: HashMap<SocketAddr, Instant>,
}

impl Carry {
    /// A viewer that has seen no peer yet.
    pub fn new(config: CarryConfig) -> Self {
        Self {
            config,
            seen: HashMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> CarryConfig {
        self.config
    }

    /// The plan for segment `n`, added at `now`, when the peers listening at `live` have a live
    /// connection: they are seen now; peers not seen within [`CarryConfig::fresh`] are
    /// forgotten.
    pub fn plan(&mut self, n: u64, live: &[SocketAddr], now: Instant) -> CarryPlan {
        for &a in live {
            self.seen.insert(a, now);
        }
        let fresh = self.config.fresh;
        self.seen
            .retain(|_, &mut t| now.saturating_duration_since(t) <= fresh);
        let mut peers: Vec<(Instant, SocketAddr)> =
            self.seen.iter().map(|(&a, &t)| (t, a)).collect();
        // Newest first; the address breaks ties, so a plan does not depend on the map's order.
        peers.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        peers.truncate(self.config.max);
        // Bounded: the live list is, and the rest are forgotten past `fresh`; a flood of
        // addresses within `fresh` is cut to the ones carried.
        if self.seen.len() > self.config.max.saturating_mul(4) {
            let keep: std::collections::HashSet<SocketAddr> =
                peers.iter().map(|&(_, a)| a).collect();
            self.seen.retain(|a, _| keep.contains(a));
        }
        let mut distinct = live.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let lookup =
            distinct.len() < self.config.want || n.is_multiple_of(self.config.every.max(1));
        CarryPlan {
            peers: peers.into_iter().map(|(_, a)| a).collect(),
            lookup,
        }
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
    fn the_rendezvous_comes_about_every_eight_seconds_whatever_the_segment_length() {
        let every = |ms| CarryConfig::for_segments(Duration::from_millis(ms)).every;
        assert_eq!(every(2_000), 4);
        assert_eq!(every(1_000), 8);
        assert_eq!(every(3_000), 3, "rounded up: at most 9 s");
        assert_eq!(
            every(60_000),
            1,
            "one-minute segments: every one is looked up"
        );
        assert_eq!(every(8_000), 1);
        assert_eq!(every(0), 1, "no length given: every segment");
    }

    #[test]
    fn a_viewer_short_of_peers_looks_every_segment_up_and_one_with_enough_only_rendezvous() {
        let mut c = Carry::new(CarryConfig::for_segments(Duration::from_secs(2)));
        let t = Instant::now();
        // Alone, then with three peers: every segment.
        for n in 1..=6 {
            assert!(c.plan(n, &[], t).lookup, "segment {n}, no peer");
            assert!(
                c.plan(n, &addrs(0..3), t).lookup,
                "segment {n}, three peers"
            );
        }
        // Four live peers: segments 8 and 12 (multiples of 4) only.
        let looked: Vec<u64> = (7..=13)
            .filter(|&n| c.plan(n, &addrs(0..4), t).lookup)
            .collect();
        assert_eq!(looked, vec![8, 12]);
        // The same peer twice is one peer.
        let twice = [addr(0), addr(0), addr(1), addr(1), addr(2)];
        assert!(c.plan(9, &twice, t).lookup);
    }

    #[test]
    fn peers_are_carried_newest_first_until_they_go_stale() {
        let mut c = Carry::new(CarryConfig::for_segments(Duration::from_secs(2)));
        let t0 = Instant::now();
        let first = c.plan(1, &addrs(0..2), t0);
        assert_eq!(first.peers, addrs(0..2), "ties by address");
        // Peer 1 is gone, peer 2 is new: peer 2 first, peer 0 and 1 still carried.
        let t1 = t0 + Duration::from_secs(4);
        let second = c.plan(2, &[addr(2), addr(0)], t1);
        assert_eq!(second.peers, vec![addr(0), addr(2), addr(1)]);
        // Past `fresh` since it was last seen, peer 1 is forgotten; the others are live.
        let t2 = t0 + FRESH + Duration::from_millis(1);
        let third = c.plan(3, &[addr(2), addr(0)], t2);
        assert_eq!(third.peers, vec![addr(0), addr(2)]);
        // Nobody live for longer than `fresh`: nothing carried.
        let t3 = t2 + FRESH + Duration::from_millis(1);
        assert_eq!(c.plan(4, &[], t3).peers, Vec::<SocketAddr>::new());
    }

    #[test]
    fn at_most_max_peers_are_carried_and_the_memory_is_bounded() {
        let config = CarryConfig::for_segments(Duration::from_secs(2));
        let mut c = Carry::new(config);
        let t = Instant::now();
        for i in 0..20u16 {
            let batch = addrs(i * 50..i * 50 + 50);
            let plan = c.plan(
                u64::from(i),
                &batch,
                t + Duration::from_millis(u64::from(i)),
            );
            assert_eq!(plan.peers.len(), config.max);
            // The newest batch first.
            assert!(plan.peers.iter().all(|a| batch.contains(a)));
            assert!(c.seen.len() <= config.max * 4);
        }
    }
}
