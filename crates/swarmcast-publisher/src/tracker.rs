//! The embedded BitTorrent HTTP tracker (BEP 3, compact peers BEP 23, IPv6 peers BEP 7), sans-IO:
//! the HTTP layer hands it the raw query string, the caller's address and the time.
//!
//! It tracks only the torrents the publisher seeds (other info hashes get a `failure reason`), lists
//! the publisher itself as a seed of each, and forgets a peer that has not announced for three
//! intervals. The `ip` parameter is ignored: a peer is listed at the address it announced from, so
//! nobody can point a swarm at a third party.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_bytes::ByteBuf;

/// Peers returned when the client does not say how many it wants.
pub const DEFAULT_NUMWANT: usize = 50;
/// Most peers returned.
pub const MAX_NUMWANT: usize = 200;

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
}

/// The tracker's state.
#[derive(Debug)]
pub struct Tracker {
    interval_s: u64,
    min_interval_s: u64,
    swarms: HashMap<[u8; 20], Swarm>,
    counters: TrackerCounters,
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
        }
    }

    /// Starts tracking a torrent the publisher seeds from `publisher` (its peer address).
    pub fn add_torrent(&mut self, info_hash: [u8; 20], publisher: Option<SocketAddr>) {
        self.swarms.entry(info_hash).or_default().publisher = publisher;
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

    /// Answers a parsed announce.
    pub fn announce(&mut self, a: &Announce, now_ms: u64) -> Vec<u8> {
        self.expire(now_ms);
        let Some(swarm) = self.swarms.get_mut(&a.info_hash) else {
            self.counters.failures += 1;
            return failure(
                "unknown info_hash: this tracker serves only the stream's live segments",
            );
        };
        self.counters.announces += 1;
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
        let mut others: Vec<(&[u8; 20], &Peer)> = swarm
            .peers
            .iter()
            .filter(|(id, p)| **id != a.peer_id && p.addr != a.addr)
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
        let (interval, min_interval) = (self.interval_s, self.min_interval_s);
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
