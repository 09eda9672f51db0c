//! The wire seeder: the publisher seeding its segments itself, on librqbit's wire-protocol crate
//! (`librqbit-peer-protocol`), instead of through a librqbit session.
//!
//! It exists to compare the two places super-seeding can live (docs/librqbit.md, "Where
//! super-seeding lives"): inside librqbit (patch 0007, [`crate::Swarm`] with
//! [`SwarmConfig::super_seed`](crate::SwarmConfig::super_seed)) or in the publisher, which owns
//! every byte of every segment and needs no download logic at all. It is a seed and nothing
//! else: it accepts connections (it never dials, so it needs no tracker announce and no PEX),
//! answers the handshake of a segment it seeds, unchokes at once, announces pieces by the
//! [`policy::SuperSeed`] rule (or a full bitfield without super-seeding), and serves requests
//! from memory under one upload limit shared by all connections, [`PIECES_AT_ONCE`] pieces at a
//! time. Super-seeding, it follows each connection's TCP acknowledgements of the pieces it wrote
//! whole, and offers a piece still unacknowledged after [`WireConfig::late_after`] to another
//! peer ([`policy::SuperSeed::peer_lost`]). It honours Cancel, sets TCP_NODELAY, and keeps its
//! counters exactly: payload bytes per segment, connections by outcome, late pieces. At `trace`
//! level it logs connections, offers, requests, blocks written, Haves and pieces acknowledged
//! (`SWARMCAST_LOG=info,swarmcast_swarm::wire=trace`); at `debug`, late pieces.
//!
//! Bounded everywhere: a handshake must arrive within [`HANDSHAKE_TIMEOUT`], a connection may
//! queue at most [`MAX_QUEUED_REQUESTS`] requests of at most [`MAX_REQUEST`] bytes, each for a
//! piece announced to it, messages over [`MAX_MESSAGE`] bytes close the connection, so does
//! [`IDLE_TIMEOUT`] of silence, at most [`MAX_CONNECTIONS`] run at once and [`PER_ADDRESS`] from
//! one IP address (both configurable), writes time out after [`WRITE_TIMEOUT`], and every
//! connection of a segment ends when the segment is forgotten.
//!
//! Each connection is the sans-IO state machine [`conn::Conn`] (parsing, handshake, limits,
//! keep-alive, on a clock passed in), driven by `driver` (socket, timers, piece data, turns and
//! the upload limit); what connections share, the super-seeding [`policy`] and the limiter, stays
//! here. Every task (the accept loop, the connections, the reveal timers) is spawned through one
//! [`swarmcast_tasks::Tasks`] group, which [`WireSeeder::shutdown`] cancels and awaits.

mod accept;
pub mod conn;
mod driver;
pub mod manifests;
pub mod policy;
mod tcpinfo;

pub use accept::address_key;
pub use conn::{
    HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, KEEP_ALIVE, MAX_MESSAGE, MAX_QUEUED_REQUESTS, MAX_REQUEST,
};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::{InfoDict, SegmentTorrent};
use swarmcast_tasks::Tasks;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::ratelimit::ByteLimiter;
use conn::{Layout, BLOCK};
use policy::SuperSeed;

/// Connections served at once by default ([`WireConfig::max_connections`]); more are closed on
/// arrival.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections from one IP address served at once by default ([`WireConfig::per_address`]):
/// a viewer holds one per segment it fetches (about six), so this leaves room for ten viewers
/// behind one NAT, and one address cannot take more than 6% of [`MAX_CONNECTIONS`].
pub const PER_ADDRESS: usize = 64;
/// How long [`WireSeeder::forget`] waits for a forgotten segment's connections to end.
pub const FORGET_WAIT: Duration = Duration::from_secs(5);
/// Pieces offered to one connection at a time (as librqbit's `SuperSeedOptions` default).
pub const OFFERS_PER_PEER: usize = 2;
/// `TCP_NOTSENT_LOWAT` of every connection: the unsent bytes a write may leave in the socket.
pub const NOTSENT_LOWAT: u32 = BLOCK;
/// A super-seeded segment whose first copy is not out this many reveal delays after it was
/// added is revealed anyway: a peer that never asks for a piece offered to it must not hold the
/// piece back from everyone for ever. (The reveal is counted from the first copy because a capped
/// uplink can take longer than the reveal delay to send it: a reveal then turned the publisher
/// into a plain seed, every viewer asked it for every piece, and each next segment's first copy
/// was late in turn; docs/experiments.md, "A reveal counted from the first copy".)
pub const REVEAL_BACKSTOP: u32 = 4;
/// The publisher's [`WireConfig::late_after`]. Under `TCP_NOTSENT_LOWAT` a write returns with at
/// most one block unsent, so a piece written whole is normally acknowledged within the time its
/// last block takes to leave plus a round trip: at 150 ms RTT and the publisher capped at 1.5x
/// the bitrate, 0.8 s (median) and 1.2 s (p90) with 50 viewers crowding its uplink. Pieces that
/// never spread were unacknowledged for 7 s and more, behind retransmission timeouts; 1.5 s took
/// slow deliveries for stuck ones in a crowd, so the default leaves room (docs/experiments.md,
/// "A piece stuck on its way").
pub const LATE_AFTER: Duration = Duration::from_secs(3);
/// How long after a super-seeded segment is added its fresh pieces are held for the audience
/// still coming ([`policy::SuperSeed::with_hold`]): a peer holding a piece is offered no fresh
/// one while fewer peers are connected than the previous segment had (or than it has pieces).
/// Viewers learn of a segment over a few round trips when the manifest spreads in the swarm,
/// then announce and connect: at 50 ms RTT the lab's 20 viewers were connected about 0.3-0.6 s
/// after publication. Past this, the pieces left go to whoever is there (the audience may have
/// shrunk).
pub const HOLD_FOR_AUDIENCE: Duration = Duration::from_secs(1);
/// How many addresses that downloaded the seeder remembers (see [`Inner`]'s `downloaders`).
const DOWNLOADERS_KEPT: usize = 65_536;

/// The default [`WireConfig::offer_wait`]: a piece offered to a peer that asks for nothing within
/// this long (or four of the connection's round trips, if longer) is offered to another peer, and
/// that peer is offered nothing new until it has a piece ([`policy::Unrequested`]). A client asks
/// for an offered piece a round trip after the offer; one that does not withholds the piece from
/// everyone.
pub const OFFER_WAIT: Duration = Duration::from_millis(250);

/// Errors from the wire seeder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The listener could not bind.
    #[error("cannot listen for BitTorrent peers on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A torrent to seed is not a valid single-file v1 torrent.
    #[error("{name}: cannot seed: {reason}")]
    Torrent {
        /// The segment's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The segment's file could not be read.
    #[error("{path}: cannot read the segment to seed it: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file does not match its torrent.
    #[error("{path}: piece {piece} does not match the torrent's hash (file {found} bytes, torrent {expected})")]
    Mismatch {
        /// The file.
        path: String,
        /// The first piece that differs.
        piece: u64,
        /// The torrent's length.
        expected: u64,
        /// The file's length.
        found: u64,
    },
}

/// How to run the wire seeder.
#[derive(Clone, Debug)]
pub struct WireConfig {
    /// The peer listener's address (port 0: any free port).
    pub listen: SocketAddr,
    /// The upload limit for all connections together. It may be shared with the rest of the
    /// process (the publisher gives its seeder, HTTP segment bodies and manifests one
    /// [`ByteLimiter::wire`] budget); piece data is written a [`ByteLimiter::slice`] at a time,
    /// each as soon as the limiter grants it.
    pub upload_limit: Option<Arc<ByteLimiter>>,
    /// Super-seed, revealing every piece this long after a segment's first copy is out (every
    /// piece sent whole to some peer), or [`REVEAL_BACKSTOP`] times this long after the segment is
    /// added if that comes first; `None`: announce every piece at once (a full bitfield).
    pub super_seed: Option<Duration>,
    /// Super-seeding: a piece written whole to a peer whose TCP has not acknowledged it this long
    /// after is offered to another peer ([`policy::SuperSeed::peer_lost`]), and that peer is
    /// offered nothing new until it has a piece again; a piece whose one holder has passed it on
    /// to nobody this long (while another peer lacks it) is offered once more
    /// ([`policy::SuperSeed::stranded`]). `None`: a piece written is the peer's for good.
    /// [`LATE_AFTER`] is the publisher's default.
    pub late_after: Option<Duration>,
    /// Super-seeding: a piece offered to a peer that asks for nothing within this long (or four
    /// of its round trips, if longer) is offered to another peer ([`policy::Unrequested`]);
    /// `None`: an offer waits for its peer for ever. [`OFFER_WAIT`] by default.
    pub offer_wait: Option<Duration>,
    /// Connections served at once ([`MAX_CONNECTIONS`] by default); more are closed on arrival.
    pub max_connections: usize,
    /// Connections from one IP address served at once ([`PER_ADDRESS`] by default; 0: no cap).
    /// More are closed on arrival, so one address that opens connections and sends nothing
    /// cannot fill the seeder's slots.
    pub per_address: usize,
    /// Carry manifests to the peers that speak swarmcast's manifest exchange (BEP 10):
    /// [`manifests::ManifestHub`]. `None`: the extension is not announced.
    pub manifests: Option<Arc<manifests::ManifestHub>>,
}

impl WireConfig {
    /// A seeder listening on `listen` with no limit, no super-seeding, no late pieces, and the
    /// default connection caps.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            upload_limit: None,
            super_seed: None,
            late_after: None,
            offer_wait: Some(OFFER_WAIT),
            max_connections: MAX_CONNECTIONS,
            per_address: PER_ADDRESS,
            manifests: None,
        }
    }
}

/// Connections by outcome, since start.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections refused: over [`WireConfig::max_connections`] or
    /// [`WireConfig::per_address`], no handshake, or a torrent we do not seed.
    pub refused: AtomicU64,
    /// Of those, refused on arrival for their address's cap ([`WireConfig::per_address`]).
    pub refused_per_address: AtomicU64,
    /// Connections closed for a protocol violation (bad message, bad request, too many).
    pub violations: AtomicU64,
    /// Pieces written whole to a peer and not acknowledged within
    /// [`WireConfig::late_after`], so offered to another peer.
    pub late_pieces: AtomicU64,
    /// Of those, pieces acknowledged later after all.
    pub late_arrived: AtomicU64,
    /// Pieces whose one holder passed them on to nobody within [`WireConfig::late_after`] while
    /// another peer lacked them, so offered once more ([`policy::SuperSeed::stranded`]).
    pub stranded_pieces: AtomicU64,
    /// Pieces offered to a peer that did not ask for them within [`WireConfig::offer_wait`] (or
    /// four round trips, if longer) while it asked for nothing else, so offered to another peer.
    pub offers_ignored: AtomicU64,
}

/// The wire seeder; see the module documentation.
pub struct WireSeeder {
    inner: Arc<Inner>,
    listen_addr: SocketAddr,
    /// The accept loop, every connection and the reveal timers.
    tasks: Tasks,
}

impl std::fmt::Debug for WireSeeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireSeeder(listening on {})", self.listen_addr)
    }
}

struct Inner {
    peer_id: [u8; 20],
    segments: Mutex<HashMap<[u8; 20], Arc<Segment>>>,
    limiter: Option<Arc<ByteLimiter>>,
    super_seed: Option<Duration>,
    late_after: Option<Duration>,
    offer_wait: Option<Duration>,
    slots: Arc<Semaphore>,
    /// The semaphore's size.
    max_connections: usize,
    /// Connections per IP address now, and the cap (0: none).
    per_address: Mutex<HashMap<std::net::IpAddr, usize>>,
    per_address_cap: usize,
    /// Addresses ([`address_key`]) whose connections asked for a piece, of any segment: their
    /// next connections are offered pieces before connections never seen to download
    /// ([`policy::SuperSeed::peer_live_downloader`]). At most [`DOWNLOADERS_KEPT`], then
    /// forgotten all at once.
    downloaders: Mutex<std::collections::HashSet<std::net::IpAddr>>,
    /// With a limit: pieces served at once (see [`PIECES_AT_ONCE`]); `None`: no turns.
    turns: Option<Arc<Semaphore>>,
    next_conn: AtomicU64,
    counters: Arc<WireCounters>,
    manifests: Option<Arc<manifests::ManifestHub>>,
}

/// A segment being seeded.
struct Segment {
    name: String,
    info_hash: [u8; 20],
    data: Bytes,
    layout: Layout,
    uploaded: AtomicU64,
    /// The super-seed bookkeeping and where each live connection takes its Haves; `None` when
    /// not super-seeding.
    policy: Option<Mutex<Policy>>,
    gone: CancellationToken,
    /// Connections serving this segment now, and a wake-up when one ends (so that `forget` can
    /// wait for their last writes to be counted).
    conns: AtomicU64,
    conn_ended: Notify,
    /// Notified once, when the super-seeding policy first sees every piece held.
    first_copy: Notify,
}

/// Counts a connection of a segment while it lives (dropped when its task ends, however it ends).
struct ConnGuard<'a>(&'a Segment);

impl<'a> ConnGuard<'a> {
    fn new(segment: &'a Segment) -> Self {
        segment.conns.fetch_add(1, Ordering::SeqCst);
        Self(segment)
    }
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::SeqCst);
        self.0.conn_ended.notify_waiters();
    }
}

struct Policy {
    seed: SuperSeed<u64>,
    haves: HashMap<u64, mpsc::UnboundedSender<u32>>,
}

impl Policy {
    /// Sends each offer to its connection (one that is gone just misses it).
    fn send(&self, offers: Vec<policy::Offer<u64>>) {
        for (conn, piece) in offers {
            tracing::trace!(conn, piece, "wire seeder: offer");
            if let Some(tx) = self.haves.get(&conn) {
                let _ = tx.send(piece);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A segment seeded by a [`WireSeeder`].
#[derive(Clone)]
pub struct WireTorrent {
    segment: Arc<Segment>,
}

impl std::fmt::Debug for WireTorrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WireTorrent({})", self.segment.name)
    }
}

impl WireTorrent {
    /// Payload bytes sent to peers so far (Piece message blocks, exactly).
    pub fn uploaded(&self) -> u64 {
        self.segment.uploaded.load(Ordering::Relaxed)
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.segment.name
    }
}

impl WireSeeder {
    /// Binds the listener and starts accepting.
    pub async fn start(config: WireConfig) -> Result<Self, WireError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| WireError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let listen_addr = listener.local_addr().map_err(|source| WireError::Bind {
            addr: config.listen,
            source,
        })?;
        let inner = Arc::new(Inner {
            peer_id: librqbit::generate_azereus_style(*b"SW", (0, 1, 0, 0)).0,
            segments: Mutex::new(HashMap::new()),
            super_seed: config.super_seed,
            late_after: config.late_after,
            offer_wait: config.offer_wait,
            slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
            max_connections: config.max_connections.max(1),
            per_address: Mutex::new(HashMap::new()),
            per_address_cap: config.per_address,
            downloaders: Mutex::new(std::collections::HashSet::new()),
            turns: config
                .upload_limit
                .is_some()
                .then(pieces_at_once)
                .flatten()
                .map(|n| Arc::new(Semaphore::new(n))),
            limiter: config.upload_limit,
            next_conn: AtomicU64::new(0),
            counters: Arc::default(),
            manifests: config.manifests.clone(),
        });
        let tasks = Tasks::new("wire seeder");
        tasks.spawn(
            "accept",
            accept::accept_loop(listener, inner.clone(), tasks.clone()),
        );
        Ok(Self {
            inner,
            listen_addr,
            tasks,
        })
    }

    /// The address peers reach the seeder at.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Connection counters.
    pub fn counters(&self) -> &WireCounters {
        &self.inner.counters
    }

    /// The connection counters, shared (for a metrics endpoint that outlives a borrow).
    pub fn counters_handle(&self) -> Arc<WireCounters> {
        self.inner.counters.clone()
    }

    /// Connections being served now.
    pub fn connections(&self) -> usize {
        self.inner.max_connections - self.inner.slots.available_permits()
    }

    /// Seeds the segment `folder/<name in the torrent>`: reads it into memory, checks every piece
    /// against the torrent, and serves it from now on.
    pub async fn seed(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &std::path::Path,
    ) -> Result<WireTorrent, WireError> {
        let parsed = SegmentTorrent::parse(torrent).map_err(|e| WireError::Torrent {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        let info: &InfoDict = parsed.info();
        let path = folder.join(&info.name);
        let data = tokio::fs::read(&path)
            .await
            .map_err(|source| WireError::Read {
                path: path.display().to_string(),
                source,
            })?;
        if let Some(segment) = lock(&self.inner.segments).get(&parsed.info_hash().0) {
            // Already seeded (as librqbit answers AlreadyManaged): the same torrent, the same bytes.
            return Ok(WireTorrent {
                segment: segment.clone(),
            });
        }
        let pieces = info.piece_count();
        let mismatch = |piece| WireError::Mismatch {
            path: path.display().to_string(),
            piece,
            expected: info.length,
            found: data.len() as u64,
        };
        if data.len() as u64 != info.length {
            return Err(mismatch(0));
        }
        for i in 0..pieces {
            let start = (i * info.piece_length) as usize;
            let end = (start + info.piece_length as usize).min(data.len());
            if !info.verify_piece(i, &data[start..end]) {
                return Err(mismatch(i));
            }
        }
        let pieces = u32::try_from(pieces).map_err(|_| WireError::Torrent {
            name: info.name.clone(),
            reason: format!("{pieces} pieces is more than a wire seeder serves"),
        })?;
        // The audience: the most connections a segment being seeded has now (a viewer holds one
        // per segment it fetches), so the new segment's pieces start from as many viewers as
        // there are pieces.
        let audience = lock(&self.inner.segments)
            .values()
            .map(|s| s.conns.load(Ordering::SeqCst) as usize)
            .max()
            .unwrap_or(0);
        let segment = Arc::new(Segment {
            name: info.name.clone(),
            info_hash: parsed.info_hash().0,
            layout: Layout {
                piece_length: info.piece_length,
                length: data.len() as u64,
                pieces,
            },
            data: Bytes::from(data),
            uploaded: AtomicU64::new(0),
            policy: self.inner.super_seed.map(|_| {
                Mutex::new(Policy {
                    seed: SuperSeed::new(pieces, OFFERS_PER_PEER)
                        .with_audience(audience)
                        .with_hold(),
                    haves: HashMap::new(),
                })
            }),
            gone: self.tasks.token().child_token(),
            conns: AtomicU64::new(0),
            conn_ended: Notify::new(),
            first_copy: Notify::new(),
        });
        if let Some(after) = self.inner.super_seed {
            self.tasks
                .spawn("reveal", reveal_at(segment.clone(), after));
            self.tasks
                .spawn("hold", end_hold_at(segment.clone(), HOLD_FOR_AUDIENCE));
            if let Some(after) = self.inner.late_after {
                self.tasks.spawn(
                    "stranded",
                    stranded_loop(segment.clone(), self.inner.clone(), after),
                );
            }
        }
        lock(&self.inner.segments).insert(segment.info_hash, segment.clone());
        Ok(WireTorrent { segment })
    }

    /// Stops seeding a segment and closes its connections (the file stays); returns once they
    /// ended (at most [`FORGET_WAIT`]), so that [`WireTorrent::uploaded`] is final.
    pub async fn forget(&self, t: &WireTorrent) {
        {
            let mut segments = lock(&self.inner.segments);
            if segments
                .get(&t.segment.info_hash)
                .is_some_and(|s| Arc::ptr_eq(s, &t.segment))
            {
                segments.remove(&t.segment.info_hash);
            }
        }
        t.segment.gone.cancel();
        let seg = &t.segment;
        let _ = tokio::time::timeout(FORGET_WAIT, async {
            loop {
                let ended = seg.conn_ended.notified();
                if seg.conns.load(Ordering::SeqCst) == 0 {
                    return;
                }
                ended.await;
            }
        })
        .await;
    }

    /// Stops: closes the listener and every connection, and returns once every task of the
    /// seeder (the accept loop, the connections, the reveal timers) has ended.
    pub async fn shutdown(&self) {
        self.tasks.cancel();
        lock(&self.inner.segments).clear();
        self.tasks.wait().await;
    }
}

impl Drop for WireSeeder {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

/// `after` the segment was added, its fresh pieces are no longer held for the audience still
/// coming ([`HOLD_FOR_AUDIENCE`]).
async fn end_hold_at(segment: Arc<Segment>, after: Duration) {
    tokio::select! {
        () = segment.gone.cancelled() => return,
        () = tokio::time::sleep(after) => {}
    }
    let Some(p) = &segment.policy else { return };
    let mut p = lock(p);
    let offers = p.seed.end_hold();
    p.send(offers);
}

/// Every `after / 4` (50 ms to 1 s) until the segment is forgotten or revealed, offers once
/// more a piece whose one holder has passed it on to nobody for `after`
/// ([`policy::SuperSeed::stranded`], counted in [`WireCounters::stranded_pieces`]).
async fn stranded_loop(segment: Arc<Segment>, inner: Arc<Inner>, after: Duration) {
    let Some(p) = &segment.policy else { return };
    let every = (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut lone = policy::Lone::default();
    loop {
        tokio::select! {
            () = segment.gone.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut p = lock(p);
        if p.seed.is_revealed() {
            return;
        }
        let now = std::time::Instant::now();
        for piece in lone.check(now, &p.seed.lone_pieces(), after) {
            let offers = p.seed.stranded(piece);
            if !offers.is_empty() {
                inner
                    .counters
                    .stranded_pieces
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(segment = %segment.name, piece, "wire seeder: a piece passed on to nobody, offered once more");
            }
            p.send(offers);
        }
    }
}

/// `after` once the segment's first copy is out (or [`REVEAL_BACKSTOP`] times `after` since it was
/// added), every live connection is told of every piece.
async fn reveal_at(segment: Arc<Segment>, after: Duration) {
    let first_copy_then = async {
        segment.first_copy.notified().await;
        tracing::debug!(segment = %segment.name, "wire seeder: first copy out");
        tokio::time::sleep(after).await;
    };
    tokio::select! {
        () = segment.gone.cancelled() => {}
        () = first_copy_then => {}
        () = tokio::time::sleep(after.saturating_mul(REVEAL_BACKSTOP).min(crate::REVEAL_NEVER)) => {}
    }
    if segment.gone.is_cancelled() {
        return;
    }
    let Some(p) = &segment.policy else { return };
    let mut p = lock(p);
    let conns = p.seed.reveal();
    tracing::debug!(segment = %segment.name, conns = conns.len(), "wire seeder: revealing every piece");
    for conn in conns {
        if let Some(tx) = p.haves.get(&conn) {
            for piece in 0..segment.layout.pieces {
                let _ = tx.send(piece);
            }
        }
    }
    // Connections that come later get the whole bitfield.
    p.haves.clear();
}

impl Segment {
    /// `conn` asked for blocks of `pieces` (each the first time).
    fn peer_asked(&self, conn: u64, pieces: &[u32]) {
        let Some(p) = &self.policy else { return };
        let mut p = lock(p);
        for &piece in pieces {
            p.seed.peer_asked(conn, piece);
        }
    }

    /// `piece`, offered to `conn`, was not asked for in time: offered to another peer. Whether
    /// it was still an offer (not claimed, received or revealed meanwhile).
    fn offer_ignored(&self, conn: u64, piece: u32) -> bool {
        let Some(p) = &self.policy else { return false };
        let mut p = lock(p);
        let Some(offers) = p.seed.offer_ignored(conn, piece) else {
            return false;
        };
        p.send(offers);
        true
    }

    /// `piece`, counted as `conn`'s since it was written whole, did not arrive in time.
    fn piece_late(&self, conn: u64, piece: u32) {
        let Some(p) = &self.policy else { return };
        let mut p = lock(p);
        let offers = p.seed.peer_lost(conn, piece);
        p.send(offers);
    }

    /// `conn` has `pieces`: `claimed` by the peer (its Haves and bitfield), or sent to it whole.
    fn peer_has(&self, conn: u64, pieces: impl Iterator<Item = u32>, claimed: bool) {
        let Some(p) = &self.policy else { return };
        let mut p = lock(p);
        let before = p.seed.first_copy_out();
        if claimed {
            let offers = p.seed.peer_claims(conn, pieces);
            p.send(offers);
        } else {
            for piece in pieces {
                let offers = p.seed.peer_has(conn, piece);
                p.send(offers);
            }
        }
        if !before && p.seed.first_copy_out() {
            // Once: the permit waits for `reveal_at` if it is not waiting yet.
            self.first_copy.notify_one();
        }
    }
}

/// Under an upload limit, how many pieces are served at a time, each whole before the next starts
/// (a connection keeps its turn until it was sent the whole piece, while its requests are for
/// that piece). Served all at once, the limit is shared: 8 pieces at 1.5x a 1 Mbit/s stream all
/// finish after 1.4 s, and nobody can pass one on before. Two at a time, the first two finish
/// after 0.35 s and their holders start forwarding, while a connection waiting on its window or
/// its congestion window does not idle the whole budget. A connection whose socket takes no bytes
/// for [`WRITE_TIMEOUT`] is closed, so a dead peer cannot keep a turn.
pub const PIECES_AT_ONCE: usize = 2;

/// The longest a piece write may wait for its socket (bytes leave at the peer's pace under
/// `TCP_NOTSENT_LOWAT`): longer, the peer is taken as gone and the connection closed. Without it,
/// a peer that vanished mid-piece would hold a turn until the segment is forgotten.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with nothing queued keeps its turn for the rest of its piece.
const TURN_GRACE: Duration = Duration::from_millis(20);

/// [`PIECES_AT_ONCE`], or `SWARMCAST_PIECES_AT_ONCE` (for measurement; 0: no turns, every
/// request served at once).
fn pieces_at_once() -> Option<usize> {
    let n = std::env::var("SWARMCAST_PIECES_AT_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PIECES_AT_ONCE);
    (n > 0).then_some(n)
}
