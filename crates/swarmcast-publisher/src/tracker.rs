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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_bytes::ByteBuf;

/// Peers returned when the client does not say how many it wants.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers returned.
pub const MAX_NUMWANT: usize = 200;

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

/// How long a NAT check's verdict holds before the address's next announce re-checks it.
pub const NAT_CHECK_TTL: Duration = Duration::from_secs(600);
/// Most NAT checks in flight at once.
pub const NAT_CHECKS_IN_FLIGHT: usize = 128;
/// Most addresses whose reachability the tracker remembers.
pub const NAT_CHECK_ADDRS: usize = 16_384;

/// How the tracker checks that peers can be dialled before it lists them (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatCheck {
    /// How long a verdict holds, ms; the address's next announce after that re-checks it (the old
    /// verdict stands until the new one comes).
    pub ttl_ms: u64,
    /// A check with no verdict after this long, ms, is taken as lost: the address goes back to
    /// what it was before, and the next announce hands it out again. Longer than the connect
    /// timeout.
    pub lost_ms: u64,
    /// Most checks in flight at once; addresses beyond that wait for a later announce.
    pub max_in_flight: usize,
    /// Most addresses remembered; when full, the one heard from least recently (and not being
    /// checked) is forgotten.
    pub max_addrs: usize,
    /// Keep reachable peers' uplinks for the peers behind a NAT (see [`Tracker::announce`]):
    /// while at least as many live addresses failed the check as passed it, a reachable
    /// announcer is listed no other reachable peer.
    pub spare_reachable: bool,
}

impl NatCheck {
    /// The defaults, for checks that connect with `timeout`.
    pub fn for_timeout(timeout: Duration) -> Self {
        Self {
            ttl_ms: NAT_CHECK_TTL.as_millis() as u64,
            lost_ms: 2 * timeout.as_millis() as u64 + 10_000,
            max_in_flight: NAT_CHECKS_IN_FLIGHT,
            max_addrs: NAT_CHECK_ADDRS,
            spare_reachable: true,
        }
    }
}

impl Default for NatCheck {
    /// The defaults for a 2 s connect timeout.
    fn default() -> Self {
        Self::for_timeout(Duration::from_secs(2))
    }
}

/// What the tracker knows of whether a listed address accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Never checked (or not known to the tracker): not listed.
    Unchecked,
    /// A check is in flight: listed only if an earlier verdict (being renewed) said reachable.
    Checking,
    /// A connection succeeded: listed.
    Reachable,
    /// A connection was refused or timed out: never listed, still answered.
    Unreachable,
}

/// One address's reachability, as the tracker keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReachState {
    Unchecked,
    /// In flight since `since_ms`; `previous` is the verdict being renewed and when it was found.
    Checking {
        since_ms: u64,
        previous: Option<(bool, u64)>,
    },
    Known {
        reachable: bool,
        checked_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Reach {
    state: ReachState,
    /// The address's last announce.
    seen_ms: u64,
}

impl Reach {
    /// Failed its last check (and is not being found reachable since).
    fn unreachable(&self) -> bool {
        matches!(
            self.state,
            ReachState::Known {
                reachable: false,
                ..
            } | ReachState::Checking {
                previous: Some((false, _)),
                ..
            }
        )
    }

    fn listed(&self) -> bool {
        matches!(
            self.state,
            ReachState::Known {
                reachable: true,
                ..
            } | ReachState::Checking {
                previous: Some((true, _)),
                ..
            }
        )
    }
}

/// The NAT check's state: the reachability table and the checks to hand out.
#[derive(Debug)]
struct NatTable {
    config: NatCheck,
    addrs: HashMap<SocketAddr, Reach>,
    /// Entries in `Checking`.
    in_flight: usize,
    /// Checks not yet taken by [`Tracker::to_check`].
    pending: Vec<SocketAddr>,
}

impl NatTable {
    fn listed(&self, addr: &SocketAddr) -> bool {
        self.addrs.get(addr).is_some_and(Reach::listed)
    }

    /// Addresses heard from within `live_ms` before `now_ms` that are listed (reachable), and
    /// that failed their last check (unreachable).
    fn live_counts(&self, now_ms: u64, live_ms: u64) -> (usize, usize) {
        let (mut reachable, mut unreachable) = (0, 0);
        for r in self.addrs.values() {
            if now_ms.saturating_sub(r.seen_ms) >= live_ms {
                continue;
            }
            if r.listed() {
                reachable += 1;
            } else if r.unreachable() {
                unreachable += 1;
            }
        }
        (reachable, unreachable)
    }

    /// The punch partners of `me` for segment `number`: of the addresses heard from within
    /// `live_ms` before `now_ms` that failed their last check (`me` among them), the `degree`
    /// nearest `me` on a ring ordered by a hash of the segment and the address (half on each
    /// side), never one on `me`'s IP address. Every address computes its partners on the same
    /// ring, so the relation is symmetric while the live set is the same, which both ends of a
    /// pair need (each must dial the other); the ring is shuffled anew for each segment.
    fn punch_partners(
        &self,
        me: SocketAddr,
        number: u64,
        now_ms: u64,
        live_ms: u64,
        degree: usize,
    ) -> Vec<SocketAddr> {
        let mut ring: Vec<SocketAddr> = self
            .addrs
            .iter()
            .filter(|(addr, r)| {
                **addr == me || (r.unreachable() && now_ms.saturating_sub(r.seen_ms) < live_ms)
            })
            .map(|(addr, _)| *addr)
            .collect();
        ring.sort_by_key(|addr| (ring_hash(number, addr), *addr));
        let n = ring.len();
        let Some(at) = ring.iter().position(|a| *a == me) else {
            return Vec::new();
        };
        let offsets: Vec<usize> = if n.saturating_sub(1) <= degree {
            (1..n).collect()
        } else {
            (1..=degree.div_ceil(2))
                .flat_map(|k| [k, n - k])
                .take(degree)
                .collect()
        };
        let mut out: Vec<SocketAddr> = Vec::with_capacity(offsets.len());
        for k in offsets {
            let addr = ring[(at + k) % n];
            if addr.ip() != me.ip() && !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }

    /// Checks in flight for addresses other than `addr`.
    fn others_in_flight(&self, addr: &SocketAddr) -> usize {
        let own = self
            .addrs
            .get(addr)
            .is_some_and(|r| matches!(r.state, ReachState::Checking { .. }));
        self.in_flight - usize::from(own)
    }

    /// Makes room for one more address; false if every entry is being checked.
    fn make_room(&mut self) -> bool {
        if self.addrs.len() < self.config.max_addrs {
            return true;
        }
        let oldest = self
            .addrs
            .iter()
            .filter(|(_, r)| !matches!(r.state, ReachState::Checking { .. }))
            .min_by_key(|(addr, r)| (r.seen_ms, **addr))
            .map(|(addr, _)| *addr);
        oldest.is_some_and(|addr| self.addrs.remove(&addr).is_some())
    }

    /// An announce from `addr` at `now_ms`: starts a check if one is due and there is room.
    /// Returns true if a check was handed out.
    fn announced(&mut self, addr: SocketAddr, now_ms: u64) -> bool {
        if !self.addrs.contains_key(&addr) {
            if !self.make_room() {
                return false;
            }
            self.addrs.insert(
                addr,
                Reach {
                    state: ReachState::Unchecked,
                    seen_ms: now_ms,
                },
            );
        }
        let (ttl, room) = (
            self.config.ttl_ms,
            self.in_flight < self.config.max_in_flight,
        );
        let reach = self.addrs.get_mut(&addr).expect("inserted above");
        reach.seen_ms = now_ms;
        let previous = match reach.state {
            ReachState::Unchecked => None,
            ReachState::Known {
                reachable,
                checked_ms,
            } if now_ms.saturating_sub(checked_ms) >= ttl => Some((reachable, checked_ms)),
            ReachState::Known { .. } | ReachState::Checking { .. } => return false,
        };
        if !room {
            return false;
        }
        reach.state = ReachState::Checking {
            since_ms: now_ms,
            previous,
        };
        self.in_flight += 1;
        if !self.pending.contains(&addr) {
            self.pending.push(addr);
        }
        true
    }

    /// Records a verdict; false if the address is not known (forgotten meanwhile).
    fn verdict(&mut self, addr: SocketAddr, reachable: bool, now_ms: u64) -> bool {
        let Some(reach) = self.addrs.get_mut(&addr) else {
            return false;
        };
        if matches!(reach.state, ReachState::Checking { .. }) {
            self.in_flight -= 1;
        }
        reach.state = ReachState::Known {
            reachable,
            checked_ms: now_ms,
        };
        true
    }

    /// Gives up on lost checks, and forgets addresses not heard from for `keep_ms`.
    fn expire(&mut self, now_ms: u64, keep_ms: u64) {
        let lost_ms = self.config.lost_ms;
        let mut in_flight = 0;
        self.addrs.retain(|_, r| {
            if let ReachState::Checking { since_ms, previous } = r.state {
                if now_ms.saturating_sub(since_ms) >= lost_ms {
                    r.state = previous.map_or(ReachState::Unchecked, |(reachable, checked_ms)| {
                        ReachState::Known {
                            reachable,
                            checked_ms,
                        }
                    });
                }
            }
            let keep = now_ms.saturating_sub(r.seen_ms) < keep_ms;
            if keep && matches!(r.state, ReachState::Checking { .. }) {
                in_flight += 1;
            }
            keep
        });
        self.in_flight = in_flight;
    }
}

/// An announce that could not be understood, with the reason sent back as `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnnounceError(pub String);

/// The `event` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// The first announce.
    Started,
    /// The download finished.
    Completed,
    /// The peer is leaving.
    Stopped,
}

/// A parsed announce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The peer's id.
    pub peer_id: [u8; 20],
    /// Where the peer listens (the announcing address with `port`).
    pub addr: SocketAddr,
    /// Bytes the peer still needs; 0 means seed.
    pub left: u64,
    /// The event, if any.
    pub event: Option<AnnounceEvent>,
    /// Wants BEP 23 compact peer lists.
    pub compact: bool,
    /// Peers wanted.
    pub numwant: usize,
}

fn exact20(name: &str, bytes: Vec<u8>) -> Result<[u8; 20], AnnounceError> {
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| AnnounceError(format!("{name} must be exactly 20 bytes, found {len}")))
}

/// Parses an announce's raw query string, percent-decoding values to bytes (info hashes and peer
/// ids are binary). `remote` is the address the request came from.
pub fn parse_announce(query: &str, remote: IpAddr) -> Result<Announce, AnnounceError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut left = None;
    let mut event = None;
    let mut compact = false;
    let mut numwant = DEFAULT_NUMWANT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bytes: Vec<u8> = percent_decode_str(value).collect();
        let text = || String::from_utf8_lossy(&bytes).into_owned();
        let number = |name: &str| {
            text().parse::<u64>().map_err(|_| {
                AnnounceError(format!(
                    "{name} must be a non-negative integer, found {:?}",
                    text()
                ))
            })
        };
        match key {
            "info_hash" => info_hash = Some(exact20("info_hash", bytes.clone())?),
            "peer_id" => peer_id = Some(exact20("peer_id", bytes.clone())?),
            "port" => {
                port = Some(
                    text()
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| {
                            AnnounceError(format!("port must be 1-65535, found {:?}", text()))
                        })?,
                )
            }
            "left" => left = Some(number("left")?),
            "compact" => compact = text() == "1",
            "numwant" => numwant = (number("numwant")? as usize).min(MAX_NUMWANT),
            "event" => {
                event = match text().as_str() {
                    "started" => Some(AnnounceEvent::Started),
                    "completed" => Some(AnnounceEvent::Completed),
                    "stopped" => Some(AnnounceEvent::Stopped),
                    "" | "empty" => None,
                    other => return Err(AnnounceError(format!("unknown event {other:?}"))),
                }
            }
            _ => {}
        }
    }
    Ok(Announce {
        info_hash: info_hash.ok_or_else(|| AnnounceError("missing info_hash".into()))?,
        peer_id: peer_id.ok_or_else(|| AnnounceError("missing peer_id".into()))?,
        addr: SocketAddr::new(
            remote,
            port.ok_or_else(|| AnnounceError("missing port".into()))?,
        ),
        left: left.unwrap_or(0),
        event,
        compact,
        numwant,
    })
}

#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    seed: bool,
    last_ms: u64,
}

#[derive(Debug, Default)]
struct Swarm {
    /// The publisher's own listening address: always listed, always a seed.
    publisher: Option<SocketAddr>,
    /// The segment's number, when the torrent is a segment's: it picks the punch port.
    number: Option<u64>,
    peers: HashMap<[u8; 20], Peer>,
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

#[derive(Serialize)]
struct Failure<'a> {
    #[serde(rename = "failure reason")]
    reason: &'a str,
}

#[derive(Serialize)]
struct ListPeer {
    ip: String,
    #[serde(rename = "peer id")]
    peer_id: ByteBuf,
    port: u16,
}

#[derive(Serialize)]
struct Response<P: Serialize> {
    complete: u64,
    incomplete: u64,
    interval: u64,
    #[serde(rename = "min interval")]
    min_interval: u64,
    peers: P,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers6: Option<ByteBuf>,
}

/// A position on segment `number`'s punch ring (splitmix64 of the number and the address).
fn ring_hash(number: u64, addr: &SocketAddr) -> u64 {
    let a = match addr.ip() {
        IpAddr::V4(ip) => u64::from(u32::from(ip)),
        IpAddr::V6(ip) => {
            let v = u128::from(ip);
            (v as u64) ^ ((v >> 64) as u64)
        }
    };
    let mut z = number
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(a << 16 | u64::from(addr.port()));
    for _ in 0..2 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

/// Segment `number`'s port in `ports` (not empty): the first plus the number modulo the length.
fn port_of(ports: &std::ops::RangeInclusive<u16>, number: u64) -> u16 {
    let len = u64::from(ports.end() - ports.start()) + 1;
    ports.start() + (number % len) as u16
}

/// Encodes a `failure reason` response.
pub fn failure(reason: &str) -> Vec<u8> {
    serde_bencode::to_bytes(&Failure { reason }).expect("a failure always encodes")
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
        if a.event != Some(AnnounceEvent::Stopped) {
            if let Some(nat) = &mut self.nat {
                if nat.announced(a.addr, now_ms) {
                    self.counters.nat_checks += 1;
                }
            }
        }
        if a.event == Some(AnnounceEvent::Stopped) {
            swarm.peers.remove(&a.peer_id);
        } else {
            swarm.peers.insert(
                a.peer_id,
                Peer {
                    addr: a.addr,
                    seed: a.left == 0,
                    last_ms: now_ms,
                },
            );
        }
        let seeds = swarm.peers.values().filter(|p| p.seed).count() as u64
            + u64::from(swarm.publisher.is_some());
        let leechers = swarm.peers.values().filter(|p| !p.seed).count() as u64;
        // The publisher first (it has every piece), then the others, most recently heard first.
        // With the NAT check on, only peers that passed it; and none at all to a reachable
        // announcer while NATed peers are at least as many as reachable ones (`spare_reachable`).
        let nat = self.nat.as_ref();
        // Live: heard from within three intervals, as long as a swarm keeps a peer.
        let live_ms = 3 * self.interval_s * 1000;
        let spare = nat.is_some_and(|n| {
            n.config.spare_reachable && n.listed(&a.addr) && {
                let (reachable, unreachable) = n.live_counts(now_ms, live_ms);
                unreachable > 0 && unreachable >= reachable
            }
        });
        if spare {
            self.counters.spared += 1;
        }
        let mut others: Vec<(&[u8; 20], &Peer)> = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && p.addr != a.addr)
            .filter(|(_, p)| nat.is_none_or(|n| n.listed(&p.addr)) && !spare)
            .collect();
        others.sort_by(|x, y| y.1.last_ms.cmp(&x.1.last_ms).then(x.1.addr.cmp(&y.1.addr)));
        let listed: Vec<([u8; 20], SocketAddr)> = swarm
            .publisher
            .filter(|p| *p != a.addr)
            .map(|p| ([0u8; 20], p))
            .into_iter()
            .chain(others.into_iter().map(|(id, p)| (*id, p.addr)))
            .take(a.numwant)
            .collect();
        // Hole punching: an announcer behind NAT, and the others behind NAT, at the punch port.
        let punch = swarm
            .number
            .zip(self.punch.as_ref())
            .map(|(n, ports)| (n, port_of(ports, n)));
        let punched: Vec<([u8; 20], SocketAddr)> = match (nat, punch) {
            (Some(n), Some((number, port)))
                if a.event != Some(AnnounceEvent::Stopped)
                    && n.addrs.get(&a.addr).is_some_and(Reach::unreachable) =>
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
        let listed_others =
            listed.len() - usize::from(swarm.publisher.is_some_and(|p| p != a.addr));
        let catch_up = a.left > 0
            && a.event != Some(AnnounceEvent::Stopped)
            && !spare
            && nat.is_some_and(|n| {
                !n.listed(&a.addr) && listed_others < a.numwant.saturating_sub(1) && {
                    let (reachable, _) = n.live_counts(now_ms, live_ms);
                    listed_others < reachable || n.others_in_flight(&a.addr) > 0
                }
            });
        if catch_up {
            self.counters.caught_up += 1;
        }
        let listed: Vec<([u8; 20], SocketAddr)> = listed.into_iter().chain(punched).collect();
        let interval = self.interval_s;
        let min_interval = if catch_up {
            CATCH_UP_MIN_INTERVAL_S.min(self.min_interval_s)
        } else {
            self.min_interval_s
        };
        if a.compact {
            let mut v4 = Vec::new();
            let mut v6 = Vec::new();
            for (_, addr) in &listed {
                match addr {
                    SocketAddr::V4(s) => {
                        v4.extend_from_slice(&s.ip().octets());
                        v4.extend_from_slice(&s.port().to_be_bytes());
                    }
                    SocketAddr::V6(s) => {
                        v6.extend_from_slice(&s.ip().octets());
                        v6.extend_from_slice(&s.port().to_be_bytes());
                    }
                }
            }
            let peers6 = (!v6.is_empty()).then(|| ByteBuf::from(v6));
            serde_bencode::to_bytes(&Response {
                complete: seeds,
                incomplete: leechers,
                interval,
                min_interval,
                peers: ByteBuf::from(v4),
                peers6,
            })
        } else {
            let peers: Vec<ListPeer> = listed
                .iter()
                .map(|(id, addr)| ListPeer {
                    ip: addr.ip().to_string(),
                    peer_id: ByteBuf::from(id.to_vec()),
                    port: addr.port(),
                })
                .collect();
            serde_bencode::to_bytes(&Response {
                complete: seeds,
                incomplete: leechers,
                interval,
                min_interval,
                peers,
                peers6: None,
            })
        }
        .expect("a tracker response always encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{percent_encode, NON_ALPHANUMERIC};

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
                .map(|c| {
                    SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]])))
                })
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
        let Some(serde_bencode::value::Value::List(peers)) =
            dict_get(&decode(&list), "peers").cloned()
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
        let Some(serde_bencode::value::Value::List(peers)) =
            dict_get(&decode(&list), "peers").cloned()
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

    fn announce_from(
        t: &mut Tracker,
        ih: &[u8; 20],
        id: u8,
        from: SocketAddr,
        now_ms: u64,
        extra: &str,
    ) -> Vec<SocketAddr> {
        compact_peers(&t.handle(
            &query(
                ih,
                &[id; 20],
                from.port(),
                &format!("&left=10&compact=1{extra}"),
            ),
            from.ip(),
            now_ms,
        ))
    }

    /// `v` with its elements after the first `keep` sorted (the punched peers come in ring order).
    fn tail_sorted(mut v: Vec<SocketAddr>, keep: usize) -> Vec<SocketAddr> {
        let keep = keep.min(v.len());
        v[keep..].sort();
        v
    }

    #[test]
    fn peers_behind_nat_are_listed_each_other_at_the_segments_punch_port() {
        let (a, b) = ([21u8; 20], [22u8; 20]);
        let publisher: SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let mut t = Tracker::new(10, 1)
            .with_nat_check(NatCheck::default())
            .with_punch(Some(52000..=52063));
        t.add_segment(a, Some(publisher), 5);
        t.add_segment(b, Some(publisher), 70);
        let r: SocketAddr = "10.0.0.1:5001".parse().unwrap();
        let n1: SocketAddr = "10.0.0.2:5002".parse().unwrap();
        let n2: SocketAddr = "10.0.0.3:5003".parse().unwrap();
        let n3: SocketAddr = "10.0.0.4:5004".parse().unwrap();
        // n3 announces only the other segment's torrent: it is live all the same.
        for (id, peer, ih, at) in [(1, r, a, 0), (2, n1, a, 10), (3, n2, a, 20), (4, n3, b, 30)] {
            announce_from(&mut t, &ih, id, peer, at, "");
        }
        assert_eq!(t.to_check(), vec![r, n1, n2, n3]);
        t.set_reachable(r, true, 40);
        for n in [n1, n2, n3] {
            t.set_reachable(n, false, 40);
        }
        let at = |peer: SocketAddr, port: u16| SocketAddr::new(peer.ip(), port);
        // Segment 5: port 52005, after the publisher and the reachable peers, never the announcer.
        assert_eq!(
            tail_sorted(announce_from(&mut t, &a, 2, n1, 50, ""), 2),
            vec![publisher, r, at(n2, 52005), at(n3, 52005)]
        );
        assert_eq!(
            tail_sorted(announce_from(&mut t, &a, 3, n2, 60, ""), 2),
            vec![publisher, r, at(n1, 52005), at(n3, 52005)]
        );
        // Segment 70: 52000 + 70 mod 64 (r announced only segment 5).
        assert_eq!(
            tail_sorted(announce_from(&mut t, &b, 4, n3, 70, ""), 1),
            vec![publisher, at(n1, 52006), at(n2, 52006)]
        );
        assert_eq!(t.punch_port(70), Some(52006));
        // A reachable announcer is never listed the peers behind NAT (here it is spared).
        assert_eq!(announce_from(&mut t, &a, 1, r, 80, ""), vec![publisher]);
        // numwant bounds the whole answer; a stopped announce gets nobody punched.
        let three = announce_from(&mut t, &a, 2, n1, 90, "&numwant=3");
        assert_eq!(three.len(), 3);
        assert!(
            [at(n2, 52005), at(n3, 52005)].contains(&three[2]),
            "{three:?}"
        );
        assert!(!announce_from(&mut t, &a, 2, n1, 95, "&event=stopped")
            .iter()
            .any(|p| p.port() == 52005));
        let c = t.counters();
        assert_eq!((c.punched, c.punch_listed), (4, 7));
        // A peer silent for three intervals (30 s) is no longer listed (n1, last heard at 90 ms;
        // r left segment 5's swarm too).
        announce_from(&mut t, &b, 4, n3, 29_000, "");
        assert_eq!(
            announce_from(&mut t, &a, 3, n2, 30_100, ""),
            vec![publisher, at(n3, 52005)]
        );
        // A torrent with no segment number is never punched.
        let c = [23u8; 20];
        t.add_torrent(c, Some(publisher));
        assert_eq!(
            announce_from(&mut t, &c, 3, n2, 30_110, ""),
            vec![publisher]
        );
    }

    #[test]
    fn each_peer_behind_nat_gets_a_few_partners_who_get_it_back_and_they_change_per_segment() {
        let publisher: SocketAddr = "10.0.0.250:4000".parse().unwrap();
        let mut t = Tracker::new(10, 1)
            .with_nat_check(NatCheck::default())
            .with_punch(Some(52000..=52063));
        let peers: Vec<SocketAddr> = (1..=30u8)
            .map(|i| SocketAddr::from(([10, 0, 1, i], 5000)))
            .collect();
        let segs: Vec<[u8; 20]> = (0..3u8).map(|n| [100 + n; 20]).collect();
        for (n, ih) in segs.iter().enumerate() {
            t.add_segment(*ih, Some(publisher), n as u64);
        }
        for (i, p) in peers.iter().enumerate() {
            announce_from(&mut t, &segs[0], i as u8, *p, 0, "");
        }
        t.to_check();
        for p in &peers {
            t.set_reachable(*p, false, 10);
        }
        let mut per_seg = Vec::new();
        for (n, ih) in segs.iter().enumerate() {
            let port = 52000 + n as u16;
            let mut partners = std::collections::BTreeMap::new();
            for (i, p) in peers.iter().enumerate() {
                let listed = announce_from(&mut t, ih, i as u8, *p, 20 + n as u64, "");
                assert_eq!(listed[0], publisher);
                let mine: std::collections::BTreeSet<std::net::IpAddr> = listed[1..]
                    .iter()
                    .map(|a| {
                        assert_eq!(a.port(), port);
                        a.ip()
                    })
                    .collect();
                assert_eq!(mine.len(), PUNCH_DEGREE, "{listed:?}");
                assert!(!mine.contains(&p.ip()));
                partners.insert(p.ip(), mine);
            }
            // Symmetric: whoever is listed to me is listed me.
            for (me, mine) in &partners {
                for other in mine {
                    assert!(partners[other].contains(me), "{me} lists {other}, not back");
                }
            }
            per_seg.push(partners);
        }
        assert_ne!(
            per_seg[0], per_seg[1],
            "the same partners for every segment"
        );
        assert_ne!(per_seg[1], per_seg[2]);
    }

    #[test]
    fn punching_needs_the_nat_check() {
        let ih = [24u8; 20];
        let mut t = Tracker::new(10, 1).with_punch(Some(52000..=52063));
        t.add_segment(ih, None, 1);
        let n1: SocketAddr = "10.0.0.2:5002".parse().unwrap();
        let n2: SocketAddr = "10.0.0.3:5003".parse().unwrap();
        announce_from(&mut t, &ih, 1, n1, 0, "");
        // Without the check nobody is known to be behind NAT: listed as announced, not punched.
        assert_eq!(announce_from(&mut t, &ih, 2, n2, 10, ""), vec![n1]);
        assert_eq!(t.counters().punched, 0);
        // An empty range is off.
        let (first, last) = (52001, 52000);
        let t = Tracker::new(10, 1).with_punch(Some(first..=last));
        assert_eq!(t.punch_port(3), None);
    }

    #[test]
    fn with_the_nat_check_off_every_peer_is_listed_and_nothing_is_checked() {
        let ih = [15u8; 20];
        let mut off = Tracker::new(10, 1);
        off.add_torrent(ih, Some(addr(4000)));
        let mut on = nat_tracker(10, NatCheck::default(), ih);
        assert_eq!(off.nat_check(), None);
        assert_eq!(on.nat_check(), Some(NatCheck::default()));
        for (now, (id, port)) in [(1, 5001), (2, 5002), (3, 5003)].into_iter().enumerate() {
            let q = query(&ih, &[id; 20], port, "&left=10&compact=1");
            off.handle(&q, LOCAL, now as u64);
            on.handle(&q, LOCAL, now as u64);
        }
        assert!(off.to_check().is_empty());
        assert_eq!(off.reachability(&addr(5001)), Reachability::Unchecked);
        for a in on.to_check() {
            on.set_reachable(a, true, 10);
        }
        // Once every peer passed, the answers are byte for byte those of the tracker without it.
        for q in [
            query(&ih, &[1; 20], 5001, "&left=10&compact=1"),
            query(&ih, &[2; 20], 5002, "&left=0"),
        ] {
            assert_eq!(off.handle(&q, LOCAL, 20), on.handle(&q, LOCAL, 20));
        }
        // Without it, a new peer is listed from its first announce.
        off.handle(&query(&ih, &[4; 20], 5004, "&compact=1"), LOCAL, 30);
        assert_eq!(
            compact_peers(&off.handle(&query(&ih, &[5; 20], 5005, "&compact=1"), LOCAL, 30)),
            vec![addr(4000), addr(5004), addr(5001), addr(5002), addr(5003)]
        );
        let c = off.counters();
        assert_eq!((c.nat_checks, c.nat_unreachable), (0, 0));
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
}
