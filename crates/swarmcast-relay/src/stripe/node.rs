//! `swarmcast stripe-node`: a node of the striped method (docs/striped-fec.md, "A node").
//!
//! It joins the stripe directory (which gives it its home substream), then pulls every
//! substream from a parent the directory chooses, one connection per substream. Every frame is
//! checked before it goes anywhere: headers by signature (the deframer), symbols against their
//! signed hash. Checked frames go to its rebuilder and into its own back buffers, from which it
//! serves its children (the directory only sends it children in its home tree). A parent silent
//! for [`PARENT_TIMEOUT`], or one that sent a forged symbol, is replaced: the node asks the
//! directory for another, avoiding it, and resumes at the segment it needs next
//! (`?from=<seq>`); its rebuilder drops what it already had. Rebuilt segments are written to
//! `--out` in order; a segment still missing when a later one has been ready for `give_up` is
//! given up (lost).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarmcast_core::StreamKey;
use swarmcast_metrics::{Kind, Recorder};
use swarmcast_stripe::code::symbol_hash;
use swarmcast_stripe::{Deframer, Event, Rebuilder, StripeHeader, Symbol};
use swarmcast_tasks::Tasks;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::directory::{
    AnnounceAnswer, AnnounceRequest, JoinRequest, Joined, ParentAnswer, ParentRequest,
};
use super::server::{self, Buffers, KEEP_SEGMENTS};
use crate::directory::{ANNOUNCE_EVERY, ENTRY_TTL, PARENT_TIMEOUT, REQUEST_TIMEOUT};
use crate::resume::RelayError;

/// How long a node waits before asking again when no parent has a free slot.
const ASK_AGAIN: Duration = Duration::from_millis(500);
/// The arrival curve's sampling period.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Why a node left a parent the directory moved it off (the parent is fine).
const MOVED: &str = "moved by the directory";
/// How long a node names a failed parent when it asks for another. The directory offers
/// nothing below that parent meanwhile (starved too); once a dead parent's entry expired
/// ([`ENTRY_TTL`], after its last announce), the directory knows by itself, and a parent that
/// only stalled may serve again.
const AVOID_FOR: Duration = Duration::from_secs(ENTRY_TTL.as_secs() + ANNOUNCE_EVERY.as_secs());
/// How long a node keeps serving its children after its stream ended.
const END_GRACE: Duration = Duration::from_secs(10);

/// What `swarmcast stripe-node` runs.
#[derive(Clone, Debug)]
pub struct StripeNodeConfig {
    /// The stream key (from the link): headers must be signed by it.
    pub key: StreamKey,
    /// The stripe directory's base URL (`http://publisher:8080/stripes`).
    pub directory: String,
    /// The node's name.
    pub node: String,
    /// Where it serves `/stripe/{s}`.
    pub listen: SocketAddr,
    /// Children served at once at most (0: no limit).
    pub max_children: usize,
    /// Where the rebuilt stream is written.
    pub out: Option<PathBuf>,
    /// Metrics JSON lines.
    pub metrics_out: Option<PathBuf>,
    /// A missing segment is given up once a later one has been ready this long.
    pub give_up: Duration,
    /// Testing: a forging relay. Every this-many-th symbol it relays to its children has a
    /// byte flipped (what it plays itself is unaffected).
    pub forge_every: Option<u32>,
}

/// What a node did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StripeNodeSummary {
    /// Its home substream.
    pub home: u8,
    /// Bytes written to the output.
    pub played: u64,
    /// Segments written.
    pub segments: u64,
    /// Segments given up.
    pub lost_segments: u64,
    /// Symbols refused for a bad hash (each also dropped its parent).
    pub forged: u64,
    /// Symbols that arrived after their segment was rebuilt or played, or twice.
    pub surplus: u64,
    /// Symbols the publisher sent for the segments played or given up.
    pub symbols_expected: u64,
    /// Of which never reached this node (see `swarmcast_stripe::rebuild`: a symbol arriving
    /// after its segment played is late, not lost).
    pub symbols_lost: u64,
    /// Parent connections made.
    pub connections: u32,
    /// Time in the decoder.
    pub decode_time: Duration,
    /// Frame bytes received from parents.
    pub received: u64,
    /// Frame bytes sent to children.
    pub sent: u64,
}

enum Msg {
    Header(StripeHeader),
    Symbol(Symbol),
    Done,
}

struct Ctx {
    config: StripeNodeConfig,
    /// The publisher's `/stripe` (its host and port are the directory's).
    source_base: String,
    client: reqwest::Client,
    my_url: String,
    rec: Arc<Recorder>,
    buffers: Arc<Buffers>,
    home: AtomicU8,
    /// The next segment the rebuilder needs (u64::MAX: none yet).
    want: AtomicU64,
    ended: AtomicBool,
    received: AtomicU64,
    from_source: AtomicU64,
    connections: AtomicU64,
    forged: AtomicU64,
    /// Per substream: how many times the directory moved this node off its parent there.
    moved: Vec<AtomicU64>,
}

enum Ask {
    Url(String),
    Wait,
    Rejoin,
}

impl Ctx {
    async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.client
            .post(format!("{}/{path}", self.config.directory))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).expect("requests serialise"))
            .send()
            .await
    }

    /// Joins until the directory answers (or `cancel`).
    async fn join(&self, cancel: &CancellationToken) -> Option<Joined> {
        let req = JoinRequest {
            node: self.config.node.clone(),
            url: self.my_url.clone(),
        };
        loop {
            match self.post("join", &req).await {
                Ok(r) if r.status().is_success() => match read_json::<Joined>(r).await {
                    Ok(j) => {
                        self.home.store(j.home, Ordering::SeqCst);
                        return Some(j);
                    }
                    Err(e) => tracing::debug!("join: {e}"),
                },
                Ok(r) => tracing::debug!("join: {}", r.status()),
                Err(e) => tracing::debug!("join: {e}"),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(ASK_AGAIN) => {}
            }
        }
    }

    /// The arrival curve's sample, and the frame bytes beside it.
    fn record_bytes(&self, played: u64) {
        self.rec.record(None, Kind::StreamBytes { total: played });
        self.rec.record(
            None,
            Kind::StripeBytes {
                received: self.received.load(Ordering::Relaxed),
                from_source: self.from_source.load(Ordering::Relaxed),
            },
        );
    }

    async fn ask_parent(&self, stripe: u8, avoid: &[String]) -> Ask {
        let req = ParentRequest {
            node: self.config.node.clone(),
            stripe,
            avoid: avoid.to_vec(),
        };
        match self.post("parent", &req).await {
            Ok(r) if r.status().is_success() => match read_json::<ParentAnswer>(r).await {
                Ok(p) => Ask::Url(p.url),
                Err(_) => Ask::Wait,
            },
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => Ask::Rejoin,
            _ => Ask::Wait,
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, String> {
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// Runs a node until its stream ended (and its children had [`END_GRACE`]) or `cancel`.
/// `ready` gets the URL it serves at once it listens.
pub async fn run(
    config: StripeNodeConfig,
    ready: Option<tokio::sync::oneshot::Sender<String>>,
    cancel: CancellationToken,
) -> Result<StripeNodeSummary, RelayError> {
    let crate::host::Opened {
        listener,
        local,
        rec,
        mut out,
    } = crate::host::open(
        config.listen,
        &config.node,
        config.metrics_out.as_deref(),
        config.out.as_ref(),
    )
    .await?;
    let my_url = format!("http://{local}/stripe");
    let tasks = Tasks::with_token("stripe-node", cancel.child_token());
    let client = crate::host::parent_client();
    // Serves every substream it holds; the directory sends children only for its home. One
    // child more than the fan-out is let in: when the directory gives a leaf's slot to a node of
    // this tree, the newcomer connects at once and the leaf leaves at its next announce.
    let all: Vec<u8> = (0..=u8::MAX).collect();
    let buffers = Buffers::new(
        swarmcast_stripe::code::MAX_SUBSTREAMS,
        &all,
        KEEP_SEGMENTS,
        match config.max_children {
            0 => 0,
            n => n + 1,
        },
    );
    let ctx = Arc::new(Ctx {
        source_base: config
            .directory
            .strip_suffix("/stripes")
            .map_or_else(String::new, |b| format!("{b}/stripe/")),
        config: config.clone(),
        client,
        my_url: my_url.clone(),
        rec: rec.clone(),
        buffers: buffers.clone(),
        home: AtomicU8::new(0),
        want: AtomicU64::new(u64::MAX),
        ended: AtomicBool::new(false),
        received: AtomicU64::new(0),
        from_source: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        forged: AtomicU64::new(0),
        moved: (0..swarmcast_stripe::code::MAX_SUBSTREAMS)
            .map(|_| AtomicU64::new(0))
            .collect(),
    });
    let (drain, served) = crate::host::serve(
        &tasks,
        listener,
        server::router(buffers.clone()),
        "stripe node",
    );
    if let Some(ready) = ready {
        let _ = ready.send(my_url.clone());
    }
    let Some(joined) = ctx.join(tasks.token()).await else {
        tasks.shutdown().await;
        return Ok(StripeNodeSummary::default());
    };
    tracing::info!(node = %config.node, home = joined.home, substreams = joined.substreams, "joined the stripe directory");
    {
        let (ctx, token) = (ctx.clone(), tasks.token().clone());
        tasks.spawn("announce", async move {
            loop {
                let req = AnnounceRequest {
                    node: ctx.config.node.clone(),
                };
                if let Ok(r) = ctx.post("announce", &req).await {
                    if let Ok(a) = read_json::<AnnounceAnswer>(r).await {
                        ctx.ended.store(a.ended, Ordering::SeqCst);
                        for s in a.moved {
                            if let Some(m) = ctx.moved.get(usize::from(s)) {
                                m.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        if !a.known {
                            ctx.join(&token).await;
                        }
                    }
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
                }
            }
        });
    }
    let (tx, rx) = mpsc::channel::<Msg>(4096);
    for s in 0..joined.substreams {
        let (ctx, tx, token) = (ctx.clone(), tx.clone(), tasks.token().clone());
        tasks.spawn("upstream", upstream(s, ctx, tx, token));
    }
    drop(tx);
    let mut summary = rebuild(&ctx, rx, joined.substreams, &mut out, tasks.token()).await?;
    // The stream is rebuilt to its end (or the node was stopped): children read what is left.
    buffers.end();
    let grace = Instant::now();
    while buffers.children() > 0 && grace.elapsed() < END_GRACE && !cancel.is_cancelled() {
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    drain.cancel();
    tasks.shutdown().await;
    let _ = served.await;
    ctx.record_bytes(summary.played);
    rec.flush();
    // Its home now (a node that expired from the directory and joined again may have another).
    summary.home = ctx.home.load(Ordering::SeqCst);
    summary.received = ctx.received.load(Ordering::Relaxed);
    summary.sent = buffers.sent.load(Ordering::Relaxed);
    summary.connections = ctx.connections.load(Ordering::Relaxed) as u32;
    summary.forged = ctx.forged.load(Ordering::Relaxed);
    Ok(summary)
}

/// One substream: parents from the directory, frames checked, kept, passed on.
async fn upstream(s: u8, ctx: Arc<Ctx>, tx: mpsc::Sender<Msg>, cancel: CancellationToken) {
    let mut avoid: Vec<String> = Vec::new();
    let mut avoid_since = Instant::now();
    let mut previous: Option<String> = None;
    let mut last_byte = Instant::now();
    let mut headers: BTreeMap<u64, StripeHeader> = BTreeMap::new();
    let mut seen: BTreeMap<u64, BTreeSet<u32>> = BTreeMap::new();
    let mut relayed = 0u64;
    while !cancel.is_cancelled() {
        if avoid_since.elapsed() > AVOID_FOR {
            avoid.clear();
        }
        let url = match ctx.ask_parent(s, &avoid).await {
            Ask::Url(u) => u,
            Ask::Rejoin => {
                ctx.join(&cancel).await;
                continue;
            }
            Ask::Wait if ctx.ended.load(Ordering::SeqCst) => {
                // The stream ended and no parent has this substream for us: the others carry
                // the rest.
                let _ = tx.send(Msg::Done).await;
                return;
            }
            Ask::Wait => {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(ASK_AGAIN) => {}
                }
                continue;
            }
        };
        let want = ctx.want.load(Ordering::SeqCst);
        let from = (want != u64::MAX).then_some(want);
        let target = match from {
            Some(f) => format!("{url}?from={f}"),
            None => url.clone(),
        };
        ctx.rec.record(
            None,
            Kind::ParentChanged {
                from: previous.clone(),
                to: url.clone(),
                detect_us: previous
                    .as_ref()
                    .map_or(0, |_| last_byte.elapsed().as_micros() as u64),
            },
        );
        previous = Some(url.clone());
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(PARENT_TIMEOUT, ctx.client.get(&target).send()) => r,
        };
        let response = match answer {
            Ok(Ok(r)) if r.status().is_success() => r,
            other => {
                let reason = match other {
                    Ok(Ok(r)) => format!("error: {}", r.status()),
                    Ok(Err(e)) => format!("error: {e}"),
                    Err(_) => "timeout".into(),
                };
                ctx.rec.record(
                    None,
                    Kind::StreamDisconnected {
                        url: url.clone(),
                        reason,
                    },
                );
                avoid = vec![url];
                avoid_since = Instant::now();
                continue;
            }
        };
        ctx.connections.fetch_add(1, Ordering::Relaxed);
        ctx.rec.record(
            None,
            Kind::StreamConnected {
                url: url.clone(),
                from: from.map(|f| format!("{f}:0")),
                position: None,
            },
        );
        let mut response = response;
        let moved = ctx.moved[usize::from(s)].load(Ordering::SeqCst);
        let from_source = url.starts_with(&ctx.source_base);
        let mut deframer = Deframer::new(ctx.config.key);
        let outcome: Result<(), String> = 'conn: loop {
            let chunk = tokio::select! {
                () = cancel.cancelled() => return,
                c = tokio::time::timeout(PARENT_TIMEOUT, response.chunk()) => c,
            };
            let bytes = match chunk {
                Err(_) => break Err("timeout".into()),
                Ok(Ok(None)) => break Ok(()),
                Ok(Err(e)) => break Err(format!("error: {e}")),
                Ok(Ok(Some(b))) => b,
            };
            if ctx.moved[usize::from(s)].load(Ordering::SeqCst) != moved {
                // The directory gave this slot to a node of the parent's tree.
                break Err(MOVED.into());
            }
            last_byte = Instant::now();
            ctx.received
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            if from_source {
                ctx.from_source
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            deframer.push(&bytes);
            while let Some(event) = deframer.next_event() {
                let msg = match event {
                    Event::Header(h) => {
                        let seq = h.fields().seq;
                        if headers.contains_key(&seq) {
                            continue;
                        }
                        ctx.buffers.push(s, seq, Bytes::from(h.to_frame()));
                        headers.insert(seq, h.clone());
                        while headers.len() > 2 * KEEP_SEGMENTS {
                            headers.pop_first();
                        }
                        Msg::Header(h)
                    }
                    Event::Symbol(sym) => {
                        let Some(h) = headers.get(&sym.seq) else {
                            // Joined mid-segment: it cannot be checked, so it goes nowhere.
                            continue;
                        };
                        if h.hash_of(sym.esi) != Some(&symbol_hash(&sym.payload)) {
                            ctx.forged.fetch_add(1, Ordering::Relaxed);
                            ctx.rec.record(
                                Some(sym.seq),
                                Kind::PieceRejected {
                                    url: url.clone(),
                                    piece: u64::from(sym.esi),
                                },
                            );
                            break 'conn Err("a symbol failed its signed hash".into());
                        }
                        let ids = seen.entry(sym.seq).or_default();
                        if !ids.insert(sym.esi) {
                            continue;
                        }
                        while seen.len() > 2 * KEEP_SEGMENTS {
                            seen.pop_first();
                        }
                        relayed += 1;
                        let mut frame = sym.to_frame();
                        if ctx
                            .config
                            .forge_every
                            .is_some_and(|n| relayed.is_multiple_of(u64::from(n.max(1))))
                        {
                            // The last byte is the payload's.
                            *frame.last_mut().expect("a frame is never empty") ^= 0x5a;
                        }
                        ctx.buffers.push(s, sym.seq, Bytes::from(frame));
                        Msg::Symbol(sym)
                    }
                    Event::Refused(e) => {
                        tracing::debug!(stripe = s, "frame refused: {e}");
                        continue;
                    }
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        };
        let reason = match &outcome {
            Ok(()) => "eof".to_owned(),
            Err(r) => r.clone(),
        };
        ctx.rec.record(
            None,
            Kind::StreamDisconnected {
                url: url.clone(),
                reason,
            },
        );
        if outcome.is_ok() {
            // A body ends cleanly only at the end of the stream (a parent that leaves aborts).
            let _ = tx.send(Msg::Done).await;
            return;
        }
        if outcome.as_ref().is_err_and(|r| r == MOVED) {
            avoid.clear();
        } else {
            avoid = vec![url];
            avoid_since = Instant::now();
        }
    }
}

/// Rebuilds and writes the stream until every substream ended (or `cancel`).
async fn rebuild(
    ctx: &Ctx,
    mut rx: mpsc::Receiver<Msg>,
    substreams: u8,
    out: &mut Option<tokio::fs::File>,
    cancel: &CancellationToken,
) -> Result<StripeNodeSummary, RelayError> {
    let mut r = Rebuilder::new();
    let mut summary = StripeNodeSummary::default();
    let mut done = 0u8;
    let mut ready_since: Option<Instant> = None;
    let mut sampled = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        let finished = tokio::select! {
            // Stopped: what is held is not given up (nothing was late), only left.
            () = cancel.cancelled() => break,
            m = rx.recv() => match m {
                Some(Msg::Header(h)) => {
                    if let Err(e) = r.add_header(h) {
                        tracing::debug!("header: {e}");
                    }
                    false
                }
                Some(Msg::Symbol(s)) => {
                    let _ = r.add_symbol(s);
                    false
                }
                Some(Msg::Done) => {
                    done += 1;
                    done >= substreams
                }
                None => true,
            },
            _ = tick.tick() => false,
        };
        loop {
            while let Some(seg) = r.pop_ready() {
                write(out, &seg.data, ctx).await?;
                summary.played += seg.data.len() as u64;
                summary.segments += 1;
                ctx.want.store(seg.seq + 1, Ordering::SeqCst);
            }
            let give_up = if finished {
                r.held() > 0
            } else if r.later_ready() {
                ready_since.get_or_insert_with(Instant::now).elapsed() >= ctx.config.give_up
            } else {
                ready_since = None;
                false
            };
            if !give_up {
                break;
            }
            ready_since = None;
            if let Some(lost) = r.abandon_next() {
                summary.lost_segments += 1;
                ctx.want.store(lost.seq + 1, Ordering::SeqCst);
                ctx.rec.record(
                    Some(lost.seq),
                    Kind::StreamLost {
                        bytes: lost.bytes.map_or(0, u64::from),
                        segments: 1,
                    },
                );
            }
        }
        if summary.played != sampled.1 && sampled.0.elapsed() >= SAMPLE_EVERY {
            ctx.record_bytes(summary.played);
            sampled = (Instant::now(), summary.played);
        }
        if finished {
            break;
        }
    }
    let stats = r.stats();
    summary.surplus = stats.symbols_redundant + stats.symbols_late + stats.symbols_duplicate;
    summary.decode_time = stats.decode_time;
    summary.symbols_expected = stats.symbols_expected;
    summary.symbols_lost = stats.symbols_lost;
    Ok(summary)
}

async fn write(
    out: &mut Option<tokio::fs::File>,
    data: &[u8],
    ctx: &Ctx,
) -> Result<(), RelayError> {
    if let Some(f) = out {
        let path = || ctx.config.out.clone().unwrap_or_default();
        f.write_all(data).await.map_err(|source| RelayError::Out {
            path: path(),
            source,
        })?;
        f.flush().await.map_err(|source| RelayError::Out {
            path: path(),
            source,
        })?;
    }
    Ok(())
}
