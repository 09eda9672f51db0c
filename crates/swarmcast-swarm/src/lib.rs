//! swarmcast's one contact with librqbit, and the publisher's seeders.
//!
//! The publisher seeds with the [`wire`] seeder by default: swarmcast's own seeder on librqbit's
//! wire-protocol crate (`librqbit-peer-protocol`), with a sans-IO super-seeding policy; a librqbit
//! session ([`Swarm`]) is the other choice (`publish --seeder librqbit`), and what every viewer
//! runs. [`seeder::Seeder`] is the publisher's handle on either.
//!
//! [`Swarm`] is a librqbit session configured for minute swarming: a TCP listener on a given
//! address (its announce port set, so trackers learn the real port), no DHT, no local service
//! discovery, no persistence, and a peer id we know (so our tracker can list us by it).
//! [`Swarm::seed`] adds a segment already on disk and waits until librqbit reports it complete;
//! [`Swarm::download`] adds one to fetch; [`Swarm::stats`] turns librqbit's per-torrent stats into
//! ours; [`Swarm::forget`] drops a torrent and keeps its file.
//!
//! librqbit facts this relies on (checked against 9.1.0's source; docs/librqbit.md):
//! seeding an existing file needs `overwrite: true` and re-hashes it; `initial_peers` connects
//! directly; `delete(id, false)` keeps the file; polling `stats().finished` is safer than
//! `wait_until_completed`.

pub mod exchange;
pub mod ratelimit;
pub mod seeder;
pub mod tweaks;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use librqbit::super_seed::SuperSeedOptions;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListenerOptions, ManagedTorrent, Session,
    SessionOptions, TorrentStatsState,
};
use tokio::time::Instant;

/// How often torrent stats are polled while waiting for a state change.
pub const POLL: Duration = Duration::from_millis(5);

/// A super-seeding reveal delay that means never (`publish --super-seed-reveal never`): a year,
/// far longer than a segment is seeded (its window and grace period), and under the longest
/// sleep tokio's timer takes (about 2.2 years).
pub const REVEAL_NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// A handler of the extension, for [`SwarmConfig::extension`].
#[derive(Clone)]
pub struct ExtensionSlot(pub Arc<dyn librqbit::extension::ExtensionHandler>);

impl std::fmt::Debug for ExtensionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtensionSlot")
    }
}

/// Errors from the swarm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The session could not start (typically: the listen port is in use).
    #[error("cannot start the BitTorrent session listening on {addr}: {reason}")]
    Start {
        /// The listen address.
        addr: SocketAddr,
        /// librqbit's error, with its causes.
        reason: String,
    },
    /// librqbit refused a torrent.
    #[error("cannot add {name} to the BitTorrent session: {reason}")]
    Add {
        /// The segment's name.
        name: String,
        /// librqbit's error, with its causes.
        reason: String,
    },
    /// A torrent went into librqbit's error state.
    #[error("{name}: the BitTorrent session reports an error: {reason}")]
    Torrent {
        /// The segment's name.
        name: String,
        /// librqbit's error.
        reason: String,
    },
    /// The wire seeder failed (`publish --seeder wire`).
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// A torrent did not reach the wanted state in time.
    #[error("{name}: not {what} after {waited:?}")]
    Timeout {
        /// The segment's name.
        name: String,
        /// The state waited for.
        what: &'static str,
        /// How long.
        waited: Duration,
    },
}

/// How to run the session.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// Where librqbit puts torrents that are not given a folder.
    pub default_dir: PathBuf,
    /// The peer listener's address (port 0: any free port).
    pub listen: SocketAddr,
    /// Upload limit in bytes per second (librqbit cannot go under one 16 KiB chunk per second).
    pub upload_limit: Option<u32>,
    /// Download limit in bytes per second.
    pub download_limit: Option<u32>,
    /// The session announces its torrents to their trackers (and dials the peers they return).
    /// The publisher turns this off: a viewer cannot tell a connection the publisher dialled from
    /// another viewer's (it sees an ephemeral port, not the listener the manifest names), and
    /// nobody needs the announce, as the embedded tracker lists the publisher and the manifest
    /// names it. librqbit reads only the session-level `disable_trackers` (the per-torrent option
    /// is ignored in 9.1.0). It still dials peers it learns by PEX (it has no switch for that):
    /// the publisher counts what it sends on such connections (`uploaded.dialled_bytes`).
    pub announce: bool,
    /// Super-seed the torrents this session seeds (librqbit patch 0007, docs/librqbit.md): offer
    /// each viewer a piece nobody has yet, the next one when it has it, and reveal every piece
    /// after this long. `None`: plain seeding.
    pub super_seed: Option<Duration>,
    /// Most peers connected at once per torrent, dialled and accepted together (librqbit's
    /// `peer_limit`); `None`: librqbit's default, 128. Every connection of a segment's swarm
    /// costs its handshakes and a Have per piece each way (`watch --peer-limit`).
    pub peer_limit: Option<usize>,
    /// TCP hole punching (librqbit patch 0014, docs/librqbit.md): a peer listed at a port in this
    /// range is dialled from that same local port. The tracker lists viewers behind NAT to each
    /// other at a port of this range, the same for both ends of a pair, so that each one's SYN
    /// opens its own NAT for the other's (`watch --punch-ports`). `None`: every dial from an
    /// ephemeral port.
    pub punch_ports: Option<std::ops::RangeInclusive<u16>>,
    /// The handler of swarmcast's BEP 10 extension (librqbit patch 0016): manifests carried by
    /// the swarm ([`exchange`]). `None`: the extension is not announced.
    pub extension: Option<ExtensionSlot>,
    /// Find peers on the mainline DHT (BEP 5) through these bootstrap nodes (`host:port`; empty:
    /// the public DHT's routers), and announce every torrent there. `None`: no DHT (peers from
    /// trackers and the manifest).
    pub dht_bootstrap: Option<Vec<String>>,
}

/// How a segment is downloaded ([`Swarm::download_with`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Download {
    /// Peers dialled at once (the publisher's seeder, peers carried from earlier segments).
    pub initial_peers: Vec<SocketAddr>,
    /// Trackers announced to, besides the torrent's own.
    pub trackers: Vec<String>,
    /// Under the session's upload limit, the uploads of the ranked torrent with the lowest rank
    /// go first (an unranked torrent's uploads wait for the limit as upstream's do). `watch
    /// --urgent-first` ranks each segment by its number, so the segment that plays next is
    /// served before the ones after it (the patch series' `urgent`, docs/librqbit.md).
    pub upload_rank: Option<u64>,
    /// The session's DHT neither looks the torrent's peers up nor announces it (librqbit's
    /// `AddTorrentOptions::disable_dht`, patch 0023): for a segment whose peers are
    /// carried from the segments before it.
    pub skip_dht: bool,
    /// The first wait before a failed peer is dialled again, 6 times longer at each failure
    /// (librqbit's `AddTorrentOptions::reconnect_first_wait`, patch 0024; None: librqbit's 10 s).
    pub reconnect_first_wait: Option<Duration>,
}

/// A torrent in the session.
#[derive(Clone)]
pub struct Torrent {
    handle: Arc<ManagedTorrent>,
    name: String,
}

impl std::fmt::Debug for Torrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Torrent({}, id {})", self.name, self.handle.id())
    }
}

/// One torrent's figures, from librqbit's stats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TorrentStats {
    /// Payload bytes uploaded to peers (librqbit counts chunks sent).
    pub uploaded: u64,
    /// Payload bytes downloaded and verified.
    pub downloaded: u64,
    /// Payload bytes received, verified or not (includes duplicates and failed pieces).
    pub fetched: u64,
    /// Pieces verified.
    pub pieces: u64,
    /// Peers connected now.
    pub live_peers: u64,
    /// Complete.
    pub finished: bool,
    /// Connections refused because their address was banned from the torrent (it sent a piece
    /// that failed its hash check): dials not made and incoming connections dropped (librqbit
    /// patch 0015).
    pub refused_banned: u64,
}

/// Bytes exchanged with one peer of one torrent (librqbit's per-peer counters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerBytes {
    /// The peer's address, as librqbit prints it.
    pub addr: String,
    /// Payload bytes received from it (verified or not).
    pub fetched: u64,
    /// Payload bytes sent to it.
    pub uploaded: u64,
    /// Outgoing connection attempts.
    pub connection_attempts: u64,
    /// Outgoing connections made (this session dialled the peer).
    pub dialled: u64,
    /// Connections that ended with an error: failed dials, and connections that broke once
    /// established, including the disconnects after a torrent completed.
    pub errors: u64,
    /// Our outgoing connection attempts that failed before the BitTorrent handshake completed
    /// (connect refused or timed out, handshake failed or timed out): a subset of `errors`
    /// (librqbit patch 0009).
    pub failed_dials: u64,
    /// Times the peer was put into librqbit's reconnect backoff with a wait of at least 10 s
    /// (patch 0009).
    pub long_reconnect_waits: u64,
    /// Pieces received from the peer that failed their hash check (patch 0015; with its `ban`
    /// switch on, the peer's IP address is banned from the torrent at the first).
    pub hash_failures: u64,
    /// Bytes of those pieces, thrown away.
    pub discarded_bytes: u64,
}

/// A librqbit session; see the crate documentation.
pub struct Swarm {
    session: Arc<Session>,
    peer_id: [u8; 20],
    listen_addr: SocketAddr,
    super_seed: Option<Duration>,
    peer_limit: Option<usize>,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Swarm(listening on {})", self.listen_addr)
    }
}

fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

impl Swarm {
    /// Starts a session listening on `config.listen`.
    pub async fn start(config: SwarmConfig) -> Result<Self, SwarmError> {
        let peer_id = librqbit::generate_azereus_style(*b"SC", (0, 1, 0, 0));
        // librqbit tells trackers port 4240 for a loopback listener without an announce port, and
        // binds inside the session: pick a free port first so the announced one is the real one.
        let mut listen = config.listen;
        if listen.port() == 0 {
            let probe = std::net::TcpListener::bind(listen).map_err(|e| SwarmError::Start {
                addr: listen,
                reason: e.to_string(),
            })?;
            listen.set_port(
                probe
                    .local_addr()
                    .map_err(|e| SwarmError::Start {
                        addr: listen,
                        reason: e.to_string(),
                    })?
                    .port(),
            );
        }
        let ratelimits = librqbit::limits::LimitsConfig {
            upload_bps: config.upload_limit.and_then(std::num::NonZeroU32::new),
            download_bps: config.download_limit.and_then(std::num::NonZeroU32::new),
        };
        let opts = SessionOptions {
            disable_trackers: !config.announce,
            dht: config
                .dht_bootstrap
                .clone()
                .map(|bootstrap| librqbit::DhtSessionConfig {
                    // None: librqbit's public routers.
                    bootstrap_addrs: (!bootstrap.is_empty()).then_some(bootstrap),
                    port: None,
                    persistence: None,
                }),
            extension: config.extension.clone().map(|e| e.0),
            persistence: None,
            disable_local_service_discovery: true,
            peer_id: Some(peer_id),
            listen: Some(ListenerOptions {
                listen_addr: listen,
                announce_port: Some(listen.port()),
                ipv4_only: listen.is_ipv4(),
                ..Default::default()
            }),
            ratelimits,
            connect: config
                .punch_ports
                .clone()
                .map(|ports| librqbit::ConnectionOptions {
                    punch_ports: Some(ports),
                    ..Default::default()
                }),
            ..Default::default()
        };
        let session = Session::new_with_opts(config.default_dir.clone(), opts)
            .await
            .map_err(|e| SwarmError::Start {
                addr: config.listen,
                reason: chain(&e),
            })?;
        let listen_addr = session.listen_addr().ok_or_else(|| SwarmError::Start {
            addr: config.listen,
            reason: "librqbit reports no listening address".into(),
        })?;
        Ok(Self {
            session,
            peer_id: peer_id.0,
            listen_addr,
            super_seed: config.super_seed,
            peer_limit: config.peer_limit,
        })
    }

    /// The address peers reach this session at (the bound address).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The addresses this session learned it is its own peer at, besides its listen address:
    /// those its peers see it at (BEP 10 `yourip` with its port) and those a dial of its own
    /// reached it at (librqbit patch 0025). Behind a NAT the DHT hands a session its own public
    /// address; it never dials one of these.
    pub fn own_addresses(&self) -> Vec<SocketAddr> {
        self.session.swarmcast_own_addresses()
    }

    /// An address peers see this session at that is none of its host's (an own address, BEP 10
    /// `yourip`, whose IP no interface of the host has): the session is behind a NAT, reached
    /// only on the connections it opens. None until a peer has told it such an address (its
    /// first extended handshakes), or if the host's interfaces cannot be listed.
    pub fn behind_nat(&self) -> Option<SocketAddr> {
        seen_outside(&self.own_addresses(), &host_addresses()?)
    }

    /// Whether `addr` is the session's listen address or one of its
    /// [own addresses](Self::own_addresses).
    fn is_own(&self, addr: SocketAddr, own: &[SocketAddr]) -> bool {
        addr == self.listen_addr || own.contains(&addr)
    }

    /// Dials `peers` for a torrent already added (those it knows already, and its
    /// [own addresses](Self::own_addresses), are skipped): peers found after the torrent was
    /// added. Returns how many were new to it; 0 for a torrent not (or no longer) live.
    pub fn add_peers(&self, t: &Torrent, peers: &[SocketAddr]) -> usize {
        let Some(live) = t.handle.live() else {
            return 0;
        };
        let own = self.own_addresses();
        peers
            .iter()
            .filter(|&&a| !self.is_own(a, &own))
            .filter(|&&a| matches!(live.add_peer_if_not_seen(a), Ok(true)))
            .count()
    }

    /// Looks `info_hash` up on the session's DHT (BEP 5 `get_peers`), announcing the session's
    /// listen port there, and hands each distinct peer found within `within` to `on_peer`, at
    /// most `max` (not the session itself: neither its listen address nor one of its
    /// [own addresses](Self::own_addresses)); the lookup is dropped then. Returns how many were
    /// found: none when the session has no DHT. A viewer looks its stream's peer key up this
    /// way ([`swarmcast_core::carry::peer_key`]).
    pub async fn dht_lookup(
        &self,
        info_hash: [u8; 20],
        within: Duration,
        max: usize,
        mut on_peer: impl FnMut(SocketAddr) + Send,
    ) -> usize {
        use futures_util::StreamExt;
        let Some(dht) = self.session.get_dht() else {
            return 0;
        };
        let mut lookup = dht.get_peers(
            librqbit_core::hash_id::Id20::new(info_hash),
            self.session.announce_port(),
        );
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = std::collections::HashSet::new();
        while seen.len() < max {
            match tokio::time::timeout_at(deadline, lookup.next()).await {
                Ok(Some(a)) => {
                    if !self.is_own(a, &self.own_addresses()) && seen.insert(a) {
                        on_peer(a);
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        seen.len()
    }

    /// The session's peer id.
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    async fn add(
        &self,
        torrent: &[u8],
        name: &str,
        opts: AddTorrentOptions,
    ) -> Result<Torrent, SwarmError> {
        let response = self
            .session
            .add_torrent(AddTorrent::from_bytes(torrent.to_vec()), Some(opts))
            .await
            .map_err(|e| SwarmError::Add {
                name: name.to_owned(),
                reason: chain(&e),
            })?;
        let handle = match response {
            AddTorrentResponse::Added(_, h) | AddTorrentResponse::AlreadyManaged(_, h) => h,
            AddTorrentResponse::ListOnly(_) => {
                return Err(SwarmError::Add {
                    name: name.to_owned(),
                    reason: "list-only response".into(),
                })
            }
        };
        Ok(Torrent {
            handle,
            name: name.to_owned(),
        })
    }

    /// Seeds a segment whose file is already in `folder`: librqbit re-hashes it and this returns
    /// once it reports the torrent live and complete (or fails after `timeout`).
    pub async fn seed(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        timeout: Duration,
    ) -> Result<Torrent, SwarmError> {
        let opts = AddTorrentOptions {
            overwrite: true,
            output_folder: Some(folder.to_string_lossy().into_owned()),
            super_seed: self.super_seed.map(|reveal_after| SuperSeedOptions {
                reveal_after,
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = self.add(torrent, name, opts).await?;
        self.wait(&t, "seeding", timeout).await?;
        Ok(t)
    }

    /// Starts downloading a segment into `folder`, connecting to `initial_peers` at once and
    /// announcing to the torrent's trackers plus `trackers`.
    pub async fn download(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        initial_peers: Vec<SocketAddr>,
        trackers: Vec<String>,
    ) -> Result<Torrent, SwarmError> {
        let how = Download {
            initial_peers,
            trackers,
            ..Default::default()
        };
        self.download_with(torrent, name, folder, how).await
    }

    /// [`Self::download`] with every option of [`Download`]: an upload rank, and whether the
    /// session's DHT looks the torrent's peers up.
    pub async fn download_with(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        how: Download,
    ) -> Result<Torrent, SwarmError> {
        let Download {
            initial_peers,
            trackers,
            upload_rank,
            skip_dht,
            reconnect_first_wait,
        } = how;
        let opts = AddTorrentOptions {
            upload_rank,
            overwrite: true,
            output_folder: Some(folder.to_string_lossy().into_owned()),
            initial_peers: (!initial_peers.is_empty()).then_some(initial_peers),
            trackers: (!trackers.is_empty()).then_some(trackers),
            peer_limit: self.peer_limit,
            disable_dht: skip_dht,
            reconnect_first_wait,
            ..Default::default()
        };
        self.add(torrent, name, opts).await
    }

    /// Waits until the torrent is complete (polling every [`POLL`]).
    pub async fn wait(
        &self,
        t: &Torrent,
        what: &'static str,
        timeout: Duration,
    ) -> Result<(), SwarmError> {
        let start = Instant::now();
        loop {
            let stats = t.handle.stats();
            if let TorrentStatsState::Error = stats.state {
                return Err(SwarmError::Torrent {
                    name: t.name.clone(),
                    reason: stats.error.unwrap_or_else(|| "unknown".into()),
                });
            }
            if stats.finished && matches!(stats.state, TorrentStatsState::Live) {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(SwarmError::Timeout {
                    name: t.name.clone(),
                    what,
                    waited: timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A torrent's current figures.
    pub fn stats(&self, t: &Torrent) -> TorrentStats {
        let s = t.handle.stats();
        let live = s.live.as_ref();
        TorrentStats {
            uploaded: s.uploaded_bytes,
            downloaded: live.map_or(s.progress_bytes, |l| {
                l.snapshot.downloaded_and_checked_bytes
            }),
            fetched: live.map_or(0, |l| l.snapshot.fetched_bytes),
            pieces: live.map_or(0, |l| l.snapshot.downloaded_and_checked_pieces),
            live_peers: live.map_or(0, |l| u64::from(l.snapshot.peer_stats.live)),
            finished: s.finished,
            refused_banned: t.handle.live().map_or(0, |l| l.swarmcast_refused_banned()),
        }
    }

    /// Bytes exchanged with each peer of a torrent, by the peer's address as librqbit knows it
    /// (the address we dialled, or the remote address of an incoming connection).
    pub fn peer_bytes(&self, t: &Torrent) -> Vec<PeerBytes> {
        let Some(live) = t.handle.live() else {
            return Vec::new();
        };
        // PeerStatsFilter is not nameable outside librqbit; it deserialises from JSON.
        let Ok(filter) = serde_json::from_str(r#"{"state":"all"}"#) else {
            return Vec::new();
        };
        let snapshot = live.per_peer_stats_snapshot(filter);
        let Ok(value) = serde_json::to_value(&snapshot) else {
            return Vec::new();
        };
        let Some(peers) = value.get("peers").and_then(|p| p.as_object()) else {
            return Vec::new();
        };
        peers
            .iter()
            .map(|(addr, p)| {
                let c = &p["counters"];
                let n = |k: &str| c[k].as_u64().unwrap_or(0);
                PeerBytes {
                    addr: addr.clone(),
                    fetched: n("fetched_bytes"),
                    uploaded: n("uploaded_bytes"),
                    connection_attempts: n("connection_attempts"),
                    dialled: n("connections"),
                    errors: n("errors"),
                    failed_dials: n("failed_dials"),
                    long_reconnect_waits: n("long_reconnect_waits"),
                    hash_failures: n("hash_failures"),
                    discarded_bytes: n("discarded_bytes"),
                }
            })
            .collect()
    }

    /// Drops a torrent from the session, keeping its file.
    pub async fn forget(&self, t: &Torrent) {
        if let Err(e) = self
            .session
            .delete(librqbit::api::TorrentIdOrHash::Id(t.handle.id()), false)
            .await
        {
            tracing::warn!(name = %t.name, error = %chain(&e), "cannot remove torrent from the session");
        }
    }

    /// Stops the session: closes connections and the listener.
    pub async fn shutdown(&self) {
        self.session.stop().await;
    }
}

/// The IP addresses of the host's interfaces (None if they cannot be listed).
fn host_addresses() -> Option<Vec<std::net::IpAddr>> {
    let list = nix::ifaddrs::getifaddrs().ok()?;
    Some(
        list.filter_map(|i| {
            let a = i.address?;
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect(),
    )
}

/// The first of `own` (addresses peers see a session at) whose IP is none of `local` (the
/// host's interface addresses; IPv4-mapped IPv6 addresses count as IPv4): the host is behind a
/// NAT ([`Swarm::behind_nat`]).
fn seen_outside(own: &[SocketAddr], local: &[std::net::IpAddr]) -> Option<SocketAddr> {
    own.iter()
        .find(|a| {
            let ip = a.ip().to_canonical();
            !local.iter().any(|l| l.to_canonical() == ip)
        })
        .copied()
}

#[cfg(test)]
mod nat_tests {
    use super::*;

    #[test]
    fn a_session_is_behind_nat_when_a_peer_sees_it_at_an_address_its_host_lacks() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let local: Vec<std::net::IpAddr> = vec![
            "127.0.0.1".parse().unwrap(),
            "10.77.3.2".parse().unwrap(),
            "fe80::1".parse().unwrap(),
        ];
        // Nobody said where they see it: unknown.
        assert_eq!(seen_outside(&[], &local), None);
        // Seen at its own interface's address (as IPv4, or IPv4-mapped IPv6): reachable.
        assert_eq!(seen_outside(&[at("10.77.3.2:6881")], &local), None);
        assert_eq!(seen_outside(&[at("[::ffff:10.77.3.2]:6881")], &local), None);
        // Seen at an address no interface has: behind a NAT, and that is the address.
        assert_eq!(
            seen_outside(&[at("127.0.0.1:6881"), at("10.77.30.1:6881")], &local),
            Some(at("10.77.30.1:6881"))
        );
    }

    #[test]
    fn the_hosts_interfaces_are_listed_and_loopback_is_among_them() {
        let listed = host_addresses().expect("getifaddrs");
        assert!(
            listed.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
            "{listed:?}"
        );
    }
}
