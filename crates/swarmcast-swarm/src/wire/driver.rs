//! The async driver of one wire seeder connection: the socket, the clock, the piece data, the
//! turns and the upload limit around the sans-IO [`Conn`]. Its reader feeds the connection
//! what arrives; its writer sends what the connection gives back, serves its requests (each
//! after its turn and the limiter), and keeps its timers; its acknowledgement follower tells the
//! super-seeding policy of pieces that arrive late. All three run in the connection's task.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use librqbit_peer_protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use super::conn::{encode_piece, Close, Conn, Event, Limits};
use super::policy::{Deliveries, Unrequested};
use super::tcpinfo::{tcp_bytes_acked, tcp_info};
use super::{lock, ConnGuard, Inner, Segment, NOTSENT_LOWAT, TURN_GRACE, WRITE_TIMEOUT};

/// How often a connection with pieces in flight reads how much its peer acknowledged.
const ACK_POLL: Duration = Duration::from_millis(100);

/// Why a connection ended (counted in [`super::WireCounters`] by [`Close::outcome`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("closed before its handshake: {0}")]
    HandshakeIo(std::io::Error),
    #[error("{0}")]
    Closed(#[from] Close),
}

/// Serves one accepted connection until it ends.
pub(super) async fn serve(inner: &Inner, mut stream: TcpStream, id: u64) -> Result<(), ConnError> {
    stream.set_nodelay(true)?;
    // Unsent bytes stay within one block: a write returns when its bytes are about to leave, not
    // when they are parked in a send buffer of megabytes. So a piece counts as sent (and the
    // super-seeding policy moves on) close to when it leaves, and pieces for a viewer that went
    // away are not queued for seconds ahead of everybody else's.
    socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT)?;
    let mut conn = Conn::new(Instant::now(), Limits::default());
    if inner.manifests.is_some() {
        conn.speak_extension();
    }
    let (info_hash, peer_id) = handshake(&mut conn, &mut stream).await?;
    let Some(segment) = lock(&inner.segments).get(&info_hash).cloned() else {
        return Err(Close::UnknownTorrent.into());
    };
    let _live = ConnGuard::new(&segment);
    tracing::trace!(segment = %segment.name, conn = id, peer = ?stream.peer_addr().ok(), "wire seeder: connection");
    // Super-seeding with late pieces re-offered: a second handle on the socket, to read how much
    // the peer acknowledged while the halves are busy reading and writing.
    let acks = match (&segment.policy, inner.late_after) {
        (Some(_), Some(late_after)) => {
            Some((socket2::SockRef::from(&stream).try_clone()?, late_after))
        }
        _ => None,
    };
    let address = stream.peer_addr().ok().map(|a| super::address_key(a.ip()));
    let peer_ip = stream
        .peer_addr()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let (haves_tx, haves_rx) = mpsc::unbounded_channel();
    let whole_bitfield = join_policy(inner, &segment, id, address, haves_tx);
    let now = Instant::now();
    conn.accept(
        now,
        segment.layout,
        segment.info_hash,
        inner.peer_id,
        whole_bitfield,
    );
    let offer_wait = offer_wait(inner, &segment, &stream);
    let conn = Mutex::new(conn);
    let wake = Notify::new();
    let offers = Offers {
        pending: Mutex::new(Unrequested::default()),
        added: Notify::new(),
        track: offer_wait.is_some(),
    };
    let deliveries = Mutex::new(Deliveries::default());
    let written = Notify::new();
    let (rd, wr) = stream.into_split();
    // The manifest exchange's messages for this connection (when the seeder carries manifests).
    let (ext_tx, ext_rx) = mpsc::channel(super::manifests::EXT_QUEUE);
    let exchange_peer = (peer_id, peer_ip);
    let _leave = inner.manifests.as_ref().map(|hub| LeaveHub {
        hub: hub.as_ref(),
        peer: exchange_peer,
        conn: id,
    });
    let link = Link {
        inner,
        segment: &segment,
        id,
        address,
        conn: &conn,
        wake: &wake,
        offers: &offers,
        exchange_peer,
        ext_tx: &ext_tx,
    };
    let delivered = Delivered {
        deliveries: acks.as_ref().map(|_| &deliveries),
        written: &written,
    };
    let r = tokio::select! {
        () = segment.gone.cancelled() => Ok(()),
        r = async { link.drain()?; read_loop(link, rd).await } => r,
        r = write_loop(link, Wr { half: wr, written: 0 }, haves_rx, ext_rx, delivered) => r,
        () = async {
            match &acks {
                Some((sock, late_after)) => {
                    ack_loop(inner, &segment, id, sock, *late_after, &deliveries, &written).await
                }
                None => std::future::pending().await,
            }
        } => Ok(()),
        () = async {
            match offer_wait {
                Some(wait) => offer_loop(link, wait).await,
                None => std::future::pending().await,
            }
        } => Ok(()),
    };
    if let Some(p) = &segment.policy {
        let mut p = lock(p);
        p.haves.remove(&id);
        let offers = p.seed.peer_gone(id);
        p.send(offers);
    }
    r
}

/// Registers connection `id` with the segment's super-seeding policy (offers go to `haves`);
/// whether it is sent the whole bitfield instead (not super-seeding, or after the reveal). A
/// connection from an address known to download is offered pieces first.
fn join_policy(
    inner: &Inner,
    segment: &Segment,
    id: u64,
    address: Option<std::net::IpAddr>,
    haves: mpsc::UnboundedSender<u32>,
) -> bool {
    let Some(p) = &segment.policy else {
        return true;
    };
    let mut p = lock(p);
    if p.seed.is_revealed() {
        return true;
    }
    let known_downloader = address.is_some_and(|a| lock(&inner.downloaders).contains(&a));
    p.haves.insert(id, haves);
    let offers = if known_downloader {
        p.seed.peer_live_downloader(id)
    } else {
        p.seed.peer_live(id)
    };
    p.send(offers);
    false
}

/// Super-seeding: how long offers not asked for wait before they go to somebody else (four of
/// the connection's round trips, at least the configured wait); `None`: not followed.
fn offer_wait(inner: &Inner, segment: &Segment, stream: &TcpStream) -> Option<Duration> {
    segment.policy.as_ref().and(inner.offer_wait).map(|wait| {
        let rtt = tcp_info(&socket2::SockRef::from(stream))
            .map(|i| Duration::from_micros(u64::from(i.tcpi_rtt)))
            .unwrap_or_default();
        wait.max(4 * rtt)
    })
}

/// Takes a connection out of the manifest exchange when it ends, however it ends.
struct LeaveHub<'a> {
    hub: &'a super::manifests::ManifestHub,
    peer: super::manifests::Peer,
    conn: u64,
}

impl Drop for LeaveHub<'_> {
    fn drop(&mut self) {
        self.hub.leave(self.peer, self.conn);
    }
}

/// Reads until the peer's handshake is in (or the connection's deadline passes): the torrent it
/// wants and its peer id.
async fn handshake(
    conn: &mut Conn,
    stream: &mut TcpStream,
) -> Result<([u8; 20], [u8; 20]), ConnError> {
    let mut chunk = vec![0u8; 4096];
    // Bounded in time: the connection closes itself at its handshake deadline.
    loop {
        match conn.poll_event() {
            Some(Event::Handshake { info_hash, peer_id }) => return Ok((info_hash, peer_id)),
            Some(Event::Closed(reason)) => return Err(reason.into()),
            Some(
                Event::Has(_) | Event::Requested(_) | Event::ExtensionPeer | Event::Extension(_),
            ) => continue,
            None => {}
        }
        let Some(deadline) = conn.poll_timeout() else {
            return Err(Close::HandshakeClosed.into());
        };
        tokio::select! {
            r = stream.read(&mut chunk) => {
                let n = r.map_err(ConnError::HandshakeIo)?;
                if n == 0 {
                    conn.handle_eof(Instant::now());
                } else {
                    conn.handle_input(Instant::now(), &chunk[..n]);
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => conn.handle_timeout(Instant::now()),
        }
    }
}

/// What the reader and the writer of a connection share.
#[derive(Clone, Copy)]
struct Link<'a> {
    inner: &'a Inner,
    segment: &'a Segment,
    id: u64,
    conn: &'a Mutex<Conn>,
    /// Notified when the connection may have something for the writer.
    wake: &'a Notify,
    /// The offers its peer has not asked for yet.
    offers: &'a Offers,
    /// Its peer's address ([`super::address_key`]).
    address: Option<std::net::IpAddr>,
    /// Its peer's id and IP address (the manifest exchange's name for the peer).
    exchange_peer: super::manifests::Peer,
    /// Where the manifest exchange sends this connection's messages.
    ext_tx: &'a mpsc::Sender<bytes::Bytes>,
}

/// A connection's offers not asked for yet (super-seeding only: `track`).
struct Offers {
    pending: Mutex<Unrequested>,
    /// Notified when an offer is made.
    added: Notify,
    track: bool,
}

impl Offers {
    /// `piece` was announced to the peer now.
    fn announced(&self, piece: u32) {
        if self.track {
            lock(&self.pending).offered(piece, Instant::now());
            self.added.notify_one();
        }
    }
}

impl Link<'_> {
    /// Acts on the connection's events: the pieces the peer has go to the super-seeding policy;
    /// its end is an error.
    fn drain(&self) -> Result<(), ConnError> {
        let mut has = Vec::new();
        let mut asked = Vec::new();
        let mut closed = None;
        let mut joined = false;
        let mut payloads = Vec::new();
        {
            let mut c = lock(self.conn);
            while let Some(e) = c.poll_event() {
                match e {
                    Event::Has(piece) => has.push(piece),
                    Event::Requested(piece) => asked.push(piece),
                    Event::Closed(reason) => closed = Some(reason),
                    Event::Handshake { .. } => {}
                    Event::ExtensionPeer => joined = true,
                    Event::Extension(p) => payloads.push(p),
                }
            }
        }
        if let Some(hub) = &self.inner.manifests {
            if joined {
                hub.join(self.exchange_peer, self.id, self.ext_tx.clone());
            }
            for p in payloads {
                hub.on_payload(self.exchange_peer, &p);
            }
        }
        for &piece in &has {
            tracing::trace!(segment = %self.segment.name, conn = self.id, piece, "wire seeder: have");
        }
        if !asked.is_empty() {
            let mut offers = lock(&self.offers.pending);
            asked.iter().for_each(|&piece| offers.requested(piece));
            drop(offers);
            self.segment.peer_asked(self.id, &asked);
            if let Some(a) = self.address {
                let mut known = lock(&self.inner.downloaders);
                if known.len() >= super::DOWNLOADERS_KEPT {
                    known.clear();
                }
                known.insert(a);
            }
        }
        if !has.is_empty() {
            self.segment.peer_has(self.id, has.into_iter(), true);
        }
        match closed {
            Some(reason) => Err(reason.into()),
            None => Ok(()),
        }
    }
}

async fn read_loop(
    link: Link<'_>,
    mut rd: tokio::net::tcp::OwnedReadHalf,
) -> Result<(), ConnError> {
    let mut chunk = vec![0u8; 64 * 1024];
    // Ends at the peer's close, a violation, or the connection's idle timeout (the writer's).
    loop {
        let n = rd.read(&mut chunk).await?;
        {
            let mut c = lock(link.conn);
            if n == 0 {
                c.handle_eof(Instant::now());
            } else {
                c.handle_input(Instant::now(), &chunk[..n]);
            }
        }
        link.drain()?;
        link.wake.notify_one();
    }
}

/// The writer's side work while it waits: the Haves the policy sends (they are small, and they
/// are what lets the swarm spread, so they wait neither for a turn nor for the upload limit; in
/// librqbit too, Haves do not queue behind the limit) and the connection's timers.
struct Side {
    haves: mpsc::UnboundedReceiver<u32>,
    haves_open: bool,
    /// The manifest exchange's messages for the peer.
    ext: mpsc::Receiver<bytes::Bytes>,
    out: Vec<u8>,
}

impl Side {
    /// Writes what the connection has to send (Haves received first).
    async fn flush(&mut self, link: Link<'_>, wr: &mut Wr) -> Result<(), ConnError> {
        self.out.clear();
        {
            let mut c = lock(link.conn);
            while let Ok(piece) = self.haves.try_recv() {
                if c.announce(piece) {
                    link.offers.announced(piece);
                }
            }
            while let Ok(payload) = self.ext.try_recv() {
                c.send_extension(&payload);
            }
            c.poll_transmit(Instant::now(), &mut self.out);
        }
        if !self.out.is_empty() {
            wr.write_all(&self.out).await?;
        }
        Ok(())
    }

    /// Waits for the connection's next side work, a Have to announce or a timer, and takes it to
    /// the connection (cancel-safe: nothing is written here; the caller then
    /// [`drain`](Link::drain)s and [`flush`](Self::flush)es).
    async fn next(&mut self, link: Link<'_>) {
        let deadline = lock(link.conn).poll_timeout();
        tokio::select! {
            h = self.haves.recv(), if self.haves_open => match h {
                Some(piece) => {
                    if lock(link.conn).announce(piece) {
                        link.offers.announced(piece);
                    }
                }
                None => self.haves_open = false,
            },
            () = sleep_until(deadline) => lock(link.conn).handle_timeout(Instant::now()),
            // The sender lives as long as the connection: never `None` here.
            Some(payload) = self.ext.recv() => {
                lock(link.conn).send_extension(&payload);
            }
        }
    }

    /// Waits for `fut` while the side work goes on.
    async fn during<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
        link: Link<'_>,
        wr: &mut Wr,
    ) -> Result<T, ConnError> {
        tokio::pin!(fut);
        // Bounded by `fut` (a turn or the limiter) and by the connection's timers.
        loop {
            tokio::select! {
                v = &mut fut => return Ok(v),
                () = self.next(link) => {}
            }
            link.drain()?;
            self.flush(link, wr).await?;
        }
    }
}

/// Sleeps until `at`; for ever if `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn write_loop(
    link: Link<'_>,
    mut wr: Wr,
    haves: mpsc::UnboundedReceiver<u32>,
    ext: mpsc::Receiver<bytes::Bytes>,
    delivered: Delivered<'_>,
) -> Result<(), ConnError> {
    let Link {
        inner, segment, id, ..
    } = link;
    let mut side = Side {
        haves,
        haves_open: true,
        ext,
        out: Vec::with_capacity(1024),
    };
    let mut block: Vec<u8> = Vec::with_capacity(64 * 1024);
    // The piece this connection holds a turn for (see [`super::PIECES_AT_ONCE`]).
    let mut turn: Option<(u32, tokio::sync::OwnedSemaphorePermit)> = None;
    // Ends when the connection does (a timer, a write that fails or times out).
    loop {
        // Haves and control bytes first: they are small, and they are what lets the swarm spread.
        side.flush(link, &mut wr).await?;
        let next = lock(link.conn).next_request();
        let Some(r) = next else {
            tokio::select! {
                () = link.wake.notified() => {}
                // A piece's next block is usually requested with the first (in the same packet,
                // read a moment later): the turn waits that long for it, no longer.
                () = tokio::time::sleep(TURN_GRACE), if turn.is_some() => turn = None,
                () = side.next(link) => link.drain()?,
            }
            continue;
        };
        tracing::trace!(segment = %segment.name, conn = id, piece = r.index, begin = r.begin, "wire seeder: request");
        // A turn for the piece: kept from the previous block of the same piece, or waited for.
        if turn.as_ref().is_some_and(|(piece, _)| *piece != r.index) {
            turn = None;
        }
        if let (None, Some(turns)) = (&turn, &inner.turns) {
            let permit = side
                .during(turns.clone().acquire_owned(), link, &mut wr)
                .await?;
            turn = permit.ok().map(|p| (r.index, p));
        }
        let mut paid = r.length as usize;
        if let Some(l) = &inner.limiter {
            // The first slice is paid here, the rest as it is written.
            paid = paid.min(l.slice());
            side.during(l.take(paid), link, &mut wr).await?;
        }
        let Some(r) = lock(link.conn).begin_block() else {
            // Cancelled meanwhile.
            turn = None;
            continue;
        };
        let Some(range) = segment.layout.block(&r) else {
            continue; // checked when it was requested
        };
        block.clear();
        encode_piece(
            &mut block,
            &r,
            &segment.data[range.start as usize..range.end as usize],
        );
        write_paced(&mut wr, &block, inner.limiter.as_deref(), paid).await?;
        let whole = lock(link.conn).block_written(Instant::now(), &r);
        served(segment, id, &r, whole, &wr, delivered);
        if whole.is_some() {
            // The piece is whole: the turn goes to the next piece waiting.
            turn = None;
        }
    }
}

/// Counts block `r`, written; if it completed the piece `whole`, tells the policy.
fn served(
    segment: &Segment,
    id: u64,
    r: &Request,
    whole: Option<u32>,
    wr: &Wr,
    delivered: Delivered<'_>,
) {
    segment
        .uploaded
        .fetch_add(u64::from(r.length), Ordering::Relaxed);
    tracing::trace!(segment = %segment.name, conn = id, piece = r.index, begin = r.begin, "wire seeder: block written");
    let Some(piece) = whole else { return };
    // Every block of the piece went to this peer: it has the piece. Its Have would say so, but
    // clients do not send a Have to a peer that announced the piece (we did, offering it), so
    // without this a lone downloader would wait for the reveal.
    segment.peer_has(id, std::iter::once(piece), false);
    // Whether it arrives is told by the peer's acknowledgements (see `ack_loop`).
    if let Some(d) = delivered.deliveries {
        lock(d).written(piece, wr.written, Instant::now());
        delivered.written.notify_one();
    }
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

/// Writes the encoded Piece message `msg` whose first `paid` payload bytes the limiter already
/// granted: those at once with the header, then each next slice once it is granted.
async fn write_paced(
    wr: &mut Wr,
    msg: &[u8],
    limiter: Option<&crate::ratelimit::ByteLimiter>,
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

/// Follows the acknowledgements of the pieces the connection's writer wrote whole: a piece not
/// acknowledged [`super::WireConfig::late_after`] after its writing is offered to someone else,
/// and counted back as the peer's if it arrives after all. Runs while the connection lives.
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
        let next = lock(deliveries).next_check(Instant::now(), late_after, ACK_POLL);
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
        let c = lock(deliveries).check(acked, Instant::now(), late_after);
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
            segment.peer_has(conn, std::iter::once(piece), false);
        }
    }
}

/// Makes offers its peer did not ask for in time (see [`Unrequested`]) to other peers. Runs while
/// the connection lives.
async fn offer_loop(link: Link<'_>, wait: Duration) {
    loop {
        let next = lock(&link.offers.pending).next_deadline(wait);
        match next {
            // `notify_one` keeps a permit, so an offer made meanwhile is not missed.
            None => link.offers.added.notified().await,
            Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        }
        let busy = lock(link.conn).queued() > 0;
        let expired = lock(&link.offers.pending).expired(Instant::now(), wait, busy);
        for piece in expired {
            if link.segment.offer_ignored(link.id, piece) {
                link.inner
                    .counters
                    .offers_ignored
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(segment = %link.segment.name, conn = link.id, piece, "wire seeder: offer not asked for, offered to another peer");
            }
        }
    }
}
