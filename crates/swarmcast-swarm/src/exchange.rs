//! Manifests carried by the swarm, over a librqbit session: the I/O around
//! [`swarmcast_core::gossip::Gossip`].
//!
//! [`Exchange::start`] returns the handler to give the session ([`SwarmConfig::extension`]) and
//! a handle. librqbit hands every connection whose peer announced `swarmcast_manifest` and every
//! message it sends on it to the handler; one task owns the gossip state, keyed by the peer's
//! id and IP address (one remote met in several segment swarms, on several connections, is one
//! peer, reached on any of its live connections; the id is the remote's to choose, and with the
//! address another host cannot speak for it). Every document a peer sends is verified with the exchange's own
//! [`Verifier`], pinned to the stream key, exactly as the HTTP poller verifies: a newer one is
//! reported ([`ExchangeEvent::Manifest`]) and spread; a bad one is reported with its typed error
//! ([`ExchangeEvent::Refused`]) and spread to nobody. A manifest the owner got elsewhere (HTTP,
//! the publisher's pipeline) is offered with [`Exchange::offer`].
//!
//! [`SwarmConfig::extension`]: crate::SwarmConfig::extension

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use librqbit::extension::{ExtensionHandler, ExtensionPeer};
use librqbit_core::hash_id::Id20;
use swarmcast_core::gossip::{Gossip, GossipConfig, GossipStats, Message, Reassembly};
use swarmcast_core::{ManifestError, SignedManifest, StreamKey, Verdict, Verifier};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often connections that closed are dropped (and peers left with none forgotten).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Refusals from one peer (peer id and IP address) after which its messages are ignored and it
/// is dropped from the exchange: each refusal costs a signature check and a `manifest_refused`
/// record, so a peer sending forgeries must not get them without end. A new peer id is a new
/// peer (and a new connection to make): the records a connection can cause are bounded.
pub const MAX_REFUSALS: u32 = 8;

/// Peers whose refusals are counted, at most: past that the counts start over (a bound on the
/// memory a stream of peer ids can take).
const REFUSALS_KEPT: usize = 65_536;

/// Peers' messages waiting for the exchange's task, at most (each at most 16 KiB): past that
/// (peers sending faster than the task verifies) new ones are dropped and counted.
pub const MESSAGE_QUEUE: usize = 1024;

/// What the exchange reports to its owner.
#[derive(Debug)]
pub enum ExchangeEvent {
    /// A verified manifest newer than any the exchange held, from a peer.
    Manifest {
        /// The manifest.
        manifest: Arc<SignedManifest>,
        /// The peer that sent it.
        from: SocketAddr,
        /// Bytes of the messages that carried it (one, or every part of a document sent in
        /// parts).
        bytes: u64,
        /// It came as a delta from the manifest held before.
        delta: bool,
    },
    /// A message refused: not a message of the extension, or a document that does not verify.
    Refused {
        /// The peer that sent it.
        from: SocketAddr,
        /// Why.
        error: ManifestError,
    },
}

enum Input {
    Peer(ExtensionPeer),
    Message(SocketAddr, Vec<u8>),
    Offer(Arc<[u8]>),
    Sources(Vec<SocketAddr>),
    BehindNat(bool),
}

/// The handler librqbit calls (see [`Exchange::start`]).
pub struct Handler {
    /// Peers and the owner's offers: never dropped (peers are bounded by the session's
    /// connections). The task takes these before messages, so a peer's first message never
    /// overtakes the peer.
    tx: mpsc::UnboundedSender<Input>,
    /// Peers' messages: bounded ([`MESSAGE_QUEUE`]).
    messages: mpsc::Sender<Input>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// The exchange's counters shared with its handle.
#[derive(Debug, Default)]
struct Shared {
    stats: Mutex<GossipStats>,
    /// Messages from peers refused [`MAX_REFUSALS`] times, ignored.
    ignored: std::sync::atomic::AtomicU64,
    /// Where the peers with a live connection listen ([`Exchange::live_peers`]).
    listening: Mutex<Vec<SocketAddr>>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("exchange::Handler")
    }
}

impl ExtensionHandler for Handler {
    fn on_peer(&self, _info_hash: Id20, peer: ExtensionPeer) {
        let _ = self.tx.send(Input::Peer(peer));
    }

    fn on_message(&self, _info_hash: Id20, addr: SocketAddr, payload: &[u8]) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self
            .messages
            .try_send(Input::Message(addr, payload.to_vec()))
        {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The owner's handle on a running exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    tx: mpsc::UnboundedSender<Input>,
    shared: Arc<Shared>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Exchange {
    /// Starts the exchange for the stream `key` as a task of `tasks` (it runs until they are
    /// cancelled, or its owner drops `events`' receiver). Returns the handle and the handler to
    /// put in the session's options.
    pub fn start(
        key: StreamKey,
        config: GossipConfig,
        events: mpsc::Sender<ExchangeEvent>,
        tasks: &swarmcast_tasks::Tasks,
    ) -> (Self, Arc<Handler>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (messages, messages_rx) = mpsc::channel(MESSAGE_QUEUE);
        let shared = Arc::new(Shared::default());
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = Task {
            gossip: Gossip::new(config.seeded()),
            verifier: Verifier::new(key),
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            sources: Vec::new(),
            parts: HashMap::new(),
            refusals: HashMap::new(),
            ignored_addrs: Default::default(),
            last: None,
            events,
            shared: shared.clone(),
        };
        tasks.spawn(
            "manifest-exchange",
            task.run(rx, messages_rx, tasks.token().clone()),
        );
        (
            Self {
                tx: tx.clone(),
                shared,
                dropped: dropped.clone(),
            },
            Arc::new(Handler {
                tx,
                messages,
                dropped,
            }),
        )
    }

    /// A manifest the owner accepted from elsewhere: spread it if newer.
    pub fn offer(&self, doc: Arc<[u8]>) {
        let _ = self.tx.send(Input::Offer(doc));
    }

    /// The stream's sources: the publisher's seeder at these addresses (those a viewer dials,
    /// from the manifest). A peer met on a connection to one of them is never pushed to, only
    /// sent a `have` ([`Gossip::add_source`]): it holds every manifest first and announces
    /// none, so pushes to it would be wasted. Replaces the addresses given before.
    pub fn set_sources(&self, addrs: Vec<SocketAddr>) {
        let _ = self.tx.send(Input::Sources(addrs));
    }

    /// This viewer is behind a NAT (peers see it at an address its host lacks:
    /// [`Swarm::behind_nat`](crate::Swarm::behind_nat)), or no longer: its peers are told
    /// ([`Gossip::set_behind_nat`]), so that viewers push to it first.
    pub fn set_behind_nat(&self, behind_nat: bool) {
        let _ = self.tx.send(Input::BehindNat(behind_nat));
    }

    /// The exchange's counters.
    pub fn stats(&self) -> GossipStats {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the exchange's peers with a live connection listen, one address per peer, sorted:
    /// the listen port each gave in its extended handshake (BEP 10's `p`) at the address it
    /// connected from. The stream's sources ([`Self::set_sources`]), peers that gave no port
    /// and peers dropped for their refusals are left out. Up to date within [`PRUNE_EVERY`]
    /// of a connection closing, at once for a new one. A viewer dials these for its next
    /// segments (docs/manifest.md, "Peers carried from segment to segment").
    pub fn live_peers(&self) -> Vec<SocketAddr> {
        self.shared
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Messages ignored because their peer was refused [`MAX_REFUSALS`] times.
    pub fn messages_ignored(&self) -> u64 {
        self.shared
            .ignored
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Peers' messages dropped because [`MESSAGE_QUEUE`] were waiting.
    pub fn messages_dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A peer of the exchange: its peer id and IP address.
type PeerKey = ([u8; 20], std::net::IpAddr);

struct Task {
    gossip: Gossip<PeerKey>,
    verifier: Verifier,
    conns: HashMap<PeerKey, Vec<ExtensionPeer>>,
    /// Which peer each connection (by its address) belongs to.
    by_addr: HashMap<SocketAddr, PeerKey>,
    /// The stream's sources' addresses ([`Exchange::set_sources`]).
    sources: Vec<SocketAddr>,
    /// Per peer: its documents sent in parts, being put together.
    parts: HashMap<PeerKey, Reassembly>,
    /// Per peer: its messages refused (at [`MAX_REFUSALS`], it is ignored).
    refusals: HashMap<PeerKey, u32>,
    /// The connections of the peers ignored (their messages are counted as ignored).
    ignored_addrs: std::collections::HashSet<SocketAddr>,
    /// The newest manifest accepted (what the next one's delta applies to).
    last: Option<Arc<SignedManifest>>,
    events: mpsc::Sender<ExchangeEvent>,
    shared: Arc<Shared>,
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Input>,
        mut messages: mpsc::Receiver<Input>,
        cancel: CancellationToken,
    ) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timeout = self.gossip.poll_timeout();
            tokio::select! {
                // Peers before their messages (and timers before a flood of messages).
                biased;
                _ = cancel.cancelled() => return,
                input = rx.recv() => match input {
                    None => return,
                    Some(input) => {
                        if self.on_input(input).await.is_err() {
                            return;
                        }
                    }
                },
                _ = async {
                    match timeout {
                        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
                        None => std::future::pending().await,
                    }
                } => self.gossip.handle_timeout(Instant::now().into_std()),
                _ = prune.tick() => self.prune(),
                Some(input) = messages.recv() => {
                    if self.on_input(input).await.is_err() {
                        return;
                    }
                }
            }
            // The counters before the messages leave: whoever sees a message arrive sees it
            // counted.
            *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.gossip.stats();
            self.flush();
        }
    }

    /// Err: the owner is gone.
    async fn on_input(&mut self, input: Input) -> Result<(), ()> {
        match input {
            Input::Peer(peer) => {
                let key = (peer.peer_id().0, peer.addr().ip());
                if self.is_ignored(&key) {
                    // (A count's bound: the addresses only make messages count as ignored.)
                    if self.ignored_addrs.len() >= REFUSALS_KEPT {
                        self.ignored_addrs.clear();
                    }
                    self.ignored_addrs.insert(peer.addr());
                    return Ok(());
                }
                self.by_addr.insert(peer.addr(), key);
                let conns = self.conns.entry(key).or_default();
                // A repeated extended handshake on a connection replaces its entry.
                conns.retain(|c| !c.same_connection(&peer) && !c.is_closed());
                let source = self.sources.contains(&peer.addr());
                conns.push(peer);
                if source {
                    self.gossip.add_source(key);
                } else {
                    self.gossip.add_peer(key);
                }
                self.publish_listening();
            }
            Input::Sources(addrs) => {
                for (addr, key) in &self.by_addr {
                    if addrs.contains(addr) && self.conns.contains_key(key) {
                        self.gossip.add_source(*key);
                    }
                }
                self.sources = addrs;
                self.publish_listening();
            }
            Input::BehindNat(yes) => self.gossip.set_behind_nat(yes),
            Input::Offer(doc) => {
                // Already verified by the owner; our verifier learns it too (so that an older
                // document from a peer is not reported as newer).
                if let Ok(Verdict::New(m)) = self.verifier.accept(&doc) {
                    self.spread(Arc::new(m), None);
                }
            }
            Input::Message(from, payload) => {
                let now = Instant::now().into_std();
                let Some(&key) = self.by_addr.get(&from) else {
                    // Not (or no longer) a peer of the exchange: one never added, or one
                    // refused too often.
                    if self.ignored_addrs.contains(&from) {
                        self.shared
                            .ignored
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    return Ok(());
                };
                let (msg, len) = match self.parts.entry(key).or_default().push(&payload) {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(()), // a part, not the last
                    Err(error) => {
                        self.refused(key, ExchangeEvent::Refused { from, error });
                        return Ok(());
                    }
                };
                let delta_of = match &msg {
                    Message::Delta { seq, .. } => Some(*seq),
                    _ => None,
                };
                let Some(doc) = self.gossip.on_message(key, msg, len, now) else {
                    return Ok(());
                };
                let verdict = match delta_of {
                    Some(_) => self.verifier.accept_delta(&doc),
                    None => self.verifier.accept(&doc),
                };
                match verdict {
                    Ok(Verdict::New(m)) => {
                        let m = Arc::new(m);
                        self.spread(m.clone(), Some(key));
                        let event = ExchangeEvent::Manifest {
                            manifest: m,
                            from,
                            bytes: len as u64,
                            delta: delta_of.is_some(),
                        };
                        return self.report(event).await;
                    }
                    Ok(Verdict::Unchanged) => {}
                    // A delta from another base than the manifest held: not the peer's fault
                    // (it was told this node held that one); the whole document is asked for.
                    Err(ManifestError::DeltaBase { .. }) if delta_of.is_some() => {
                        let seq = delta_of.expect("checked");
                        self.gossip.delta_unusable(key, seq, now);
                    }
                    Err(error) => self.refused(key, ExchangeEvent::Refused { from, error }),
                }
            }
        }
        Ok(())
    }

    /// A manifest newly accepted (from `from`, or from the owner): spread, as a delta from the
    /// one accepted before it to the peers known to hold that one.
    fn spread(&mut self, m: Arc<SignedManifest>, from: Option<PeerKey>) {
        self.gossip.accept_manifest(&m, self.last.as_deref(), from);
        self.last = Some(m);
    }

    async fn report(&self, event: ExchangeEvent) -> Result<(), ()> {
        self.events.send(event).await.map_err(|_| ())
    }

    /// Reports a refusal if the owner has room for it: a peer sending garbage must not hold up
    /// the exchange (the task does not wait for the owner), nor fill the owner's records. The
    /// [`MAX_REFUSALS`]th refusal of a peer drops it: its connections are forgotten and its
    /// messages ignored from then on.
    fn refused(&mut self, key: PeerKey, event: ExchangeEvent) {
        if self.events.try_send(event).is_err() {
            tracing::debug!("manifest exchange: a refusal not reported (the owner is busy)");
        }
        if self.refusals.len() >= REFUSALS_KEPT && !self.refusals.contains_key(&key) {
            self.refusals.clear();
            self.ignored_addrs.clear();
        }
        let n = self.refusals.entry(key).or_default();
        *n += 1;
        if *n == MAX_REFUSALS {
            tracing::warn!(ip = %key.1, refusals = MAX_REFUSALS, "manifest exchange: a peer sent only refused messages; ignoring it");
            self.conns.remove(&key);
            self.parts.remove(&key);
            let ignored = &mut self.ignored_addrs;
            self.by_addr.retain(|addr, k| {
                let keep = *k != key;
                if !keep {
                    ignored.insert(*addr);
                }
                keep
            });
            self.gossip.remove_peer(key);
            self.publish_listening();
        }
    }

    /// Whether `key` was refused [`MAX_REFUSALS`] times.
    fn is_ignored(&self, key: &PeerKey) -> bool {
        self.refusals.get(key).is_some_and(|n| *n >= MAX_REFUSALS)
    }

    fn flush(&mut self) {
        while let Some((key, msg)) = self.gossip.poll_transmit() {
            let payloads: Vec<bytes::Bytes> =
                msg.payloads().into_iter().map(bytes::Bytes::from).collect();
            let conns = self.conns.entry(key).or_default();
            conns.retain(|c| !c.is_closed());
            if conns.is_empty() {
                tracing::debug!(ip = %key.1, "manifest exchange: no live connection to the peer");
                self.conns.remove(&key);
                self.parts.remove(&key);
                self.gossip.remove_peer(key);
                continue;
            }
            // Any live connection to the peer with room for every part carries it, every part
            // on the same one: the newest first (the oldest are those of segments about to be
            // forgotten). A connection without room is not reading (librqbit's
            // `extension::MAX_QUEUED`).
            let first = &payloads[0];
            let Some(conn) = conns
                .iter()
                .rev()
                .find(|c| c.room() >= payloads.len() && c.send(first.clone()))
            else {
                tracing::debug!(ip = %key.1, len = first.len(), "manifest exchange: message not sent");
                continue;
            };
            if !payloads[1..].iter().all(|p| conn.send(p.clone())) {
                tracing::debug!(ip = %key.1, "manifest exchange: a document's parts not all sent");
            }
        }
    }

    fn prune(&mut self) {
        let mut gone = Vec::new();
        self.conns.retain(|key, conns| {
            conns.retain(|c| !c.is_closed());
            if conns.is_empty() {
                gone.push(*key);
            }
            !conns.is_empty()
        });
        for key in gone {
            self.parts.remove(&key);
            self.gossip.remove_peer(key);
        }
        let conns = &self.conns;
        self.by_addr.retain(|addr, key| {
            conns
                .get(key)
                .is_some_and(|list| list.iter().any(|c| c.addr() == *addr))
        });
        self.publish_listening();
    }

    /// Updates what [`Exchange::live_peers`] reads.
    fn publish_listening(&self) {
        let sources = &self.sources;
        let mut addrs: Vec<SocketAddr> = self
            .conns
            .values()
            .filter(|conns| !conns.iter().any(|c| sources.contains(&c.addr())))
            .filter_map(|conns| {
                conns
                    .iter()
                    .filter(|c| !c.is_closed())
                    .find_map(|c| c.listen_addr())
            })
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        *self
            .shared
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = addrs;
    }
}

/// Why [`fetch_manifest`] got no manifest from a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting, reading or writing failed.
    #[error("{peer}: {source}")]
    Io {
        /// The peer.
        peer: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The peer does not speak the manifest exchange, or broke the protocol.
    #[error("{peer}: {reason}")]
    Protocol {
        /// The peer.
        peer: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The TCP connection was not made within [`FETCH_CONNECT_WAIT`] (a peer behind a NAT,
    /// announced at an address nobody can dial, never answers).
    #[error("{peer}: no connection within {waited:?}")]
    ConnectTimeout {
        /// The peer.
        peer: SocketAddr,
        /// How long.
        waited: Duration,
    },
    /// No manifest as new as asked for within the time given.
    #[error("{peer}: no manifest {want} or newer within {waited:?}")]
    Timeout {
        /// The peer.
        peer: SocketAddr,
        /// The sequence number asked for.
        want: u64,
        /// How long.
        waited: Duration,
    },
}

/// How long [`fetch_manifest`] waits for the TCP connection (within its whole wait): a SYN
/// lost once is sent again after 1 s, and answered by 1.3 s at a 300 ms round trip. A viewer
/// joining from the DHT asks the next peer meanwhile, but when the only peer found is one
/// behind a NAT (lab n26: 3 joins at the stream's start), the attempt ends after this, not
/// after the fetch's whole wait, and the next one finds the publisher's announce.
pub const FETCH_CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The largest message [`fetch_manifest`] reads (a manifest is far smaller; piece messages of
/// 16 KiB blocks are skipped on the way).
const FETCH_MAX_MESSAGE: usize = 1 << 20;

/// Asks one peer of the torrent `info_hash` for the stream's manifest `want` or newer, as a
/// viewer that has only the stream's key does after finding the peer on the DHT: a BitTorrent
/// handshake for the torrent, an extended handshake naming the manifest exchange, a `want`,
/// and the first manifest document the peer sends back (unverified: the caller verifies it).
/// Bounded by `wait` in all, and the connection by [`FETCH_CONNECT_WAIT`].
pub async fn fetch_manifest(
    peer: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    want: u64,
    wait: Duration,
) -> Result<Vec<u8>, FetchError> {
    match tokio::time::timeout(wait, fetch_inner(peer, info_hash, peer_id, want)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            peer,
            want,
            waited: wait,
        }),
    }
}

async fn fetch_inner(
    peer: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    want: u64,
) -> Result<Vec<u8>, FetchError> {
    use librqbit_peer_protocol::Handshake;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |source| FetchError::Io { peer, source };
    let protocol = |reason: String| FetchError::Protocol { peer, reason };
    let mut stream = match tokio::time::timeout(
        FETCH_CONNECT_WAIT,
        tokio::net::TcpStream::connect(peer),
    )
    .await
    {
        Ok(connected) => connected.map_err(io)?,
        Err(_) => {
            return Err(FetchError::ConnectTimeout {
                peer,
                waited: FETCH_CONNECT_WAIT,
            })
        }
    };
    stream.set_nodelay(true).map_err(io)?;
    let mut out = [0u8; 68];
    let n =
        Handshake::new(Id20::new(info_hash), Id20::new(peer_id)).serialize_unchecked_len(&mut out);
    let mut hello = out[..n].to_vec();
    let ours = format!(
        "d1:md{}:{}i{}eee",
        swarmcast_core::gossip::EXTENSION.len(),
        swarmcast_core::gossip::EXTENSION,
        librqbit_peer_protocol::MY_EXTENDED_SWARMCAST_MANIFEST
    );
    hello.extend_from_slice(&frame(0, ours.as_bytes()));
    stream.write_all(&hello).await.map_err(io)?;
    let mut theirs = [0u8; 68];
    stream.read_exact(&mut theirs).await.map_err(io)?;
    let (h, _) = Handshake::deserialize(&theirs).map_err(|e| protocol(e.to_string()))?;
    if h.info_hash.0 != info_hash {
        return Err(protocol("answered for another torrent".into()));
    }
    if h.reserved & (1 << 20) == 0 {
        return Err(protocol("does not support extensions (BEP 10)".into()));
    }
    // A document over one message comes in parts.
    let mut parts = Reassembly::default();
    // Bounded by the caller's timeout.
    loop {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > FETCH_MAX_MESSAGE {
            return Err(protocol(format!("a message of {len} bytes")));
        }
        let mut msg = vec![0u8; len];
        stream.read_exact(&mut msg).await.map_err(io)?;
        if msg.len() < 2 || msg[0] != 20 {
            continue; // keep-alive, bitfield, have, unchoke...
        }
        let payload = &msg[2..];
        if msg[1] == 0 {
            let id = crate::wire::conn::extension_id(payload)
                .ok_or_else(|| protocol("does not speak the manifest exchange".into()))?;
            let ask = Message::Want(want).encode();
            stream.write_all(&frame(id, &ask)).await.map_err(io)?;
        } else if msg[1] == librqbit_peer_protocol::MY_EXTENDED_SWARMCAST_MANIFEST {
            if let Ok(Some((Message::Manifest { seq, doc }, _))) = parts.push(payload) {
                if seq >= want {
                    return Ok(doc.to_vec());
                }
            }
        }
    }
}

/// A BEP 10 message: length, 20, extended id, payload.
fn frame(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::wire::conn::extended_message(&mut out, id, payload);
    out
}
