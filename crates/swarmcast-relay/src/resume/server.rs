//! The relay's HTTP side (axum): `GET /stream` (live), `GET /stream?from=<segment>:<offset>`
//! (resume), and `GET /manifest` (the newest signed manifest the relay holds, with blocking
//! reload as the publisher's), docs/relay.md.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use swarmcast_core::SignedManifest;
use tokio::sync::watch;

use super::buffer::{BackBuffer, Read, StartError};
use super::position::Position;

/// Response header: the position the body starts at.
pub const POSITION_HEADER: &str = "x-swarmcast-position";
/// Response header: stream bytes skipped (the request was older than the back buffer).
pub const LOST_HEADER: &str = "x-swarmcast-lost";
/// Response header: whole or partial segments skipped.
pub const LOST_SEGMENTS_HEADER: &str = "x-swarmcast-lost-segments";
/// How long a relay holds `GET /manifest?after=N` when it has nothing newer. Short, so that a
/// child hears from a live parent at least this often even between segments (the answer is a
/// 304 when the child sent the document's ETag): the child's detection of a silent parent
/// counts these answers as well as stream bytes.
pub const MANIFEST_HOLD: Duration = Duration::from_secs(1);
/// How long a request waits for the relay to hold what it asks for before it is refused: a
/// plain GET before the relay has a segment start, or a position in a segment not known yet.
pub const START_WAIT: Duration = Duration::from_secs(10);
/// The most bytes sent in one body chunk.
const CHUNK: usize = 64 * 1024;

/// The state the relay's server and its upstream client share.
#[derive(Debug)]
pub struct Shared {
    /// The back buffer.
    pub buffer: Mutex<BackBuffer>,
    /// Bumped whenever the buffer or the manifest changes (readers wait on it).
    pub changed: watch::Sender<u64>,
    /// The newest signed manifest held.
    pub manifest: watch::Sender<Option<Arc<SignedManifest>>>,
    /// `/stream` bodies being sent now.
    pub streams: AtomicUsize,
    /// `/stream` bodies served at once at most (the fan-out; 0: no limit). A request over it is
    /// answered 503 (`relay full`), so that a child takes another parent rather than share a
    /// link that cannot carry it.
    pub max_streams: AtomicUsize,
    /// Stream bytes sent to children, in all.
    pub sent: AtomicU64,
    /// For each segment from the oldest held on, the newest signed manifest listing it
    /// (`GET /manifest?segment=N`: a child resuming more than a window behind verifies with it).
    docs: Mutex<BTreeMap<u64, Arc<SignedManifest>>>,
}

impl Shared {
    /// A relay keeping `back_ticks` of media.
    pub fn new(back_ticks: u64) -> Self {
        Self {
            buffer: Mutex::new(BackBuffer::new(back_ticks)),
            changed: watch::Sender::new(0),
            manifest: watch::Sender::new(None),
            streams: AtomicUsize::new(0),
            max_streams: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            docs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The buffer, locked.
    pub fn buffer(&self) -> std::sync::MutexGuard<'_, BackBuffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes readers.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// A newer verified manifest: learnt, served, readers woken.
    pub fn new_manifest(&self, signed: Arc<SignedManifest>) {
        let oldest = {
            let mut b = self.buffer();
            b.learn(&signed);
            b.oldest().map_or(0, |p| p.segment)
        };
        {
            let mut docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
            for e in &signed.manifest.segments {
                docs.insert(e.number, signed.clone());
            }
            // Only what a child could resume to: the held segments and newer.
            docs.retain(|n, _| *n >= oldest);
        }
        self.manifest.send_replace(Some(signed));
        self.bump();
    }

    /// The newest signed manifest held that lists segment `n`.
    pub fn manifest_listing(&self, n: u64) -> Option<Arc<SignedManifest>> {
        self.docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
            .cloned()
    }
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/stream", get(stream))
        .route("/manifest", get(manifest))
        .with_state(shared)
}

#[derive(Deserialize)]
struct StreamQuery {
    from: Option<String>,
}

fn text(status: StatusCode, body: String) -> Response {
    (status, format!("{body}\n")).into_response()
}

async fn stream(State(shared): State<Arc<Shared>>, Query(q): Query<StreamQuery>) -> Response {
    let from = match q.from.as_deref().map(str::parse::<Position>).transpose() {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut rx = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let start = loop {
        rx.borrow_and_update();
        let result = shared.buffer().start(from);
        match result {
            Ok(s) => break s,
            Err(e @ (StartError::PastSegmentEnd { .. } | StartError::TooOld { .. })) => {
                return text(StatusCode::RANGE_NOT_SATISFIABLE, e.to_string())
            }
            Err(e) => {
                if tokio::time::timeout_at(deadline, rx.changed())
                    .await
                    .is_err()
                {
                    let status = match e {
                        StartError::Ahead { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
                        _ => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    return (status, [(header::RETRY_AFTER, "1")], format!("{e}\n"))
                        .into_response();
                }
            }
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp2t"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let value = |v: String| HeaderValue::from_str(&v).expect("digits and a colon");
    headers.insert(POSITION_HEADER, value(start.at.to_string()));
    if start.lost_bytes > 0 || start.lost_segments > 0 {
        headers.insert(LOST_HEADER, value(start.lost_bytes.to_string()));
        headers.insert(LOST_SEGMENTS_HEADER, value(start.lost_segments.to_string()));
    }
    let max = shared.max_streams.load(Ordering::SeqCst);
    let taken = shared
        .streams
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (max == 0 || n < max).then_some(n + 1)
        });
    if taken.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            format!("relay full: {max} children already\n"),
        )
            .into_response();
    }
    let reader = Reader {
        shared,
        at: start.at,
        rx,
    };
    let body = futures_util::stream::unfold(Some(reader), |r| async move {
        let mut r = r?;
        match r.next().await? {
            Ok(data) => Some((Ok(data), Some(r))),
            // Aborted, not ended: the child must not take it for the end of the stream.
            Err(e) => Some((Err(e), None)),
        }
    });
    (headers, Body::from_stream(body)).into_response()
}

/// One `/stream` body: reads the buffer from its position on.
struct Reader {
    shared: Arc<Shared>,
    at: Position,
    rx: watch::Receiver<u64>,
}

impl Reader {
    /// The next bytes; None at the end of the stream (the body ends cleanly). An error when the
    /// position left the buffer or reached a gap of the relay's own: the body is aborted (no
    /// last chunk), so that the child resumes at once, elsewhere, and is told what it lost,
    /// rather than waiting to learn whether the stream ended.
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            self.rx.borrow_and_update();
            let read = {
                let b = self.shared.buffer();
                let at = b.normalize(self.at);
                let r = b.read(at, CHUNK);
                if let Read::Data(d) = &r {
                    self.at = b.normalize(Position::new(at.segment, at.offset + d.len() as u64));
                }
                r
            };
            match read {
                Read::Data(d) => {
                    self.shared
                        .sent
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                    return Some(Ok(d));
                }
                Read::Wait => self.rx.changed().await.ok()?,
                Read::End => return None,
                Read::Gone => {
                    return Some(Err(std::io::Error::other(format!(
                        "position {} is not held here (behind the back buffer, or a gap): resume",
                        self.at
                    ))))
                }
            }
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Deserialize)]
struct ManifestQuery {
    after: Option<u64>,
    /// A manifest listing this segment (the newest held that does), not the newest.
    segment: Option<u64>,
}

fn etag(seq: u64) -> String {
    format!("\"seq-{seq}\"")
}

async fn manifest(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ManifestQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(n) = q.segment {
        return match shared.manifest_listing(n) {
            Some(doc) => (
                [(
                    header::CONTENT_TYPE,
                    "application/x-bittorrent-swarmcast-manifest",
                )],
                Bytes::from(doc.bytes.clone()),
            )
                .into_response(),
            None => text(
                StatusCode::NOT_FOUND,
                format!("no signed manifest listing segment {n} here (older than the back buffer, or not published yet)"),
            ),
        };
    }
    let mut rx = shared.manifest.subscribe();
    if let Some(after) = q.after {
        let newer =
            |m: &Option<Arc<SignedManifest>>| m.as_ref().is_some_and(|m| m.manifest.seq > after);
        if !newer(&rx.borrow_and_update()) {
            let _ = tokio::time::timeout(MANIFEST_HOLD, rx.wait_for(newer)).await;
        }
    }
    let Some(current) = shared.manifest.borrow().clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "no manifest yet\n",
        )
            .into_response();
    };
    let tag = etag(current.manifest.seq);
    let cache = [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(tag.as_str())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)], cache).into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-bittorrent-swarmcast-manifest".to_owned(),
            ),
            (header::ETAG, tag),
        ],
        cache,
        Bytes::from(current.bytes.clone()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use swarmcast_core::InfoDict;

    use super::*;

    /// Segment `n`'s info: `length` bytes in 32 KiB pieces (hashes unchecked here).
    fn info(n: u64, length: u64) -> InfoDict {
        InfoDict {
            length,
            name: format!("{n:08}.ts"),
            piece_length: 32_768,
            pieces: vec![0; 20 * length.div_ceil(32_768) as usize],
        }
    }

    /// A relay holding segments 3 and 4 (1 s, 40,000 bytes each) of a stream whose segments
    /// 0 to 4 it knows, with a back buffer of 2 s, served on loopback.
    async fn served() -> (String, Arc<Shared>, swarmcast_tasks::Tasks) {
        let shared = Arc::new(Shared::new(180_000));
        {
            let mut b = shared.buffer();
            for n in 0..5u64 {
                b.learn_one(n, 90_000, info(n, 40_000));
            }
            for n in 2..5u64 {
                b.append(Position::start_of(n), Bytes::from(vec![n as u8; 32_768]))
                    .unwrap();
                b.append(Position::new(n, 32_768), Bytes::from(vec![n as u8; 7_232]))
                    .unwrap();
            }
            assert_eq!(b.held_segments(), vec![3, 4]);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = swarmcast_tasks::Tasks::new("relay-server-test");
        let app = router(shared.clone());
        tasks.spawn("server", async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), shared, tasks)
    }

    #[tokio::test]
    async fn resumes_say_where_they_start_and_what_they_lost_and_bodies_end_with_the_stream() {
        let (base, shared, tasks) = served().await;
        let client = reqwest::Client::new();
        let get = |q: &str| client.get(format!("{base}/stream{q}")).send();
        let header = |r: &reqwest::Response, h: &str| {
            r.headers().get(h).map(|v| v.to_str().unwrap().to_owned())
        };
        shared.buffer().set_last(4);
        shared.bump();

        // A plain GET: the newest segment start, to the end of the stream.
        let r = get("").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, POSITION_HEADER).as_deref(), Some("4:0"));
        assert_eq!(header(&r, LOST_HEADER), None);
        assert_eq!(r.bytes().await.unwrap(), vec![4u8; 40_000]);

        // Held: from there, nothing lost.
        let r = get("?from=3:39990").await.unwrap();
        assert_eq!(header(&r, POSITION_HEADER).as_deref(), Some("3:39990"));
        assert_eq!(header(&r, LOST_HEADER), None);
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), 10 + 40_000);

        // Older than the buffer: from its oldest byte, the loss counted exactly.
        let r = get("?from=1:100").await.unwrap();
        assert_eq!(header(&r, POSITION_HEADER).as_deref(), Some("3:0"));
        assert_eq!(header(&r, LOST_HEADER).as_deref(), Some("79900"));
        assert_eq!(header(&r, LOST_SEGMENTS_HEADER).as_deref(), Some("2"));
        assert_eq!(r.bytes().await.unwrap().len(), 80_000);

        // Bad requests name the problem.
        let r = get("?from=3").await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("expected <segment>:<offset>"));
        let r = get("?from=3:40001").await.unwrap();
        assert_eq!(r.status(), 416);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("segment 3 has 40000 bytes"));
        let r = client
            .get(format!("{base}/manifest?segment=3"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("no signed manifest listing segment 3"));
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn a_body_waits_for_bytes_not_here_yet() {
        let (base, shared, tasks) = served().await;
        let mut r = reqwest::get(format!("{base}/stream?from=5:0"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // Segment 5 arrives after the request.
        {
            let mut b = shared.buffer();
            b.learn_one(5, 90_000, info(5, 10));
            b.append(Position::start_of(5), Bytes::from_static(b"0123456789"))
                .unwrap();
            b.set_last(5);
        }
        shared.bump();
        let mut got = Vec::new();
        while let Some(c) = r.chunk().await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"0123456789");
        assert_eq!(shared.streams.load(Ordering::SeqCst), 0);
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn a_body_that_reaches_a_gap_of_the_relays_own_is_aborted_not_ended() {
        let (base, shared, tasks) = served().await;
        let mut r = reqwest::get(format!("{base}/stream?from=4:0"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut got = 0;
        while got < 40_000 {
            let c = r.chunk().await.unwrap().expect("segment 4's bytes");
            assert!(c.iter().all(|&x| x == 4));
            got += c.len();
        }
        // The relay resumed past its parent's buffer: it holds segment 6, not 5.
        {
            let mut b = shared.buffer();
            for n in 5..7u64 {
                b.learn_one(n, 90_000, info(n, 10));
            }
            b.append(Position::start_of(6), Bytes::from_static(b"0123456789"))
                .unwrap();
        }
        shared.bump();
        // An error, never a clean end: the child must not wait to learn whether the stream
        // ended.
        let end = match r.chunk().await {
            Ok(Some(c)) => panic!("{} bytes past the gap", c.len()),
            Ok(None) => "a clean end",
            Err(_) => "aborted",
        };
        assert_eq!(end, "aborted");
        tasks.shutdown().await;
    }
}
