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
//! queue at most [`MAX_QUEUED_REQUESTS`] requests of at most [`MAX_REQUEST`] bytes, messages over
//! [`MAX_MESSAGE`] bytes close the connection, at most [`MAX_CONNECTIONS`] run at once and
//! [`PER_ADDRESS`] from one IP address (both configurable), writes time out after
//! [`WRITE_TIMEOUT`], and every connection of a segment ends when the segment is forgotten.

pub mod policy;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use librqbit_core::hash_id::Id20;
use librqbit_peer_protocol::extended::PeerExtendedMessageIds;
use librqbit_peer_protocol::{Handshake, Message, MessageDeserializeError, Piece, Request};
use swarmcast_core::{InfoDict, SegmentTorrent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::ratelimit::ByteLimiter;
use policy::{Deliveries, SuperSeed};

/// How long a new connection has to send its handshake. A viewer sends it with its first bytes,
/// one round trip after connecting; a connection that sends nothing holds a slot this long (it
/// was 10 s: 1,100 such connections kept the seeder's 1,024 slots full, docs/reliability.md).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A keep-alive goes out after this long without sending anything.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// The largest block a peer may request (BitTorrent clients ask for 16 KiB).
pub const MAX_REQUEST: u32 = 128 * 1024;
/// Requests a connection may have queued; more closes it.
pub const MAX_QUEUED_REQUESTS: usize = 4096;
/// The largest message accepted from a peer: a seed is sent requests, Haves and one bitfield
/// (128 bytes for 1024 pieces), so this leaves room for 262,000 pieces and bounds the buffer.
pub const MAX_MESSAGE: usize = 32 * 1024;
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
/// How often a connection with pieces in flight reads how much its peer acknowledged.
const ACK_POLL: Duration = Duration::from_millis(100);

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

/// Why a connection ended (counted in [`WireCounters`]).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error("bad handshake: {0}")]
    Handshake(MessageDeserializeError),
    #[error("not a segment we seed")]
    UnknownTorrent,
    #[error("bad message: {0}")]
    Message(MessageDeserializeError),
    #[error("message of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("request out of bounds: piece {index}, offset {begin}, length {length}")]
    BadRequest { index: u32, begin: u32, length: u32 },
    #[error("more than {MAX_QUEUED_REQUESTS} requests queued")]
    TooManyRequests,
    #[error("a bitfield after the first message")]
    LateBitfield,
    #[error("closed before its handshake: {0}")]
    HandshakeClosed(std::io::Error),
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
    /// offered nothing new until it has a piece again; `None`: a piece written is the peer's for
    /// good. [`LATE_AFTER`] is the publisher's default.
    pub late_after: Option<Duration>,
    /// Connections served at once ([`MAX_CONNECTIONS`] by default); more are closed on arrival.
    pub max_connections: usize,
    /// Connections from one IP address served at once ([`PER_ADDRESS`] by default; 0: no cap).
    /// More are closed on arrival, so one address that opens connections and sends nothing
    /// cannot fill the seeder's slots.
    pub per_address: usize,
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
            max_connections: MAX_CONNECTIONS,
            per_address: PER_ADDRESS,
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
}

/// The wire seeder; see the module documentation.
pub struct WireSeeder {
    inner: Arc<Inner>,
    listen_addr: SocketAddr,
    stop: CancellationToken,
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
    slots: Arc<Semaphore>,
    /// The semaphore's size.
    max_connections: usize,
    /// Connections per IP address now, and the cap (0: none).
    per_address: Mutex<HashMap<std::net::IpAddr, usize>>,
    per_address_cap: usize,
    /// With a limit: pieces served at once (see [`PIECES_AT_ONCE`]); `None`: no turns.
    turns: Option<Arc<Semaphore>>,
    next_conn: AtomicU64,
    counters: Arc<WireCounters>,
}

/// A segment being seeded.
struct Segment {
    name: String,
    info_hash: [u8; 20],
    data: Bytes,
    piece_length: u64,
    pieces: u32,
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
            slots: Arc::new(Semaphore::new(config.max_connections.max(1))),
            max_connections: config.max_connections.max(1),
            per_address: Mutex::new(HashMap::new()),
            per_address_cap: config.per_address,
            turns: config
                .upload_limit
                .is_some()
                .then(pieces_at_once)
                .flatten()
                .map(|n| Arc::new(Semaphore::new(n))),
            limiter: config.upload_limit,
            next_conn: AtomicU64::new(0),
            counters: Arc::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, inner.clone(), stop.clone()));
        Ok(Self {
            inner,
            listen_addr,
            stop,
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
            data: Bytes::from(data),
            piece_length: info.piece_length,
            pieces,
            uploaded: AtomicU64::new(0),
            policy: self.inner.super_seed.map(|_| {
                Mutex::new(Policy {
                    seed: SuperSeed::new(pieces, OFFERS_PER_PEER).with_audience(audience),
                    haves: HashMap::new(),
                })
            }),
            gone: self.stop.child_token(),
            conns: AtomicU64::new(0),
            conn_ended: Notify::new(),
            first_copy: Notify::new(),
        });
        if let Some(after) = self.inner.super_seed {
            tokio::spawn(reveal_at(segment.clone(), after));
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

    /// Stops: closes the listener and every connection.
    pub fn shutdown(&self) {
        self.stop.cancel();
        lock(&self.inner.segments).clear();
    }
}

impl Drop for WireSeeder {
    fn drop(&mut self) {
        self.stop.cancel();
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
            for piece in 0..segment.pieces {
                let _ = tx.send(piece);
            }
        }
    }
    // Connections that come later get the whole bitfield.
    p.haves.clear();
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, stop: CancellationToken) {
    let mut last_logged: Option<tokio::time::Instant> = None;
    loop {
        let (stream, addr) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin, and
                    // say so every few seconds rather than at every try.
                    if last_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                        last_logged = Some(tokio::time::Instant::now());
                        tracing::warn!(error = %e, connections = inner.max_connections - inner.slots.available_permits(), "wire seeder: accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(from_address) = AddressSlot::take(&inner, address_key(addr.ip())) else {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            inner
                .counters
                .refused_per_address
                .fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let inner = inner.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _from_address = from_address;
            let conn = inner.next_conn.fetch_add(1, Ordering::Relaxed);
            let r = tokio::select! {
                () = stop.cancelled() => Ok(()),
                r = serve(&inner, stream, conn) => r,
            };
            if let Err(e) = r {
                match e {
                    ConnError::HandshakeTimeout
                    | ConnError::HandshakeClosed(_)
                    | ConnError::Handshake(_)
                    | ConnError::UnknownTorrent => {
                        inner.counters.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    ConnError::Message(_)
                    | ConnError::TooLong(_)
                    | ConnError::BadRequest { .. }
                    | ConnError::TooManyRequests
                    | ConnError::LateBitfield => {
                        inner.counters.violations.fetch_add(1, Ordering::Relaxed);
                    }
                    ConnError::Io(_) => {}
                }
                tracing::debug!(%addr, error = %e, "wire seeder: connection ended");
            }
        });
    }
}

/// What a per-address cap counts a connection under: an IPv4 address (an IPv4-mapped IPv6
/// one as the IPv4 address it is), or an IPv6 address's /64 prefix, since one IPv6 host is
/// given a /64 and could otherwise open connections from as many addresses as it likes.
pub fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// A connection counted against its address's cap while it lives.
struct AddressSlot {
    inner: Arc<Inner>,
    ip: std::net::IpAddr,
}

impl AddressSlot {
    /// Counts a connection from `ip`; `None` if its address is at the cap.
    fn take(inner: &Arc<Inner>, ip: std::net::IpAddr) -> Option<Self> {
        let mut counts = lock(&inner.per_address);
        let n = counts.entry(ip).or_insert(0);
        if inner.per_address_cap != 0 && *n >= inner.per_address_cap {
            return None;
        }
        *n += 1;
        Some(Self {
            inner: inner.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.inner.per_address);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Requests waiting to be served on one connection.
#[derive(Default)]
struct Queue {
    requests: VecDeque<Request>,
    /// The request being served (waiting for the limiter), and whether it was cancelled since.
    current: Option<Request>,
    current_cancelled: bool,
}

fn same(a: &Request, b: &Request) -> bool {
    a.index == b.index && a.begin == b.begin && a.length == b.length
}

async fn serve(inner: &Inner, mut stream: TcpStream, conn: u64) -> Result<(), ConnError> {
    stream.set_nodelay(true)?;
    // Unsent bytes stay within one block: a write returns when its bytes are about to leave, not
    // when they are parked in a send buffer of megabytes. So a piece counts as sent (and the
    // super-seeding policy moves on) close to when it leaves, and pieces for a viewer that went
    // away are not queued for seconds ahead of everybody else's.
    socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    let mut buf = vec![0u8; 68];
    tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .map_err(|_| ConnError::HandshakeTimeout)?
        .map_err(ConnError::HandshakeClosed)?;
    let (theirs, _) = Handshake::deserialize(&buf).map_err(ConnError::Handshake)?;
    let segment = lock(&inner.segments)
        .get(&theirs.info_hash.0)
        .cloned()
        .ok_or(ConnError::UnknownTorrent)?;
    let _live = ConnGuard::new(&segment);
    let peer = stream.peer_addr().ok();
    tracing::trace!(segment = %segment.name, conn, ?peer, "wire seeder: connection");
    // No extension bit: the seeder speaks only the base protocol (no PEX, no metadata).
    let ours = Handshake {
        reserved: 0,
        info_hash: Id20::new(segment.info_hash),
        peer_id: Id20::new(inner.peer_id),
    };
    let n = ours.serialize_unchecked_len(&mut buf);
    stream.write_all(&buf[..n]).await?;
    // Super-seeding with late pieces re-offered: a second handle on the socket, to read how much
    // the peer acknowledged while the halves are busy reading and writing.
    let acks = match (&segment.policy, inner.late_after) {
        (Some(_), Some(late_after)) => {
            Some((socket2::SockRef::from(&stream).try_clone()?, late_after))
        }
        _ => None,
    };

    let (haves_tx, haves_rx) = mpsc::unbounded_channel();
    // Offers, or the whole bitfield when not super-seeding (or after the reveal).
    let whole_bitfield = match &segment.policy {
        None => true,
        Some(p) => {
            let mut p = lock(p);
            if p.seed.is_revealed() {
                true
            } else {
                p.haves.insert(conn, haves_tx);
                let offers = p.seed.peer_live(conn);
                p.send(offers);
                false
            }
        }
    };
    let queue = Mutex::new(Queue::default());
    let wake = Notify::new();
    let deliveries = Mutex::new(Deliveries::default());
    let written = Notify::new();
    let (rd, wr) = stream.into_split();
    let wr = Wr {
        half: wr,
        written: n as u64,
    };
    let out = Delivered {
        deliveries: acks.as_ref().map(|_| &deliveries),
        written: &written,
    };
    let r = tokio::select! {
        () = segment.gone.cancelled() => Ok(()),
        r = read_loop(&segment, rd, conn, &queue, &wake) => r,
        r = write_loop(inner, &segment, conn, wr, whole_bitfield, haves_rx, &queue, &wake, out) => r,
        () = async {
            match &acks {
                Some((sock, late_after)) => {
                    ack_loop(inner, &segment, conn, sock, *late_after, &deliveries, &written).await
                }
                None => std::future::pending().await,
            }
        } => Ok(()),
    };
    if let Some(p) = &segment.policy {
        let mut p = lock(p);
        p.haves.remove(&conn);
        let offers = p.seed.peer_gone(conn);
        p.send(offers);
    }
    r
}

async fn read_loop(
    segment: &Segment,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    conn: u64,
    queue: &Mutex<Queue>,
    wake: &Notify,
) -> Result<(), ConnError> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        // Take every whole message in the buffer, then drop them at once (not one by one: a
        // read of many small messages would be quadratic).
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize + 4;
            if len > MAX_MESSAGE {
                return Err(ConnError::TooLong(len));
            }
            if rest.len() < len {
                break;
            }
            match Message::deserialize(&rest[..len], &[]) {
                Ok((msg, _)) => on_message(segment, conn, msg, first, queue, wake)?,
                // Messages of extensions we did not announce (DHT port, fast): skipped whole.
                Err(MessageDeserializeError::UnsupportedMessageId(_)) => {}
                Err(e) => return Err(ConnError::Message(e)),
            }
            first = false;
            at += len;
        }
        buf.drain(..at);
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn on_message(
    segment: &Segment,
    conn: u64,
    msg: Message<'_>,
    first: bool,
    queue: &Mutex<Queue>,
    wake: &Notify,
) -> Result<(), ConnError> {
    match msg {
        Message::Request(r) => {
            let piece_len = segment.piece_size(r.index);
            if r.length == 0
                || r.length > MAX_REQUEST
                || piece_len.is_none_or(|l| u64::from(r.begin) + u64::from(r.length) > l)
            {
                return Err(ConnError::BadRequest {
                    index: r.index,
                    begin: r.begin,
                    length: r.length,
                });
            }
            let mut q = lock(queue);
            if q.requests.len() >= MAX_QUEUED_REQUESTS {
                return Err(ConnError::TooManyRequests);
            }
            q.requests.push_back(r);
            drop(q);
            tracing::trace!(segment = %segment.name, conn, piece = r.index, begin = r.begin, "wire seeder: request");
            wake.notify_one();
        }
        Message::Cancel(r) => {
            let mut q = lock(queue);
            if q.current.as_ref().is_some_and(|c| same(c, &r)) {
                q.current_cancelled = true;
            } else {
                q.requests.retain(|x| !same(x, &r));
            }
        }
        Message::Have(piece) => {
            tracing::trace!(segment = %segment.name, conn, piece, "wire seeder: have");
            segment.peer_has(conn, std::iter::once(piece))
        }
        // A bitfield only as the first message (BEP 3): each costs a pass over every piece.
        Message::Bitfield(_) if !first => return Err(ConnError::LateBitfield),
        Message::Bitfield(bits) => {
            let bits = bits.as_ref();
            let set = (0..segment.pieces).filter(|&i| {
                bits.get(i as usize / 8)
                    .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
            });
            segment.peer_has(conn, set);
        }
        // A seed that unchoked everyone at once has nothing to do with the rest.
        _ => {}
    }
    Ok(())
}

impl Segment {
    /// The length of piece `index`, if it exists.
    fn piece_size(&self, index: u32) -> Option<u64> {
        (index < self.pieces).then(|| {
            let start = u64::from(index) * self.piece_length;
            (self.data.len() as u64 - start).min(self.piece_length)
        })
    }

    /// `piece`, counted as `conn`'s since it was written whole, did not arrive in time.
    fn piece_late(&self, conn: u64, piece: u32) {
        let Some(p) = &self.policy else { return };
        let mut p = lock(p);
        let offers = p.seed.peer_lost(conn, piece);
        p.send(offers);
    }

    fn peer_has(&self, conn: u64, pieces: impl Iterator<Item = u32>) {
        let Some(p) = &self.policy else { return };
        let mut p = lock(p);
        let before = p.seed.first_copy_out();
        for piece in pieces {
            let offers = p.seed.peer_has(conn, piece);
            p.send(offers);
        }
        if !before && p.seed.first_copy_out() {
            // Once: the permit waits for `reveal_at` if it is not waiting yet.
            self.first_copy.notify_one();
        }
    }
}

/// Appends `msg`, encoded, to `out`.
fn put(out: &mut Vec<u8>, msg: Message<'_>) {
    let start = out.len();
    let need = 13
        + match &msg {
            Message::Piece(p) => p.len(),
            Message::Bitfield(b) => b.as_ref().len(),
            _ => 0,
        };
    out.resize(start + need, 0);
    let n = msg
        .serialize(&mut out[start..], &PeerExtendedMessageIds::default)
        .expect("the buffer was sized for the message");
    out.truncate(start + n);
}

/// A connection's write half, with the bytes written to it so far (the handshake included), to
/// compare with the bytes its peer acknowledged.
struct Wr {
    half: tokio::net::tcp::OwnedWriteHalf,
    written: u64,
}

impl Wr {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.half.write_all(bytes).await?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Where a connection's writer records pieces written whole, for [`ack_loop`] (`None`: no
/// acknowledgements are followed).
#[derive(Clone, Copy)]
struct Delivered<'a> {
    deliveries: Option<&'a Mutex<Deliveries>>,
    written: &'a Notify,
}

/// Bytes of the connection `sock` its peer acknowledged (`TCP_INFO`'s `tcpi_bytes_acked`: every
/// byte written, the handshake included, once acknowledged; Linux 4.1 and later).
#[allow(unsafe_code)]
fn tcp_bytes_acked(sock: &socket2::Socket) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is `sock`'s, open while it is borrowed; `info` is writable memory of
    // `len` bytes, and the kernel writes at most `len` bytes and sets `len` to how many.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `tcp_info` is plain integers, for which zeroed memory is a valid value; the kernel
    // overwrote the first `len` bytes with its own.
    let info = unsafe { info.assume_init() };
    let wanted =
        std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + std::mem::size_of::<u64>();
    if (len as usize) < wanted {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel's TCP_INFO has no tcpi_bytes_acked (Linux 4.1 and later)",
        ));
    }
    Ok(info.tcpi_bytes_acked)
}

/// Follows the acknowledgements of the pieces the connection's writer wrote whole: a piece not
/// acknowledged [`WireConfig::late_after`] after its writing is offered to someone else, and
/// counted back as the peer's if it arrives after all. Runs while the connection lives.
async fn ack_loop(
    inner: &Inner,
    segment: &Segment,
    conn: u64,
    sock: &socket2::Socket,
    late_after: Duration,
    deliveries: &Mutex<Deliveries>,
    written: &Notify,
) {
    loop {
        let next = lock(deliveries).next_check(std::time::Instant::now(), late_after, ACK_POLL);
        match next {
            // `notify_one` keeps a permit, so a piece written meanwhile is not missed.
            None => written.notified().await,
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        }
        let acked = match tcp_bytes_acked(sock) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(segment = %segment.name, conn, error = %e, "wire seeder: cannot follow acknowledgements");
                return std::future::pending().await;
            }
        };
        let c = lock(deliveries).check(acked, std::time::Instant::now(), late_after);
        for (piece, after) in c.arrived {
            tracing::trace!(segment = %segment.name, conn, piece, ms = after.as_millis() as u64, "wire seeder: piece acknowledged");
        }
        for piece in c.late {
            inner.counters.late_pieces.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(segment = %segment.name, conn, piece, "wire seeder: piece late, offered to another peer");
            segment.piece_late(conn, piece);
        }
        for piece in c.arrived_late {
            inner.counters.late_arrived.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(segment = %segment.name, conn, piece, "wire seeder: late piece acknowledged");
            segment.peer_has(conn, std::iter::once(piece));
        }
    }
}

/// Writes `msg` alone (`out` is the reusable buffer; its contents are replaced).
async fn write_one(wr: &mut Wr, out: &mut Vec<u8>, msg: Message<'_>) -> std::io::Result<()> {
    out.clear();
    put(out, msg);
    wr.write_all(out).await
}

/// Writes the encoded Piece message `msg` whose first `paid` payload bytes the limiter already
/// granted: those at once with the header, then each next slice once it is granted.
async fn write_paced(
    wr: &mut Wr,
    msg: &[u8],
    limiter: Option<&ByteLimiter>,
    paid: usize,
) -> std::io::Result<()> {
    let Some(l) = limiter else {
        return write_within(wr, msg).await;
    };
    // The Piece message's header: length, id, index, begin.
    let header = msg.len().min(13);
    let mut at = (header + paid).min(msg.len());
    write_within(wr, &msg[..at]).await?;
    while at < msg.len() {
        let n = (msg.len() - at).min(l.slice());
        l.take(n).await;
        write_within(wr, &msg[at..at + n]).await?;
        at += n;
    }
    Ok(())
}

/// Writes `bytes` within [`WRITE_TIMEOUT`], or fails with `TimedOut`.
async fn write_within(wr: &mut Wr, bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer took no bytes"))?
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

/// The standard block: clients request pieces in blocks of 16 KiB at 16 KiB offsets.
const BLOCK: u32 = 16 * 1024;

/// Blocks sent on one connection, per piece, to tell when a whole piece went: only standard blocks
/// count (a block at a 16 KiB offset, 16 KiB long or the piece's tail), each once, so odd or
/// overlapping requests can neither fake a whole piece nor grow the record beyond one bit per block.
#[derive(Default)]
struct Sent(HashMap<u32, Vec<bool>>);

impl Sent {
    /// Records a block of piece `index` (`piece_len` bytes); whether every block of it is sent.
    fn add(&mut self, index: u32, begin: u32, length: u32, piece_len: u64) -> bool {
        let blocks = piece_len.div_ceil(u64::from(BLOCK)) as usize;
        let standard = begin.is_multiple_of(BLOCK)
            && u64::from(length) == (piece_len - u64::from(begin)).min(u64::from(BLOCK));
        if !standard {
            return false;
        }
        let sent = self.0.entry(index).or_insert_with(|| vec![false; blocks]);
        if let Some(b) = sent.get_mut((begin / BLOCK) as usize) {
            *b = true;
        }
        sent.iter().all(|b| *b)
    }
}

/// Waits for `fut` while the connection's Haves keep going out: they are small, and they are what
/// lets the swarm spread, so they wait neither for a turn nor for the upload limit (in librqbit
/// too, Haves do not queue behind the limit). `haves_open` turns false when the channel closes.
async fn forwarding_haves<T>(
    fut: impl std::future::Future<Output = T>,
    wr: &mut Wr,
    out: &mut Vec<u8>,
    haves: &mut mpsc::UnboundedReceiver<u32>,
    haves_open: &mut bool,
) -> std::io::Result<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            v = &mut fut => return Ok(v),
            h = haves.recv(), if *haves_open => match h {
                Some(piece) => write_one(wr, out, Message::Have(piece)).await?,
                None => *haves_open = false,
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_loop(
    inner: &Inner,
    segment: &Segment,
    conn: u64,
    mut wr: Wr,
    whole_bitfield: bool,
    mut haves: mpsc::UnboundedReceiver<u32>,
    queue: &Mutex<Queue>,
    wake: &Notify,
    delivered: Delivered<'_>,
) -> Result<(), ConnError> {
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    if whole_bitfield {
        let mut bits = vec![0u8; segment.pieces.div_ceil(8) as usize];
        for i in 0..segment.pieces {
            bits[i as usize / 8] |= 0x80 >> (i % 8);
        }
        put(&mut out, Message::Bitfield(bits.as_slice().into()));
    }
    put(&mut out, Message::Unchoke);
    wr.write_all(&out).await?;
    let mut haves_open = true;
    let mut sent = Sent::default();
    // The piece this connection holds a turn for (see [`PIECES_AT_ONCE`]).
    let mut turn: Option<(u32, tokio::sync::OwnedSemaphorePermit)> = None;
    loop {
        out.clear();
        // Haves first: they are small, and they are what lets the swarm spread.
        while let Ok(piece) = haves.try_recv() {
            put(&mut out, Message::Have(piece));
        }
        let next = {
            let mut q = lock(queue);
            let r = q.requests.pop_front();
            q.current = r;
            q.current_cancelled = false;
            r
        };
        if let Some(r) = next {
            if !out.is_empty() {
                wr.write_all(&out).await?;
                out.clear();
            }
            // A turn for the piece: kept from the previous block of the same piece, or waited
            // for (Haves keep going out meanwhile).
            if turn.as_ref().is_some_and(|(piece, _)| *piece != r.index) {
                turn = None;
            }
            if let (None, Some(turns)) = (&turn, &inner.turns) {
                let acquire = turns.clone().acquire_owned();
                let permit =
                    forwarding_haves(acquire, &mut wr, &mut out, &mut haves, &mut haves_open)
                        .await?;
                turn = permit.ok().map(|p| (r.index, p));
            }
            let mut paid = r.length as usize;
            if let Some(l) = &inner.limiter {
                // The first slice is paid here (Haves keep going out meanwhile), the rest as it
                // is written.
                paid = paid.min(l.slice());
                forwarding_haves(l.take(paid), &mut wr, &mut out, &mut haves, &mut haves_open)
                    .await?;
            }
            let cancelled = {
                let mut q = lock(queue);
                q.current = None;
                std::mem::take(&mut q.current_cancelled)
            };
            if cancelled {
                turn = None;
                continue;
            }
            let start = (u64::from(r.index) * segment.piece_length + u64::from(r.begin)) as usize;
            let block = &segment.data[start..start + r.length as usize];
            out.clear();
            put(
                &mut out,
                Message::Piece(Piece::from_data(r.index, r.begin, block)),
            );
            write_paced(&mut wr, &out, inner.limiter.as_deref(), paid).await?;
            segment
                .uploaded
                .fetch_add(u64::from(r.length), Ordering::Relaxed);
            tracing::trace!(segment = %segment.name, conn, piece = r.index, begin = r.begin, "wire seeder: block written");
            let piece_len = segment.piece_size(r.index).unwrap_or(0);
            if sent.add(r.index, r.begin, r.length, piece_len) {
                // The piece is whole: the turn goes to the next piece waiting.
                turn = None;
                // Every block of the piece went to this peer: it has the piece. Its Have would
                // say so, but clients do not send a Have to a peer that announced the piece (we
                // did, offering it), so without this a lone downloader would wait for the reveal.
                segment.peer_has(conn, std::iter::once(r.index));
                // Whether it arrives is told by the peer's acknowledgements (see `ack_loop`).
                if let Some(d) = delivered.deliveries {
                    lock(d).written(r.index, wr.written, std::time::Instant::now());
                    delivered.written.notify_one();
                }
            }
            continue;
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            // A piece's next block is usually requested with the first (in the same packet, read
            // a moment later): the turn waits that long for it, no longer.
            () = tokio::time::sleep(TURN_GRACE), if turn.is_some() => turn = None,
            h = haves.recv(), if haves_open => match h {
                Some(piece) => write_one(&mut wr, &mut out, Message::Have(piece)).await?,
                None => haves_open = false,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => {
                write_one(&mut wr, &mut out, Message::KeepAlive).await?;
            }
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::address_key;

    #[test]
    fn ipv6_hosts_are_counted_by_their_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let key = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_is_sent_whole_when_each_standard_block_went_once() {
        let mut sent = Sent::default();
        let len = u64::from(BLOCK) * 2 + 100;
        // Blocks in any order; a repeat changes nothing.
        assert!(!sent.add(0, BLOCK * 2, 100, len));
        assert!(!sent.add(0, 0, BLOCK, len));
        assert!(!sent.add(0, 0, BLOCK, len));
        assert!(sent.add(0, BLOCK, BLOCK, len));
        // Odd or overlapping blocks never count: 1 + 16 KiB at offset 1 cannot fake piece 1.
        assert!(!sent.add(1, 1, BLOCK, u64::from(BLOCK) * 2));
        assert!(!sent.add(1, 0, 1, u64::from(BLOCK) * 2));
        assert!(!sent.add(1, BLOCK, BLOCK, u64::from(BLOCK) * 2));
        assert!(sent.add(1, 0, BLOCK, u64::from(BLOCK) * 2));
    }
}
