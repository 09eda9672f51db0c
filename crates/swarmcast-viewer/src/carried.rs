//! Manifests without the publisher's HTTP server (docs/manifest.md): carried by the swarm (the
//! manifest exchange, [`swarmcast_swarm::exchange`]) and the stream found on the DHT from its
//! key alone ([`swarmcast_core::dht_item`]).
//!
//! Both feed the watch loop the poller's [`PollEvent`]s: a manifest from a peer is
//! `PollEvent::Manifest` with mode `swarm` (pushed or asked for on a connection of a segment's
//! swarm) or `dht` (fetched from a peer of the segment named by the DHT pointer), its
//! source `bittorrent://<peer>/`; a refused one, or a refused DHT item, `PollEvent::Refused`
//! with the same typed error an HTTP manifest gets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::dht_item::ItemVerifier;
use swarmcast_core::{StreamKey, Verdict, Verifier};
use swarmcast_dht::DhtOptions;
use swarmcast_swarm::exchange::{fetch_manifest, Exchange, ExchangeEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::poller::PollEvent;

/// How long a DHT lookup for a segment's peers may take.
const PEERS_WAIT: Duration = Duration::from_secs(10);
/// How long one peer may take to answer a `want`.
const FETCH_WAIT: Duration = Duration::from_secs(5);
/// Peers asked per attempt.
const PEERS_ASKED: usize = 8;
/// After this, the next peer is asked too if the one before has not answered yet ([`staggered`]).
/// A fetch is three round trips (TCP, the handshakes, the `want` and its answer): 150 ms at RTT
/// 50, 900 ms at RTT 300, so a peer that answers usually wins alone, and one that never answers
/// (a viewer behind a NAT, announced at its public address) holds the next up this long, not
/// [`FETCH_WAIT`].
const FETCH_STAGGER: Duration = Duration::from_millis(500);
/// Between attempts while no manifest is held.
const RETRY: Duration = Duration::from_secs(1);
/// After a lookup of the pointer's segment found no peer, the next lookup of it ([`until_found`]).
const PEERS_AGAIN: Duration = Duration::from_millis(250);
/// Lookups of the pointer's segment in one attempt at most (all within [`PEERS_WAIT`]).
const PEER_LOOKUPS: usize = 4;

/// The peers of one lookup at a time from `lookup`, the next lookup `again` after one that found
/// nobody, at most `lookups` of them; it ends with the first lookup that found a peer. The
/// publisher puts the pointer and announces its segment at once, so the pointer can land first,
/// and a lookup right after it finds nobody (`asked=0`, 28 first attempts in lab n13, all at the
/// stream's start). Looking the same segment up again is cheaper than a new attempt: that waits
/// [`RETRY`] and looks the pointer up again first (0.1-2.2 s). The caller bounds it in time.
fn until_found<L, S>(
    lookup: L,
    again: Duration,
    lookups: usize,
) -> impl futures_util::Stream<Item = SocketAddr>
where
    L: Fn() -> S,
    S: futures_util::Stream<Item = SocketAddr> + Unpin,
{
    use futures_util::StreamExt;
    // (the lookup, the one running, lookups started, a peer found: then no lookup follows)
    let state = (lookup, None::<S>, 0usize, false);
    futures_util::stream::unfold(state, move |(lookup, mut running, mut n, any)| async move {
        // Bounded by `lookups`, each lookup by the DHT's own end.
        loop {
            if let Some(peers) = running.as_mut() {
                match peers.next().await {
                    Some(peer) => return Some((peer, (lookup, running, n, true))),
                    None if any => return None,
                    None => {} // it found nobody: the next one, if any is left
                }
            }
            if n >= lookups {
                return None;
            }
            if n > 0 {
                tokio::time::sleep(again).await;
            }
            n += 1;
            running = Some(lookup());
        }
    })
}

/// What the viewer holds, for the DHT finder: the newest manifest's sequence number (0: none)
/// and its target duration in ms.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) seq: AtomicU64,
    pub(crate) target_ms: AtomicU64,
    /// The newest manifest held ends the stream: nothing newer will come.
    pub(crate) ended: std::sync::atomic::AtomicBool,
}

/// What the lookups of the stream's peer key found ([`look_up_peer_key`]), for the viewer to
/// carry ([`swarmcast_core::carry`]).
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Peers found since the viewer last took them (at most [`KEY_LOOKUP_MAX`] waiting).
    pub(crate) fresh: Vec<SocketAddr>,
    /// Lookups made.
    pub(crate) lookups: u64,
    /// Peers found, over all lookups (each lookup's distinct peers).
    pub(crate) peers: u64,
}

/// How long one lookup of the stream's peer key runs.
const KEY_LOOKUP_FOR: Duration = Duration::from_secs(5);
/// Peers taken from one lookup at most.
const KEY_LOOKUP_MAX: usize = 64;
/// After a lookup that found nobody, the next one (otherwise [`swarmcast_core::carry::KEY_EVERY`]).
const KEY_RETRY: Duration = Duration::from_secs(30);

/// Looks the stream's peer key up on the DHT (announcing the viewer there) now and every
/// [`swarmcast_core::carry::KEY_EVERY`] (every [`KEY_RETRY`] while it finds nobody), putting
/// what it finds in `found` and telling the viewer on `wake`; runs until the viewer's tasks are
/// cancelled.
pub(crate) async fn look_up_peer_key<S: crate::io::SegmentSwarm>(
    swarm: Arc<S>,
    key: StreamKey,
    found: Arc<std::sync::Mutex<Found>>,
    wake: mpsc::Sender<crate::viewer::ViewerEvent>,
) {
    let target = swarmcast_core::carry::peer_key(&key);
    loop {
        let started = tokio::time::Instant::now();
        let on_peer = |a| {
            let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
            if f.fresh.len() < KEY_LOOKUP_MAX {
                f.fresh.push(a);
            }
            // The viewer dials them at once (or at its next tick if its queue is full).
            let _ = wake.try_send(crate::viewer::ViewerEvent::PeersFound);
        };
        let n = swarm
            .dht_lookup(target, KEY_LOOKUP_FOR, KEY_LOOKUP_MAX, on_peer)
            .await;
        {
            let mut f = found.lock().unwrap_or_else(|e| e.into_inner());
            f.lookups += 1;
            f.peers += n as u64;
        }
        tracing::info!(
            peers = n,
            ms = started.elapsed().as_millis() as u64,
            "the stream's peer key looked up on the DHT"
        );
        let next = if n == 0 {
            KEY_RETRY
        } else {
            swarmcast_core::carry::KEY_EVERY
        };
        tokio::time::sleep(next).await;
    }
}

/// The viewer's manifest exchange and its reports, and the DHT to find the stream on.
pub(crate) struct Carried {
    /// The exchange (its handler is in the swarm's options).
    pub(crate) exchange: Exchange,
    /// What it reports.
    pub(crate) events: mpsc::Receiver<ExchangeEvent>,
    /// Find the stream on the DHT (a link with only the key, or `--dht`).
    pub(crate) dht: Option<DhtOptions>,
    /// Our peer id, for the BitTorrent handshakes of DHT fetches.
    pub(crate) peer_id: [u8; 20],
}

/// How often a viewer looks at where its peers see it ([`tell_nat`]).
pub(crate) const NAT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Tells the exchange's peers whether this viewer is behind a NAT, as soon as a peer has told it
/// an address its host lacks ([`swarmcast_swarm::Swarm::behind_nat`], BEP 10 `yourip`), and
/// again if that changes: viewers push manifests to the peers behind NAT first
/// (docs/manifest.md, "Peers behind NAT first"). Runs until its task group is cancelled.
pub(crate) async fn tell_nat(swarm: Arc<swarmcast_swarm::Swarm>, exchange: Exchange) {
    let mut tick = tokio::time::interval(NAT_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told = false;
    loop {
        tick.tick().await;
        let seen = swarm.behind_nat();
        if seen.is_some() == told {
            continue;
        }
        told = seen.is_some();
        match seen {
            Some(at) => tracing::info!(
                %at,
                "peers see this viewer at an address its host lacks: behind a NAT, telling peers"
            ),
            None => tracing::info!("peers see this viewer at its own address: not behind a NAT"),
        }
        exchange.set_behind_nat(told);
    }
}

/// The source URL a manifest from `peer` is reported with.
pub(crate) fn peer_source(peer: SocketAddr) -> Url {
    Url::parse(&format!("bittorrent://{peer}/")).expect("a socket address makes a URL")
}

/// Whether a source is a peer rather than an HTTP server (HTTP fallbacks need the latter).
pub(crate) fn is_peer(source: &Url) -> bool {
    source.scheme() == "bittorrent" || source.scheme() == "dht"
}

/// How long the swarm may bring no newer manifest before HTTP is polled again: two segment
/// durations, and at least this.
const QUIET_AT_LEAST: Duration = Duration::from_secs(2);
/// How often the backup poller looks at what the viewer holds.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// HTTP as a backup of the swarm (`watch --swarm-manifests` with a link that has `xs`): polls
/// the link's sources until the viewer holds a manifest newer than when it started (from any
/// source: at join, that is the first one and, a long poll later, the next), then stops until
/// the swarm brings no newer manifest for two segment durations, and polls again. What the
/// publisher's server sends is then a few documents per viewer at join and when the swarm
/// fails, not one per viewer and segment. Returns when the poller ends (the end of the stream,
/// or the watch loop gone) or at `cancel`.
pub(crate) async fn poll_as_backup<M: crate::io::ManifestFetch>(
    http: &M,
    link: swarmcast_core::StreamLink,
    deltas: bool,
    tx: mpsc::Sender<PollEvent>,
    cancel: CancellationToken,
    held: Arc<Held>,
) {
    // Bounded by `cancel` and by the poller's own end.
    loop {
        let start = held.seq.load(Ordering::Relaxed);
        let run = cancel.child_token();
        let advanced = async {
            while held.seq.load(Ordering::Relaxed) == start {
                tokio::time::sleep(LOOK_EVERY).await;
            }
        };
        tokio::select! {
            () = crate::poller::poll_with(http, link.clone(), deltas, tx.clone(), run.clone()) => {
                if !run.is_cancelled() {
                    return; // the end of the stream, or the watch loop is gone
                }
            }
            () = advanced => run.cancel(),
        }
        if cancel.is_cancelled() || tx.is_closed() || held.ended.load(Ordering::Relaxed) {
            return;
        }
        // The swarm carries the stream: wait until it goes quiet.
        let mut last = (
            held.seq.load(Ordering::Relaxed),
            tokio::time::Instant::now(),
        );
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
            let now = tokio::time::Instant::now();
            let seq = held.seq.load(Ordering::Relaxed);
            if seq != last.0 {
                last = (seq, now);
            }
            if held.ended.load(Ordering::Relaxed) {
                return;
            }
            let quiet = QUIET_AT_LEAST.max(Duration::from_millis(
                held.target_ms.load(Ordering::Relaxed).saturating_mul(2),
            ));
            if now.duration_since(last.1) >= quiet {
                tracing::info!(
                    seq,
                    "no newer manifest from the swarm for a while: polling HTTP"
                );
                break;
            }
        }
    }
}

/// Forwards the exchange's reports to the watch loop until either side ends.
pub(crate) async fn forward(
    mut events: mpsc::Receiver<ExchangeEvent>,
    tx: mpsc::Sender<PollEvent>,
) {
    while let Some(e) = events.recv().await {
        let event = match e {
            ExchangeEvent::Manifest {
                manifest,
                from,
                bytes,
                delta,
            } => PollEvent::Manifest {
                manifest,
                source: peer_source(from),
                mode: "swarm",
                fetched: bytes,
                delta,
            },
            ExchangeEvent::Refused { from, error } => PollEvent::Refused {
                source: peer_source(from),
                error,
            },
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Finds the stream on the DHT: gets the pointer, the peers of the segment it names, and asks
/// them for the manifest; again whenever no newer manifest came for
/// [`recheck_after`](swarmcast_core::dht_item::recheck_after) the segment duration. Runs until
/// `cancel` or the watch loop ends.
pub(crate) async fn find_on_dht(
    options: DhtOptions,
    key: StreamKey,
    peer_id: [u8; 20],
    held: Arc<Held>,
    tx: mpsc::Sender<PollEvent>,
    cancel: CancellationToken,
) {
    let dht_source = Url::parse(&format!("dht://{key}/")).expect("a key makes a URL");
    let node = match options.start() {
        Ok(n) => n,
        Err(e) => {
            let _ = tx
                .send(PollEvent::Unreachable {
                    source: dht_source,
                    error: e.to_string(),
                })
                .await;
            return;
        }
    };
    let mut last_seen = (0, tokio::time::Instant::now());
    // Bounded by `cancel` and by the watch loop (a closed channel ends it).
    loop {
        let recheck = swarmcast_core::dht_item::recheck_after(Duration::from_millis(
            held.target_ms.load(Ordering::Relaxed),
        ));
        if held.ended.load(Ordering::Relaxed) {
            return;
        }
        let seq = held.seq.load(Ordering::Relaxed);
        let now = tokio::time::Instant::now();
        if seq != last_seen.0 {
            last_seen = (seq, now);
        }
        let due = seq == 0 || now.duration_since(last_seen.1) >= recheck;
        if due {
            if seq != 0 {
                tracing::info!(seq, "no newer manifest for a while: asking the DHT");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = attempt(&node, key, peer_id, seq, &dht_source, &tx) => if r.is_err() { return },
            }
            last_seen.1 = tokio::time::Instant::now();
        }
        let pause = if seq == 0 {
            RETRY
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One try: the pointer, the peers of its segment, a manifest from one of them. Err: the watch
/// loop is gone.
async fn attempt(
    node: &swarmcast_dht::Node,
    key: StreamKey,
    peer_id: [u8; 20],
    held: u64,
    dht_source: &Url,
    tx: &mpsc::Sender<PollEvent>,
) -> Result<(), ()> {
    let send = |e: PollEvent| async move { tx.send(e).await.map_err(|_| ()) };
    let started = tokio::time::Instant::now();
    let ms = |since: tokio::time::Instant| since.elapsed().as_millis() as u64;
    let mut items = ItemVerifier::new(key, (held != 0).then_some(held));
    let (pointer, refused) = node.get_pointer(&mut items, &key).await;
    let pointer_ms = ms(started);
    for error in refused {
        // An item older than the manifest held is a DHT node lagging behind, or a replay: not
        // worth a record at every recheck.
        if matches!(error, swarmcast_core::ManifestError::StaleSequence { .. }) {
            tracing::debug!(%error, "an older DHT item");
            continue;
        }
        send(PollEvent::Refused {
            source: dht_source.clone(),
            error,
        })
        .await?;
    }
    let Some(pointer) = pointer.filter(|p| p.seq > held) else {
        if held == 0 {
            tracing::info!(pointer_ms, "no pointer on the DHT yet");
        }
        return Ok(());
    };
    use futures_util::StreamExt;
    tracing::debug!(seq = pointer.seq, "the DHT names a segment of the stream");
    // The segment's peers as the lookup finds them: a peer found later is asked as soon as the
    // ones before had their stagger, not only once the lookup ends; a lookup that found nobody
    // is made again (the segment's announce may land after the pointer).
    let peers_started = tokio::time::Instant::now();
    let first_peer_ms = std::sync::OnceLock::<u64>::new();
    let found = std::sync::atomic::AtomicUsize::new(0);
    let lookup = || node.peer_stream(pointer.segment);
    let peers = Box::pin(until_found(lookup, PEERS_AGAIN, PEER_LOOKUPS))
        .take(PEERS_ASKED)
        .take_until(Box::pin(tokio::time::sleep(PEERS_WAIT)))
        .inspect(|_| {
            found.fetch_add(1, Ordering::Relaxed);
            first_peer_ms.get_or_init(|| ms(peers_started));
        });
    let fetches = staggered(peers, FETCH_STAGGER, |peer| {
        fetch_manifest(peer, pointer.segment, peer_id, pointer.seq, FETCH_WAIT)
    });
    let mut fetches = std::pin::pin!(fetches);
    // What each peer asked gave instead of the manifest (at most PEERS_ASKED), for the log
    // line of a failed join.
    let mut outcomes: Vec<String> = Vec::new();
    // Returning drops the fetches still running, and the lookup.
    while let Some((peer, fetched)) = fetches.next().await {
        let doc = match fetched {
            Ok(doc) => doc,
            Err(e) => {
                tracing::debug!(error = %e, "no manifest from this peer");
                // The error names the peer.
                outcomes.push(e.to_string());
                continue;
            }
        };
        // Kept only if it is not the manifest sought (that returns below).
        outcomes.push(format!("{peer}: a document, not the pointer's or newer"));
        let source = peer_source(peer);
        match Verifier::new(key).accept(&doc) {
            Ok(Verdict::New(m)) if m.manifest.seq > pointer.seq || pointer.names(&m.bytes) => {
                let fetched = doc.len() as u64;
                // Where a join by the DHT spends its time (docs/experiments.md).
                tracing::info!(
                    seq = m.manifest.seq,
                    pointer_ms,
                    peers_ms = first_peer_ms.get(),
                    total_ms = ms(started),
                    "the stream found on the DHT"
                );
                return send(PollEvent::Manifest {
                    manifest: Arc::new(m),
                    source,
                    mode: "dht",
                    fetched,
                    delta: false,
                })
                .await;
            }
            Ok(Verdict::New(m)) => {
                // Signed by the stream, the pointer's sequence number, another document.
                send(PollEvent::Refused {
                    source,
                    error: swarmcast_core::ManifestError::Equivocation {
                        seq: m.manifest.seq,
                    },
                })
                .await?;
            }
            Ok(Verdict::Unchanged) => {}
            Err(error) => send(PollEvent::Refused { source, error }).await?,
        }
    }
    if held == 0 {
        // Where a join by the DHT loses its time (docs/experiments.md).
        tracing::info!(
            seq = pointer.seq,
            asked = found.load(Ordering::Relaxed),
            pointer_ms,
            peers_ms = first_peer_ms.get(),
            total_ms = ms(started),
            peers = %outcomes.join("; "),
            "the DHT names a segment of the stream, but no peer of it gave its manifest"
        );
    }
    Ok(())
}

/// Fetches from the `peers` as they come, each started `stagger` after the one before or at
/// once when a fetch ends, and yields the results as they come (RFC 8305's staggered attempts,
/// applied to whole fetches). Dropping the stream drops the fetches still running and `peers`.
/// Bounded by `peers` (the caller bounds it in count and time) and each fetch's own timeout.
fn staggered<P, F, Fut, T>(
    peers: P,
    stagger: Duration,
    fetch: F,
) -> impl futures_util::Stream<Item = (SocketAddr, T)>
where
    P: futures_util::Stream<Item = SocketAddr> + Unpin,
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    use futures_util::stream::FuturesUnordered;
    use futures_util::{FutureExt, StreamExt};
    struct State<P, F, R> {
        /// `None` once it ended.
        peers: Option<P>,
        pending: std::collections::VecDeque<SocketAddr>,
        running: FuturesUnordered<R>,
        next_start: tokio::time::Instant,
        fetch: F,
    }
    let state = State {
        peers: Some(peers),
        pending: Default::default(),
        running: FuturesUnordered::new(),
        next_start: tokio::time::Instant::now(),
        fetch,
    };
    futures_util::stream::unfold(state, move |mut s| async move {
        // Each turn takes a peer, starts a fetch or ends one: bounded by the peers.
        loop {
            let now = tokio::time::Instant::now();
            if !s.pending.is_empty() && (s.running.is_empty() || now >= s.next_start) {
                let peer = s.pending.pop_front().expect("not empty");
                s.running.push((s.fetch)(peer).map(move |r| (peer, r)));
                s.next_start = now + stagger;
                continue;
            }
            let (busy, more, open) = (
                !s.running.is_empty(),
                !s.pending.is_empty(),
                s.peers.is_some(),
            );
            if !busy && !more && !open {
                return None; // every peer asked and answered
            }
            let turn = {
                let (running, peers, next_start) = (&mut s.running, &mut s.peers, s.next_start);
                tokio::select! {
                    Some(done) = running.next(), if busy => Turn::Done(done),
                    peer = async move {
                        match peers.as_mut() {
                            Some(p) => p.next().await,
                            None => None,
                        }
                    }, if open => Turn::Found(peer),
                    () = tokio::time::sleep_until(next_start), if more => Turn::Due,
                }
            };
            match turn {
                Turn::Done(done) => {
                    // The next peer is asked at once if this one's answer is not enough.
                    s.next_start = tokio::time::Instant::now();
                    return Some((done, s));
                }
                Turn::Found(Some(peer)) => s.pending.push_back(peer),
                Turn::Found(None) => s.peers = None,
                Turn::Due => {}
            }
        }
    })
}

/// What woke [`staggered`] up.
enum Turn<T> {
    /// A fetch ended.
    Done(T),
    /// The lookup found a peer, or ended (`None`).
    Found(Option<SocketAddr>),
    /// The next peer's turn came.
    Due,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::Stream;
    use std::sync::Mutex;

    /// A publisher's `/manifest`: the current document at once; with `?after=`, held a second
    /// (a long poll), then the current one. Counts requests.
    struct Server {
        stream: Stream,
        current: AtomicU64,
        requests: Mutex<Vec<String>>,
    }

    impl crate::io::ManifestFetch for Arc<Server> {
        async fn manifest(&self, url: &Url, _timeout: Duration) -> Result<Vec<u8>, String> {
            self.requests.lock().unwrap().push(url.to_string());
            if url.query().is_some_and(|q| q.contains("after=")) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let seq = self.current.load(Ordering::Relaxed);
            Ok(self.stream.manifest(seq, 0..=(seq - 1).min(2), false))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn http_is_polled_until_a_manifest_is_held_then_only_when_the_swarm_goes_quiet() {
        let server = Arc::new(Server {
            stream: Stream::new(3),
            current: AtomicU64::new(1),
            requests: Mutex::new(Vec::new()),
        });
        let held = Arc::new(Held::default());
        held.target_ms.store(500, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let link = server.stream.link();
        let tasks = swarmcast_tasks::Tasks::with_token("test", cancel.clone());
        let task = {
            let (server, held, cancel) = (server.clone(), held.clone(), cancel.clone());
            tasks.spawn("backup", async move {
                poll_as_backup(&server, link, false, tx, cancel, held).await;
            })
        };
        // The first manifest comes over HTTP; the viewer now holds it.
        match rx.recv().await {
            Some(PollEvent::Manifest { manifest, .. }) => assert_eq!(manifest.manifest.seq, 1),
            other => panic!("{other:?}"),
        }
        held.seq.store(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_join = server.requests.lock().unwrap().len();
        // The swarm brings a newer manifest every 500 ms for 5 s: HTTP is not asked.
        for seq in 2..12 {
            held.seq.store(seq, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            server.requests.lock().unwrap().len(),
            at_join,
            "no request while the swarm carries the stream"
        );
        // The swarm goes quiet: after two segment durations (at least 2 s), HTTP again.
        server.current.store(12, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert!(server.requests.lock().unwrap().len() > at_join);
        match rx.recv().await {
            Some(PollEvent::Manifest { manifest, .. }) => assert_eq!(manifest.manifest.seq, 12),
            other => panic!("{other:?}"),
        }
        cancel.cancel();
        task.await.unwrap();
        assert!(
            at_join <= 2,
            "at join: the document, then one long poll at most: {at_join}"
        );
    }

    /// Runs [`staggered`] over peers whose fetches end after the given ms, with the given
    /// outcome; returns when each peer's fetch started and what came out when (ms, paused clock).
    async fn stagger_run(peers: &[(u64, bool)]) -> (Vec<(u16, u64)>, Vec<(u16, bool, u64)>) {
        use futures_util::StreamExt;
        let t0 = tokio::time::Instant::now();
        let ms = move || t0.elapsed().as_millis() as u64;
        let started = Arc::new(Mutex::new(Vec::new()));
        let addrs: Vec<SocketAddr> = (0..peers.len())
            .map(|i| SocketAddr::from(([10, 0, 0, 1], i as u16)))
            .collect();
        let fetch = |peer: SocketAddr| {
            let (after, ok) = peers[peer.port() as usize];
            started.lock().unwrap().push((peer.port(), ms()));
            async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                ok
            }
        };
        let addrs = futures_util::stream::iter(addrs);
        let out: Vec<(u16, bool, u64)> = staggered(addrs, Duration::from_millis(500), fetch)
            .map(|(peer, ok)| (peer.port(), ok, ms()))
            .collect()
            .await;
        let started = started.lock().unwrap().clone();
        (started, out)
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_holds_the_next_one_up_for_the_stagger_only() {
        // Peer 0 is behind a NAT: its fetch times out after 5 s.
        let (started, out) = stagger_run(&[(5_000, false), (100, true), (100, true)]).await;
        assert_eq!(out[0], (1, true, 600), "peer 1 answers first: {out:?}");
        // Peer 1's answer ended a fetch, so peer 2 was asked at once (the caller would stop).
        assert_eq!(started, vec![(0, 0), (1, 500), (2, 600)]);
        assert_eq!(out.last(), Some(&(0, false, 5_000)), "{out:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_within_the_stagger_is_asked_alone() {
        use futures_util::StreamExt;
        let started = Arc::new(Mutex::new(Vec::new()));
        let peers: Vec<SocketAddr> = (0..3u16)
            .map(|i| SocketAddr::from(([10, 0, 0, 1], i)))
            .collect();
        let peers = futures_util::stream::iter(peers);
        let fetches = staggered(peers, Duration::from_millis(500), |peer| {
            started.lock().unwrap().push(peer.port());
            async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                peer
            }
        });
        let mut fetches = std::pin::pin!(fetches);
        let first = fetches.next().await.map(|(p, _)| p.port());
        assert_eq!(first, Some(0));
        // The caller has what it needs and stops: nobody else was asked.
        assert_eq!(*started.lock().unwrap(), vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_found_later_is_asked_as_soon_as_it_is_found() {
        use futures_util::StreamExt;
        // The lookup finds peer 0 (behind a NAT: never answers) at once and peer 1 after 2 s.
        let found = futures_util::stream::iter([(0u16, 0u64), (1, 2_000)])
            .then(|(port, at)| async move {
                tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(at))
                    .await;
                SocketAddr::from(([10, 0, 0, 1], port))
            })
            .boxed();
        let t0 = tokio::time::Instant::now();
        let fetches = staggered(found, Duration::from_millis(500), |peer| async move {
            let answers = peer.port() == 1;
            tokio::time::sleep(Duration::from_millis(if answers { 100 } else { 5_000 })).await;
            answers
        });
        let mut fetches = std::pin::pin!(fetches);
        let first = fetches.next().await;
        assert_eq!(first.map(|(p, ok)| (p.port(), ok)), Some((1, true)));
        assert_eq!(t0.elapsed(), Duration::from_millis(2_100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_starts_the_next_at_once_and_the_stream_ends_with_the_peers() {
        let (started, out) = stagger_run(&[(50, false), (100, false), (5_000, false)]).await;
        assert_eq!(started, vec![(0, 0), (1, 50), (2, 150)]);
        assert_eq!(
            out,
            vec![(0, false, 50), (1, false, 150), (2, false, 5_150)]
        );
        let (started, out) = stagger_run(&[]).await;
        assert!(started.is_empty() && out.is_empty());
    }

    /// Runs [`until_found`] over lookups whose results are `lookups[i]`: (ms the lookup takes,
    /// the ports it finds, all at its end). What it yields, with the virtual ms of each, and when
    /// each lookup started.
    async fn until_found_run(lookups: Vec<(u64, Vec<u16>)>) -> (Vec<(u16, u64)>, Vec<u64>) {
        use futures_util::StreamExt;
        let t0 = tokio::time::Instant::now();
        let ms = move || t0.elapsed().as_millis() as u64;
        let started = Mutex::new(Vec::new());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let lookup = || {
            started.lock().unwrap().push(ms());
            let (after, ports) = lookups
                .get(next.fetch_add(1, Ordering::Relaxed))
                .cloned()
                .unwrap_or_default();
            Box::pin(
                futures_util::stream::once(async move {
                    tokio::time::sleep(Duration::from_millis(after)).await;
                    futures_util::stream::iter(
                        ports
                            .into_iter()
                            .map(|p| SocketAddr::from(([10, 0, 0, 1], p))),
                    )
                })
                .flatten(),
            )
        };
        let found: Vec<(u16, u64)> = Box::pin(until_found(lookup, Duration::from_millis(250), 3))
            .map(|p| (p.port(), ms()))
            .collect()
            .await;
        let started = started.into_inner().unwrap();
        (found, started)
    }

    /// A lookup that finds nobody (the pointer landed before its segment's announce) is made
    /// again 250 ms after it ended; the first that finds peers is the last.
    #[tokio::test(start_paused = true)]
    async fn a_lookup_that_found_nobody_is_made_again_until_one_finds_peers() {
        let (found, started) = until_found_run(vec![
            (2_000, vec![]),
            (300, vec![]),
            (100, vec![7, 8]),
            (100, vec![9]),
        ])
        .await;
        assert_eq!(started, [0, 2_250, 2_800]);
        assert_eq!(found, [(7, 2_900), (8, 2_900)]);
    }

    /// A first lookup that finds peers is the only one; lookups that all find nobody stop at
    /// the limit.
    #[tokio::test(start_paused = true)]
    async fn peers_found_at_once_or_never_make_one_lookup_or_the_limit() {
        let (found, started) = until_found_run(vec![(100, vec![1]), (100, vec![2])]).await;
        assert_eq!((found, started), (vec![(1, 100)], vec![0]));
        let (found, started) = until_found_run(vec![(100, vec![]); 5]).await;
        assert!(found.is_empty());
        assert_eq!(started, [0, 350, 700]);
    }
}
