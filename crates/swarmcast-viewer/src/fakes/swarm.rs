//! The fake swarm: each segment arrives as planned, on the virtual clock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmcast_swarm::{PeerBytes, SwarmError, TorrentStats};
use tokio::time::Instant;

use super::{
    lock, ms_since, number, Stream, BAD_PEER, OTHER_PEER, PARTIAL, PIECE, PUBLISHER, SIZE, UPLOADED,
};
use crate::io::SegmentSwarm;

/// How the fake swarm delivers a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// A first peer `peer_ms` after the add, the first piece halfway to `done_ms`, complete
    /// at `done_ms`: half of it from the publisher, half from another viewer.
    Deliver {
        /// First peer, ms after the add.
        peer_ms: u64,
        /// Complete, ms after the add.
        done_ms: u64,
    },
    /// A peer at once, [`PARTIAL`] bytes from the publisher, never complete.
    Never,
    /// The add fails.
    AddFails,
}

/// The plan of a segment no plan was given for.
pub(crate) const ON_TIME: Plan = Plan::Deliver {
    peer_ms: 20,
    done_ms: 100,
};

/// What the viewer asked of the fake swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// Download a segment.
    Download(u64),
    /// Seed a segment fetched over HTTP.
    Seed(u64),
    /// Forget a segment's torrent.
    Forget(u64),
    /// Stop the session.
    Shutdown,
}

/// A torrent of the fake swarm: an index into its torrents.
#[derive(Clone, Debug)]
pub(crate) struct FakeTorrent(usize);

struct TorrentState {
    n: u64,
    added: Instant,
    /// `None`: seeded (complete from the start).
    plan: Option<Plan>,
}

#[derive(Default)]
struct SwarmState {
    data: HashMap<u64, Vec<u8>>,
    plans: HashMap<u64, Plan>,
    /// Segments whose swarm had a peer that sent a bad piece ([`FakeSwarm::bad_peer`]).
    bad: std::collections::HashSet<u64>,
    torrents: Vec<TorrentState>,
    calls: Vec<(u64, Call)>,
}

/// A swarm whose segments arrive as planned, on the virtual clock.
pub(crate) struct FakeSwarm {
    origin: Instant,
    state: Mutex<SwarmState>,
}

impl FakeSwarm {
    /// A swarm holding `stream`'s segments; times are ms after `origin`.
    pub(crate) fn new(stream: &Stream, origin: Instant) -> Arc<Self> {
        let data = (0..stream.len())
            .map(|n| (n, stream.data(n).to_vec()))
            .collect();
        Arc::new(Self {
            origin,
            state: Mutex::new(SwarmState {
                data,
                ..SwarmState::default()
            }),
        })
    }

    /// How segment `n` will be delivered (default: [`ON_TIME`]).
    pub(crate) fn plan(&self, n: u64, plan: Plan) {
        lock(&self.state).plans.insert(n, plan);
    }

    /// Segment `n`'s swarm has a peer, [`BAD_PEER`], that sent one piece failing its hash
    /// check, and was then refused twice.
    pub(crate) fn bad_peer(&self, n: u64) {
        lock(&self.state).bad.insert(n);
    }

    /// What was asked, with the virtual time (ms).
    pub(crate) fn calls(&self) -> Vec<(u64, Call)> {
        lock(&self.state).calls.clone()
    }

    fn log(&self, call: Call) {
        lock(&self.state).calls.push((ms_since(self.origin), call));
    }
}

impl SegmentSwarm for FakeSwarm {
    type Torrent = FakeTorrent;

    async fn download(
        &self,
        _torrent: &[u8],
        name: &str,
        folder: &Path,
        _how: swarmcast_swarm::Download,
    ) -> Result<FakeTorrent, SwarmError> {
        let n = number(name);
        self.log(Call::Download(n));
        let (plan, data, id) = {
            let mut s = lock(&self.state);
            let plan = s.plans.get(&n).copied().unwrap_or(ON_TIME);
            let data = s.data[&n].clone();
            s.torrents.push(TorrentState {
                n,
                added: Instant::now(),
                plan: Some(plan),
            });
            (plan, data, s.torrents.len() - 1)
        };
        match plan {
            Plan::AddFails => Err(SwarmError::Add {
                name: name.into(),
                reason: "planned".into(),
            }),
            // The file is there for when the swarm reports it complete.
            Plan::Deliver { .. } => {
                tokio::fs::write(folder.join(name), data)
                    .await
                    .expect("the test's data directory is writable");
                Ok(FakeTorrent(id))
            }
            Plan::Never => Ok(FakeTorrent(id)),
        }
    }

    async fn seed(
        &self,
        _torrent: &[u8],
        name: &str,
        folder: &Path,
        timeout: Duration,
    ) -> Result<FakeTorrent, SwarmError> {
        let n = number(name);
        self.log(Call::Seed(n));
        // librqbit re-checks the file: it must be in place.
        if !folder.join(name).is_file() {
            return Err(SwarmError::Timeout {
                name: name.into(),
                what: "seeding",
                waited: timeout,
            });
        }
        let mut s = lock(&self.state);
        s.torrents.push(TorrentState {
            n,
            added: Instant::now(),
            plan: None,
        });
        Ok(FakeTorrent(s.torrents.len() - 1))
    }

    /// The fake has no DHT: nothing found.
    async fn dht_lookup(
        &self,
        _info_hash: [u8; 20],
        _within: Duration,
        _max: usize,
        _on_peer: impl FnMut(std::net::SocketAddr) + Send,
    ) -> usize {
        0
    }

    fn add_peers(&self, _t: &FakeTorrent, _peers: &[std::net::SocketAddr]) -> usize {
        0
    }

    fn stats(&self, t: &FakeTorrent) -> TorrentStats {
        let s = lock(&self.state);
        let t = &s.torrents[t.0];
        let pieces = SIZE.div_ceil(PIECE);
        let complete = TorrentStats {
            uploaded: UPLOADED,
            downloaded: SIZE,
            fetched: SIZE,
            pieces,
            live_peers: 1,
            finished: true,
            refused_banned: if s.bad.contains(&t.n) { 2 } else { 0 },
        };
        match t.plan {
            None => complete,
            Some(Plan::Deliver { done_ms, .. }) if ms_since(t.added) >= done_ms => complete,
            Some(Plan::Deliver { peer_ms, done_ms }) => {
                let elapsed = ms_since(t.added);
                TorrentStats {
                    live_peers: u64::from(elapsed >= peer_ms),
                    pieces: u64::from(elapsed >= (peer_ms + done_ms) / 2),
                    ..TorrentStats::default()
                }
            }
            Some(Plan::Never) => TorrentStats {
                live_peers: 1,
                fetched: PARTIAL,
                ..TorrentStats::default()
            },
            Some(Plan::AddFails) => TorrentStats::default(),
        }
    }

    fn peer_bytes(&self, t: &FakeTorrent) -> Vec<PeerBytes> {
        let s = lock(&self.state);
        let t = &s.torrents[t.0];
        let publisher = |fetched| PeerBytes {
            addr: PUBLISHER.into(),
            fetched,
            connection_attempts: 1,
            ..PeerBytes::default()
        };
        match t.plan {
            Some(Plan::Deliver { done_ms, .. }) if ms_since(t.added) >= done_ms => {
                let mut peers = vec![
                    publisher(SIZE / 2),
                    PeerBytes {
                        addr: OTHER_PEER.into(),
                        fetched: SIZE - SIZE / 2,
                        connection_attempts: 2,
                        errors: 1,
                        failed_dials: 1,
                        ..PeerBytes::default()
                    },
                ];
                if s.bad.contains(&t.n) {
                    peers.push(PeerBytes {
                        addr: BAD_PEER.into(),
                        errors: 1,
                        hash_failures: 1,
                        discarded_bytes: PIECE,
                        ..PeerBytes::default()
                    });
                }
                peers
            }
            Some(Plan::Never) => vec![publisher(PARTIAL)],
            _ => vec![],
        }
    }

    async fn forget(&self, t: &FakeTorrent) {
        let n = lock(&self.state).torrents[t.0].n;
        self.log(Call::Forget(n));
    }

    async fn shutdown(&self) {
        self.log(Call::Shutdown);
    }
}
