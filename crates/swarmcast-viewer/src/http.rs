//! The viewer's HTTP server (`watch --http-out ADDR`, or `--metrics-addr ADDR` for `/metrics`
//! alone):
//!
//! - `/stream.ts`, and `/` for clients whose `Accept` lacks `text/html` (players): the
//!   continuous stream, `video/mp2t`, from the next segment played on;
//! - `/watch`, and `/` for browsers: the page (`page.html`), hls.js on `/live.m3u8` with an
//!   overlay of live figures;
//! - `/live.m3u8`: a live HLS media playlist of the segments verified and not yet forgotten
//!   ([`playlist`]), each at `/segments/<n, 8 digits>.ts`, kept as RFC 8216 §6.2.2 requires
//!   after they leave it ([`retain`]);
//! - `/hls.min.js`: hls.js, from a file found at start ([`hlsjs`]);
//! - `/status.json`: the live figures ([`LiveSnapshot`] and `peer_share`);
//! - `/metrics`: OpenMetrics text ([`metrics`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use swarmcast_tasks::Tasks;
use tokio::sync::broadcast;

use crate::live::{Live, LiveSnapshot};

mod hls;
pub mod hlsjs;
pub mod metrics;
pub mod playlist;
pub mod retain;

pub(crate) use hls::Hls;

/// The page, served at `/watch` (and `/` to browsers).
const PAGE: &str = include_str!("http/page.html");
/// Segments a slow stream client may fall behind before it misses some.
pub(crate) const STREAM_BACKLOG: usize = 16;
/// How often the kept segments are checked for the end of their retention.
const EXPIRY_TICK: Duration = Duration::from_millis(500);
/// The HLS directory under the viewer's data directory.
pub(crate) const HLS_DIR: &str = "hls";

/// What the server serves.
struct App {
    live: Live,
    /// The stream and HLS, with an HTTP output; `None`: `/metrics` and `/status.json` alone.
    playback: Option<Playback>,
}

struct Playback {
    /// The sink holds the stream's only sender: when it is dropped, the stream's clients see
    /// its end.
    stream: broadcast::WeakSender<Bytes>,
    hls: Arc<Hls>,
    hls_js: Option<PathBuf>,
}

/// A running server.
pub(crate) struct Server {
    /// Its bound address.
    pub(crate) addr: SocketAddr,
    /// The stream's sender (for the sink: the only one) and HLS, with an HTTP output.
    pub(crate) playback: Option<(broadcast::Sender<Bytes>, Arc<Hls>)>,
    /// HLS, with an HTTP output.
    pub(crate) hls: Option<Arc<Hls>>,
}

/// Where a playback server's parts come from.
pub(crate) struct PlaybackParts {
    /// The HLS directory (created, emptied; removed by [`Hls::remove_files`]).
    pub(crate) hls_dir: PathBuf,
    /// hls.js's file, if found.
    pub(crate) hls_js: Option<PathBuf>,
}

/// Starts the server on `addr` (a task of `tasks`, which runs until they are cancelled):
/// with `playback`, everything; without, `/metrics` and `/status.json` alone.
pub(crate) async fn start(
    addr: SocketAddr,
    live: Live,
    playback: Option<PlaybackParts>,
    tasks: &Tasks,
) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (app, parts) = match playback {
        Some(p) => {
            let (stream, _) = broadcast::channel(STREAM_BACKLOG);
            let hls = Arc::new(Hls::new(live.clone(), p.hls_dir)?);
            spawn_sync(tasks, live.clone(), hls.clone());
            let app = App {
                live,
                playback: Some(Playback {
                    stream: stream.downgrade(),
                    hls: hls.clone(),
                    hls_js: p.hls_js,
                }),
            };
            (app, Some((stream, hls)))
        }
        None => (
            App {
                live,
                playback: None,
            },
            None,
        ),
    };
    let router = router(Arc::new(app));
    tasks.spawn("playback-http-server", async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "playback HTTP server failed");
        }
    });
    Ok(Server {
        addr: bound,
        hls: parts.as_ref().map(|p| p.1.clone()),
        playback: parts,
    })
}

/// The viewer's server, if it has one: the playback server on an HTTP output's address (with
/// its HLS directory in `dir` and hls.js from `hls_js`), or `/metrics` alone on
/// `--metrics-addr`.
pub(crate) async fn start_for(
    config: &crate::WatchConfig,
    dir: &std::path::Path,
    hls_js: Option<PathBuf>,
    live: &Live,
    tasks: &Tasks,
) -> Result<Option<Server>, crate::WatchError> {
    let (addr, playback) = match (&config.sink, config.metrics_addr) {
        (crate::SinkConfig::Http(addr), metrics_addr) => {
            if let Some(m) = metrics_addr {
                tracing::warn!(%m, "--metrics-addr is ignored: /metrics is served on the HTTP output");
            }
            match &hls_js {
                Some(p) => tracing::info!(hls_js = %p.display(), "the page's hls.js"),
                None => tracing::warn!("{}", hlsjs::MISSING),
            }
            let parts = PlaybackParts {
                hls_dir: dir.join(HLS_DIR),
                hls_js,
            };
            (*addr, Some(parts))
        }
        (_, Some(addr)) => (addr, None),
        _ => return Ok(None),
    };
    let server = start(addr, live.clone(), playback, tasks)
        .await
        .map_err(|source| crate::WatchError::Io {
            what: format!("HTTP server on {addr}"),
            source,
        })?;
    Ok(Some(server))
}

/// hls.js for an HTTP output ([`hlsjs::find`] from `--hls-js`, the current directory and the
/// executable); `None` without one.
pub(crate) fn hls_js_for(
    config: &crate::WatchConfig,
) -> Result<Option<PathBuf>, hlsjs::HlsJsError> {
    match config.sink {
        crate::SinkConfig::Http(_) => hlsjs::find(
            config.hls_js.as_deref(),
            std::env::current_dir().ok().as_deref(),
            std::env::current_exe().ok().as_deref(),
        ),
        _ => Ok(None),
    }
}

/// After playback: lingers if the stream ended ([`linger`]), then shuts the server's `tasks`
/// down and removes the kept HLS files.
pub(crate) async fn stop(
    server: Option<Server>,
    tasks: Tasks,
    end_of_stream: bool,
    cancel: &tokio_util::sync::CancellationToken,
) {
    let hls = server.and_then(|s| s.hls);
    if let Some(hls) = &hls {
        linger(hls, end_of_stream, cancel).await;
    }
    tasks.shutdown().await;
    if let Some(hls) = hls {
        hls.remove_files();
    }
}

/// After playback: if the stream ended (and the viewer is not being stopped), the server stays
/// up for HLS clients to finish, for the retention of the last playlist's segments (at most
/// [`hls::MAX_LINGER`]), or until `cancel`.
async fn linger(hls: &Hls, end_of_stream: bool, cancel: &tokio_util::sync::CancellationToken) {
    let linger = hls.finish();
    if !end_of_stream || cancel.is_cancelled() || linger.is_zero() {
        return;
    }
    tracing::info!(
        linger_ms = linger.as_millis() as u64,
        "the stream ended: the HLS playlist and its segments stay served while players finish"
    );
    tokio::select! {
        () = tokio::time::sleep(linger) => {}
        () = cancel.cancelled() => {}
    }
}

/// Keeps HLS in step with the live state: at every change (a segment verified is linked before
/// the viewer can delete it) and every [`EXPIRY_TICK`] (retention ends).
fn spawn_sync(tasks: &Tasks, live: Live, hls: Arc<Hls>) {
    tasks.spawn("hls-sync", async move {
        let mut changes = live.subscribe();
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tick.tick() => {}
            }
            hls.sync();
        }
    });
}

fn router(app: Arc<App>) -> axum::Router {
    let mut router = axum::Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status.json", get(status));
    if app.playback.is_some() {
        router = router
            .route("/", get(root))
            .route("/stream.ts", get(stream))
            .route("/watch", get(page))
            .route("/live.m3u8", get(live_playlist))
            .route("/segments/{name}", get(segment))
            .route("/hls.min.js", get(hls_js));
    }
    router.with_state(app)
}

/// `/`: the page to a browser (`Accept` with `text/html`), the stream to anything else.
async fn root(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"));
    if html {
        page().await
    } else {
        stream(State(app)).await
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// The continuous stream from the next segment played on; a client too slow for it misses
/// segments, not the stream.
async fn stream(State(app): State<Arc<App>>) -> Response {
    let Some(p) = &app.playback else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Playback ended: the stream has too.
    let Some(rx) = p.stream.upgrade().map(|tx| tx.subscribe()) else {
        return (StatusCode::GONE, "playback has ended\n").into_response();
    };
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(b) => return Some((Ok::<Bytes, std::io::Error>(b), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "video/mp2t")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

async fn live_playlist(State(app): State<Arc<App>>) -> Response {
    let Some(p) = &app.playback else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match p.hls.playlist() {
        Some(text) => (
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::RETRY_AFTER, "1"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            "no segment verified yet: retry in a second\n",
        )
            .into_response(),
    }
}

/// `/segments/<n, 8 digits or more>.ts`: a segment listed now, or within its retention; else 404.
async fn segment(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(p) = &app.playback else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let number = name
        .strip_suffix(".ts")
        .filter(|d| (8..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u64>().ok());
    let Some(path) = number.and_then(|n| p.hls.segment_path(n)) else {
        return (StatusCode::NOT_FOUND, "no such segment\n").into_response();
    };
    // Opened, the file stays readable to the end even if its retention ends meanwhile.
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return (StatusCode::NOT_FOUND, "no such segment\n").into_response();
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = (
        [(header::CONTENT_TYPE, "video/mp2t")],
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response();
    if let Some(len) = len {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
    }
    response
}

async fn hls_js(State(app): State<Arc<App>>) -> Response {
    let file = app.playback.as_ref().and_then(|p| p.hls_js.clone());
    match file {
        Some(path) => match tokio::fs::read(&path).await {
            Ok(js) => (
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                js,
            )
                .into_response(),
            Err(e) => (
                StatusCode::NOT_FOUND,
                format!("{}: {e}\n{}\n", path.display(), hlsjs::MISSING),
            )
                .into_response(),
        },
        None => (StatusCode::NOT_FOUND, format!("{}\n", hlsjs::MISSING)).into_response(),
    }
}

/// The live figures as JSON: the [`LiveSnapshot`]'s fields and `peer_share` (0 to 1, of swarm
/// bytes, `null` before any).
async fn status(State(app): State<Arc<App>>) -> Response {
    let snap: LiveSnapshot = app.live.snapshot();
    let mut value = serde_json::to_value(&snap).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("peer_share".into(), serde_json::json!(snap.peer_share()));
    }
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        value.to_string(),
    )
        .into_response()
}

/// `/metrics`: OpenMetrics text to a client that asks for it (`Accept:
/// application/openmetrics-text`, as Prometheus does), else the Prometheus text format 0.0.4
/// (what `curl` and `promtool check metrics` read).
async fn metrics_text(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let (content_type, text) =
        swarmcast_metrics::exposition::negotiate(accept, metrics::render(&app.live));
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

#[cfg(test)]
mod tests;
