//! The publisher's HTTP side (axum): the signed manifest with blocking reload, segment torrents
//! and files, the embedded tracker, metrics ([`crate::metrics`]) and a live dashboard
//! ([`Status`]: `GET /` and `GET /status.json`). The accept
//! loop, its limits and timeouts are [`crate::serve`]'s.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use swarmcast_core::{InfoHash, SignedManifest};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use swarmcast_swarm::ratelimit::ByteLimiter;

use crate::natcheck::NatChecker;
use crate::tracker::Tracker;

/// How long `GET /manifest?after=<seq>` holds a request waiting for a newer manifest.
pub const LONG_POLL_HOLD: Duration = Duration::from_secs(10);
/// How many recent manifests are kept as bases for deltas (`?after=<seq>&delta=1`).
pub const DELTA_BASES: usize = 8;

/// A segment the HTTP side serves.
#[derive(Clone, Debug)]
pub struct Served {
    /// The segment file.
    pub path: PathBuf,
    /// The `.torrent` file.
    pub torrent: Bytes,
    /// Its info hash.
    pub info_hash: InfoHash,
    /// Size in bytes.
    pub size: u64,
    /// Still in the manifest's window (false: in its grace period).
    pub in_window: bool,
    /// Bytes of this segment sent over HTTP so far.
    pub http_bytes: Arc<AtomicU64>,
}

/// Counters of the HTTP side, for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// `GET /manifest` answered with a document.
    pub manifest_responses: AtomicU64,
    /// Manifest bytes sent.
    pub manifest_bytes: AtomicU64,
    /// Of `manifest_responses`, the answers sent as a delta.
    pub manifest_deltas: AtomicU64,
    /// `GET /manifest` answered 304 (ETag matched).
    pub manifest_not_modified: AtomicU64,
    /// Stream pointers put on the DHT (`--dht`).
    pub dht_puts: AtomicU64,
    /// Segments announced on the DHT.
    pub dht_announces: AtomicU64,
    /// DHT puts and announces that failed.
    pub dht_failures: AtomicU64,
    /// Long polls that were held until a newer manifest came.
    pub long_polls_woken: AtomicU64,
    /// `.torrent` responses.
    pub torrent_responses: AtomicU64,
    /// Torrent bytes sent.
    pub torrent_bytes: AtomicU64,
    /// Segment file requests (HTTP fallback and the HTTP baseline).
    pub segment_requests: AtomicU64,
    /// Segment bytes sent.
    pub segment_bytes: AtomicU64,
    /// Segment requests answered 503 (the fallback slots were taken while the swarm carried the
    /// stream).
    pub segment_refused: AtomicU64,
}

/// How long after the swarm last uploaded a byte it still counts as carrying the stream, for
/// [`admit_fallback`].
pub const SWARM_ACTIVE_MS: u64 = 5_000;

/// Whether a segment body may be served now: always with `slots` 0 (no limit) or while the swarm
/// is not carrying the stream (it has uploaded nothing, `swarm_active_ms` None, or nothing for
/// [`SWARM_ACTIVE_MS`]); otherwise only while fewer than `slots` bodies are in flight.
///
/// Under an upload budget the swarm's pieces go first and segment bodies get what they leave
/// (`ByteLimiter::take_low`), so a crowd of fallbacks cannot take a piece's bytes; but they
/// keep the budget full, many TCP flows at once, and the uplink's queue then drops what the
/// swarm sends too. A fallback that waits its turn is refused at once instead (the viewer
/// retries a second later, and meanwhile the swarm may complete the segment).
pub fn admit_fallback(
    in_flight: usize,
    slots: usize,
    swarm_active_ms: Option<u64>,
    now_ms: u64,
) -> bool {
    let carrying = swarm_active_ms.is_some_and(|t| now_ms.saturating_sub(t) < SWARM_ACTIVE_MS);
    slots == 0 || !carrying || in_flight < slots
}

/// Counts a segment body in flight while it lives.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// State shared between the pipeline and the HTTP handlers.
#[derive(Debug)]
pub struct Shared {
    /// The manifest being served (None until the first one is signed). Set it with
    /// [`Shared::serve_manifest`], which also keeps it as a base for deltas.
    pub manifest: watch::Sender<Option<Arc<SignedManifest>>>,
    /// The last [`DELTA_BASES`] manifests served, oldest first, and the deltas from them to the
    /// newest (by base sequence number; None: no delta saves anything), made on first request.
    deltas: Mutex<DeltaCache>,
    /// Segments served, by number.
    pub segments: RwLock<BTreeMap<u64, Served>>,
    /// The embedded tracker (None with `--no-embedded-tracker`).
    pub tracker: Option<Mutex<Tracker>>,
    /// HTTP counters.
    pub counters: HttpCounters,
    /// The HTTP server's connection counters ([`crate::serve`]).
    pub conns: Arc<crate::serve::ConnCounters>,
    /// What the segment writer dropped, and why it is dropping input now.
    pub feed: Arc<swarmcast_segmenter::source::FeedHealth>,
    /// The wire seeder's connection counters (None with a librqbit session).
    pub wire: Option<Arc<swarmcast_swarm::wire::WireCounters>>,
    /// Payload bytes uploaded by the swarm, all segments (sampled by the pipeline).
    pub uploaded_bytes: AtomicU64,
    /// Pieces the wire seeder found late (written whole, unacknowledged after `--late-piece`)
    /// and offered to another viewer, and of those, pieces that arrived after all (sampled by
    /// the pipeline).
    pub late_pieces: AtomicU64,
    /// See [`late_pieces`](Self::late_pieces).
    pub late_arrived: AtomicU64,
    /// External tracker whitelist rewrites (and reloads) done, and failed
    /// ([`crate::whitelist`]).
    pub whitelist_updates: AtomicU64,
    /// See [`whitelist_updates`](Self::whitelist_updates).
    pub whitelist_failures: AtomicU64,
    /// The stream link, for the status page.
    pub link: String,
    /// Set when the publisher stopped taking new segments (e.g. disk full).
    pub degraded: RwLock<Option<String>>,
    /// The tracker's clock.
    pub origin: Instant,
    /// The upload budget of what this server sends: segment bodies (written a slice at a time,
    /// each once granted, at low priority), manifests and tracker answers. With the wire seeder
    /// it is the seeder's budget too: one limit for everything the publisher uploads (`publish
    /// --upload-limit`).
    pub http_limiter: Option<Arc<ByteLimiter>>,
    /// Runs the tracker's NAT checks (None: the tracker's NAT check is off, or no tracker).
    pub nat_checker: Option<NatChecker>,
    /// Most segment bodies served at once while the swarm carries the stream, with an upload
    /// budget (0: no limit; see [`admit_fallback`]).
    pub fallback_slots: usize,
    /// Segment bodies being sent now.
    bodies_in_flight: Arc<AtomicUsize>,
    /// When the swarm last uploaded (on [`Shared::now_ms`]'s clock; `u64::MAX`: never), set by
    /// the pipeline's housekeeping.
    pub swarm_active_ms: AtomicU64,
    /// The dashboard's upload rates ([`Shared::sample_rates`]).
    rates: Mutex<status::Rates>,
    /// `/manifest` answers (false with `--no-http-manifests`: 404, the swarm carries them).
    pub http_manifests: bool,
    /// What carries manifests in the swarm (`--swarm-manifests`).
    pub carrier: Option<crate::carrier::Carrier>,
}

impl Shared {
    /// Shared state for a stream with `link`.
    pub fn new(link: String, tracker: Option<Tracker>) -> Self {
        Self {
            manifest: watch::channel(None).0,
            deltas: Mutex::default(),
            segments: RwLock::default(),
            tracker: tracker.map(Mutex::new),
            counters: HttpCounters::default(),
            conns: Arc::default(),
            feed: Arc::default(),
            wire: None,
            uploaded_bytes: AtomicU64::new(0),
            late_pieces: AtomicU64::new(0),
            late_arrived: AtomicU64::new(0),
            whitelist_updates: AtomicU64::new(0),
            whitelist_failures: AtomicU64::new(0),
            link,
            degraded: RwLock::new(None),
            origin: Instant::now(),
            http_limiter: None,
            nat_checker: None,
            fallback_slots: 0,
            bodies_in_flight: Arc::default(),
            swarm_active_ms: AtomicU64::new(u64::MAX),
            rates: Mutex::default(),
            http_manifests: true,
            carrier: None,
        }
    }

    /// Milliseconds on the tracker's clock.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Waits until the upload budget lets `len` more bytes go (at once when there is none).
    async fn pace(&self, len: usize) {
        if let Some(l) = &self.http_limiter {
            l.take(len).await;
        }
    }

    pub(crate) fn current(&self) -> Option<Arc<SignedManifest>> {
        self.manifest.borrow().clone()
    }

    /// Serves `signed` from now on, and keeps it as a base for the deltas of the next ones.
    pub fn serve_manifest(&self, signed: Arc<SignedManifest>) {
        {
            let mut cache = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
            cache.made.clear();
            cache.recent.push_back(signed.clone());
            while cache.recent.len() > DELTA_BASES {
                cache.recent.pop_front();
            }
        }
        self.manifest.send_replace(Some(signed));
    }

    /// The delta from the manifest with sequence number `base` to `current`, if `base` is one of
    /// the recent ones and a delta is smaller than the document.
    fn delta(&self, base: u64, current: &SignedManifest) -> Option<Bytes> {
        let mut cache = self.deltas.lock().unwrap_or_else(|e| e.into_inner());
        if cache.recent.back().map(|m| m.manifest.seq) != Some(current.manifest.seq) {
            return None;
        }
        if let Some(made) = cache.made.get(&base) {
            return made.clone();
        }
        let made = cache
            .recent
            .iter()
            .find(|m| m.manifest.seq == base)
            .and_then(|b| swarmcast_core::manifest::delta::encode(&b.manifest, current))
            .filter(|d| d.len() < current.bytes.len())
            .map(Bytes::from);
        cache.made.insert(base, made.clone());
        made
    }
}

/// See [`Shared::serve_manifest`].
#[derive(Debug, Default)]
struct DeltaCache {
    recent: VecDeque<Arc<SignedManifest>>,
    made: HashMap<u64, Option<Bytes>>,
}

/// The router; the publisher serves it with [`crate::serve::serve`] (its limits and timeouts;
/// handlers get the client's address as `ConnectInfo`), tests with `axum::serve` and
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(status::status_page))
        .route("/status.json", get(status::status_json))
        .route("/manifest", get(manifest))
        .route("/segments/{file}", get(segment))
        .route("/announce", get(announce))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

#[derive(Deserialize)]
struct ManifestQuery {
    after: Option<u64>,
    /// `1`: the follower can take a delta from `after` (docs/manifest.md, "Deltas").
    delta: Option<u8>,
}

fn etag(seq: u64) -> String {
    format!("\"seq-{seq}\"")
}

async fn manifest(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ManifestQuery>,
    headers: HeaderMap,
) -> Response {
    if !shared.http_manifests {
        return (
            StatusCode::NOT_FOUND,
            "manifests are not served over HTTP here (--no-http-manifests): the stream is found \
             on the DHT and its manifests in the swarm\n",
        )
            .into_response();
    }
    let mut rx = shared.manifest.subscribe();
    if let Some(after) = q.after {
        // Sequence numbers start at 1, so `?after=0` also waits for the very first manifest.
        let newer =
            |m: &Option<Arc<SignedManifest>>| m.as_ref().is_some_and(|m| m.manifest.seq > after);
        if !newer(&rx.borrow_and_update()) {
            // Blocking reload (as LL-HLS): hold until a newer manifest exists, or the hold ends.
            let woken = tokio::time::timeout(LONG_POLL_HOLD, rx.wait_for(newer)).await;
            if matches!(woken, Ok(Ok(_))) {
                shared
                    .counters
                    .long_polls_woken
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let Some(current) = shared.current() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "no manifest yet\n",
        )
            .into_response();
    };
    let tag = etag(current.manifest.seq);
    let cache = [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    let delta = match (q.after, q.delta) {
        (Some(after), Some(1)) if after < current.manifest.seq => shared.delta(after, &current),
        _ => None,
    };
    if let Some(delta) = delta {
        shared.pace(delta.len()).await;
        let c = &shared.counters;
        c.manifest_responses.fetch_add(1, Ordering::Relaxed);
        c.manifest_deltas.fetch_add(1, Ordering::Relaxed);
        c.manifest_bytes
            .fetch_add(delta.len() as u64, Ordering::Relaxed);
        return (
            [(
                header::CONTENT_TYPE,
                swarmcast_core::manifest::delta::DELTA_CONTENT_TYPE,
            )],
            cache,
            delta,
        )
            .into_response();
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        shared
            .counters
            .manifest_not_modified
            .fetch_add(1, Ordering::Relaxed);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)], cache).into_response();
    }
    shared.pace(current.bytes.len()).await;
    shared
        .counters
        .manifest_responses
        .fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .manifest_bytes
        .fetch_add(current.bytes.len() as u64, Ordering::Relaxed);
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-bittorrent-swarmcast-manifest".to_owned(),
            ),
            (header::ETAG, tag),
        ],
        cache,
        current.bytes.clone(),
    )
        .into_response()
}

async fn segment(
    State(shared): State<Arc<Shared>>,
    UrlPath(file): UrlPath<String>,
    request: Request,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            format!("no segment {file} here (never published, or out of the window)\n"),
        )
    };
    let Some((number, ext)) = file.split_once('.') else {
        return not_found().into_response();
    };
    let Ok(number) = number.parse::<u64>() else {
        return not_found().into_response();
    };
    let served = shared
        .segments
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&number)
        .cloned();
    let Some(served) = served else {
        return not_found().into_response();
    };
    match ext {
        "torrent" => {
            shared
                .counters
                .torrent_responses
                .fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .torrent_bytes
                .fetch_add(served.torrent.len() as u64, Ordering::Relaxed);
            (
                [(header::CONTENT_TYPE, "application/x-bittorrent")],
                served.torrent,
            )
                .into_response()
        }
        "ts" => {
            shared
                .counters
                .segment_requests
                .fetch_add(1, Ordering::Relaxed);
            let active = shared.swarm_active_ms.load(Ordering::Relaxed);
            let slots = if shared.http_limiter.is_some() {
                shared.fallback_slots
            } else {
                0
            };
            let in_flight = shared.bodies_in_flight.fetch_add(1, Ordering::SeqCst);
            let guard = InFlight(shared.bodies_in_flight.clone());
            if !admit_fallback(
                in_flight,
                slots,
                (active != u64::MAX).then_some(active),
                shared.now_ms(),
            ) {
                drop(guard);
                shared
                    .counters
                    .segment_refused
                    .fetch_add(1, Ordering::Relaxed);
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    format!(
                        "segment {file}: {in_flight} fallback(s) already being served while the swarm carries the stream (at most {slots} at once); try again in a second, or get it from the swarm\n"
                    ),
                )
                    .into_response();
            }
            // tower-http's ServeFile answers Range requests (206), If-Modified-Since, HEAD. It
            // answers a Range header it cannot parse with 416; RFC 9110 (14.1.1, 14.2) lets a
            // server ignore an invalid one, and a client that sent garbage is better served
            // whole: it is removed first (200). A valid range the body cannot satisfy (past its
            // end) is still a 416.
            let mut request = request;
            if request
                .headers()
                .get(header::RANGE)
                .is_some_and(|r| !valid_range(r))
            {
                request.headers_mut().remove(header::RANGE);
            }
            match tower_http::services::ServeFile::new_with_mime(
                &served.path,
                &"video/mp2t".parse().expect("a mime type"),
            )
            .oneshot(request)
            .await
            {
                Ok(r) => {
                    r.map(|body| metered(Body::new(body), shared.clone(), served.http_bytes, guard))
                }
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
            }
        }
        _ => not_found().into_response(),
    }
}

/// Whether a Range header is valid (RFC 9110, 14.1.1): `bytes=` and range specs whose last
/// position, when given, is not before their first.
fn valid_range(range: &axum::http::HeaderValue) -> bool {
    use http_range_header::{EndPosition, StartPosition};
    let Some(parsed) = range
        .to_str()
        .ok()
        .and_then(|r| http_range_header::parse_range_header(r).ok())
    else {
        return false;
    };
    parsed.ranges.iter().all(|r| match (&r.start, &r.end) {
        (StartPosition::Index(first), EndPosition::Index(last)) => first <= last,
        _ => true,
    })
}

/// Counts a segment body's bytes as they are handed to the server, and holds them to the
/// publisher's upload budget: cut into the budget's slices, each handed over once granted.
fn metered(body: Body, shared: Arc<Shared>, counter: Arc<AtomicU64>, guard: InFlight) -> Body {
    use futures_util::StreamExt;
    let slice = shared
        .http_limiter
        .as_ref()
        .map_or(usize::MAX, |l| l.slice());
    let sliced = body.into_data_stream().flat_map(move |chunk| {
        let parts: Vec<Result<bytes::Bytes, axum::Error>> = match chunk {
            Ok(mut b) => {
                let mut parts = Vec::with_capacity(b.len() / slice + 1);
                while b.len() > slice {
                    parts.push(Ok(b.split_to(slice)));
                }
                parts.push(Ok(b));
                parts
            }
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(parts)
    });
    let stream = sliced.then(move |chunk| {
        // The closure owns the in-flight guard: the body counts until the stream is dropped.
        let _ = &guard;
        let (shared, counter) = (shared.clone(), counter.clone());
        async move {
            if let Ok(bytes) = &chunk {
                if let Some(limiter) = &shared.http_limiter {
                    // Low priority: pieces and manifests first (with the wire seeder they share
                    // this budget), fallbacks get what they leave.
                    limiter.take_low(bytes.len()).await;
                }
                counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                shared
                    .counters
                    .segment_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            chunk
        }
    });
    Body::from_stream(stream)
}

async fn announce(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    let body = match &shared.tracker {
        Some(tracker) => {
            let now = shared.now_ms();
            let (body, checks) = {
                let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                let body = t.handle(query.as_deref().unwrap_or(""), remote.ip(), now);
                (body, t.to_check())
            };
            spawn_nat_checks(&shared, checks);
            body
        }
        None => crate::tracker::failure("the embedded tracker is off"),
    };
    shared.pace(body.len()).await;
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Connects back to the addresses the tracker wants checked, and tells it what was found.
fn spawn_nat_checks(shared: &Arc<Shared>, addrs: Vec<SocketAddr>) {
    if addrs.is_empty() {
        return;
    }
    let Some(checker) = &shared.nat_checker else {
        // Not wired: the tracker gives these up as lost and the next announce asks again.
        tracing::warn!(
            count = addrs.len(),
            "the tracker asked for NAT checks but no checker runs"
        );
        return;
    };
    let reporter = shared.clone();
    checker.spawn(addrs, move |addr, reachable| {
        if let Some(tracker) = &reporter.tracker {
            let now = reporter.now_ms();
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_reachable(addr, reachable, now);
        }
    });
}

/// `/metrics`: OpenMetrics to a client that asks for it (Prometheus), else the Prometheus text
/// format 0.0.4 (`curl`, `promtool check metrics`): [`swarmcast_metrics::exposition`].
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let (content_type, text) =
        swarmcast_metrics::exposition::negotiate(accept, crate::metrics::render(&shared));
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

mod status;
pub use status::{
    render as render_status, RateMeter, SegmentStatus, Status, RATE_WINDOW_MS,
    SCRIPT as STATUS_SCRIPT,
};

#[cfg(test)]
mod tests;
