//! Fetching and verifying manifests: blocking reload (`?after=<seq>`) where the server holds
//! requests, plain polling with backoff where it does not (a static mirror), trying the link's
//! sources in turn. Every document goes through one [`Verifier`] pinned to the link's key.
//! Once it holds a manifest, a blocking reload asks for a delta (`&delta=1`: only what changed,
//! docs/manifest.md "Deltas"); a server that does not make them answers with the document.

use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::manifest::delta;
use swarmcast_core::{ManifestError, SignedManifest, StreamLink, Verdict, Verifier};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::io::ManifestFetch;

/// A server that answers a blocking reload with an unchanged manifest faster than this does not
/// hold requests: switch to plain polling.
const HELD_AT_LEAST: Duration = Duration::from_millis(500);
/// Longest wait between failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one request may take in all (connect, headers, body): a held request is answered
/// within 10 s at our publisher; this bounds any server.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first request to each source may take while the viewer holds no manifest yet
/// (a healthy source answers it at once): a source that drips its answer delays startup by at
/// most this much before the next is tried. Once every source failed it, [`FETCH_TIMEOUT`].
const FIRST_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Target durations without a newer manifest after which a source is stale when another source
/// gave a newer one since.
const STALE_BEHIND_ANOTHER: u32 = 3;
/// Target durations without a newer manifest after which a source is stale in any case.
const STALE_ALWAYS: u32 = 5;

/// Whether a source is stale at `now` (the viewer's monotonic clock): it last gave a newer
/// manifest (or was moved to) at `advanced_at`, any source last did at `newest_at`, and the
/// stream's segments are `target` long. Stale when it has not advanced for
/// [`STALE_BEHIND_ANOTHER`] targets while another source advanced since, or for
/// [`STALE_ALWAYS`] targets in any case. A healthy source advances every target, so a long poll
/// held 10 s on a stream of one-minute segments is not stale. (A target of zero: never.)
pub fn is_stale(
    now: Instant,
    advanced_at: Instant,
    newest_at: Option<Instant>,
    target: Duration,
) -> bool {
    if target.is_zero() {
        return false;
    }
    let quiet = now.saturating_duration_since(advanced_at);
    quiet >= target * STALE_ALWAYS
        || (quiet >= target * STALE_BEHIND_ANOTHER && newest_at.is_some_and(|t| t > advanced_at))
}

/// What the poller reports.
#[derive(Debug)]
pub enum PollEvent {
    /// A newer verified manifest, the URL it came from, and how it was fetched.
    Manifest {
        /// The manifest.
        manifest: Arc<SignedManifest>,
        /// Where it came from.
        source: Url,
        /// `long_poll` or `poll`.
        mode: &'static str,
        /// Bytes fetched (the delta's, when it came as one).
        fetched: u64,
        /// It came as a delta.
        delta: bool,
    },
    /// A document was refused; playback goes on with what it has.
    Refused {
        /// Where it came from.
        source: Url,
        /// Why.
        error: ManifestError,
    },
    /// A source could not be reached.
    Unreachable {
        /// The source.
        source: Url,
        /// Why.
        error: String,
    },
}

/// The poller's HTTP client: requests that cannot connect within 5 s fail.
pub(crate) fn manifest_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
}

/// Polls the link's sources until `cancel` or the end of the stream; `deltas`: ask for deltas.
pub async fn poll_manifests(
    link: StreamLink,
    deltas: bool,
    tx: mpsc::Sender<PollEvent>,
    cancel: CancellationToken,
) {
    let client = match manifest_client() {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(PollEvent::Unreachable {
                    source: link.sources[0].clone(),
                    error: e.to_string(),
                })
                .await;
            return;
        }
    };
    poll_with(&client, link, deltas, tx, cancel).await;
}

/// [`poll_manifests`] with the documents fetched by `http`.
pub(crate) async fn poll_with<M: ManifestFetch>(
    http: &M,
    link: StreamLink,
    deltas: bool,
    tx: mpsc::Sender<PollEvent>,
    cancel: CancellationToken,
) {
    let mut poller = Poller::new(&link);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let base = &link.sources[poller.source];
        let url = poller.request(base, deltas);
        let started = Instant::now();
        let timeout = poller.timeout();
        let fetched = tokio::select! {
            r = http.manifest(&url, timeout) => r,
            () = cancel.cancelled() => return,
        };
        let step = match fetched {
            Ok(body) => poller.answered(base, &body, started),
            Err(error) => poller.failed(base, error, started, timeout),
        };
        if let Some(event) = step.event {
            let sent = tx.send(event).await.is_ok();
            // A new manifest: stop after the last one, or once nobody listens.
            if step.new.is_some_and(|end| end || !sent) {
                return;
            }
        }
        if !step.wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(step.wait) => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// What one answer (or failure) leads to.
struct Step {
    /// The event to send.
    event: Option<PollEvent>,
    /// A new manifest, and whether it is the stream's last.
    new: Option<bool>,
    /// How long to wait before the next request.
    wait: Duration,
}

impl Step {
    fn wait(wait: Duration) -> Self {
        Self {
            event: None,
            new: None,
            wait,
        }
    }
}

/// The poller's state between requests.
struct Poller {
    verifier: Verifier,
    sources: usize,
    /// The source asked next.
    source: usize,
    /// Per source: it holds requests (blocking reload), else it is polled.
    long_poll: Vec<bool>,
    backoff: Duration,
    poll_interval: Duration,
    /// After a refused delta, the next request asks for the whole document.
    full_next: bool,
    /// Per source, when it last gave a newer manifest (or was moved to).
    advanced_at: Vec<Instant>,
    /// When any source last did.
    newest_at: Option<Instant>,
    /// The stream's target duration (from its manifests).
    target: Option<Duration>,
    /// First requests that failed.
    first_failures: usize,
}

impl Poller {
    fn new(link: &StreamLink) -> Self {
        let sources = link.sources.len();
        Self {
            verifier: Verifier::new(link.key),
            sources,
            source: 0,
            long_poll: vec![true; sources],
            backoff: Duration::from_millis(100),
            poll_interval: Duration::from_millis(500),
            full_next: false,
            advanced_at: vec![Instant::now(); sources],
            newest_at: None,
            target: None,
            first_failures: 0,
        }
    }

    /// The URL to ask `base` (the current source): a blocking reload for what comes after the
    /// last accepted manifest (as a delta if `deltas`), or the plain document.
    fn request(&self, base: &Url, deltas: bool) -> Url {
        let mut url = base.clone();
        if self.long_poll[self.source] {
            let last = self.verifier.last_seq();
            url.query_pairs_mut()
                .append_pair("after", &last.unwrap_or(0).to_string());
            if deltas && !self.full_next && last.is_some() {
                url.query_pairs_mut().append_pair("delta", "1");
            }
        }
        url
    }

    /// How long the next request may take.
    fn timeout(&self) -> Duration {
        if self.verifier.last_seq().is_none() && self.first_failures < self.sources {
            FIRST_FETCH_TIMEOUT
        } else {
            FETCH_TIMEOUT
        }
    }

    /// `base` answered `body` to a request made at `started`.
    fn answered(&mut self, base: &Url, body: &[u8], started: Instant) -> Step {
        self.backoff = Duration::from_millis(100);
        let is_delta = delta::is_delta(body);
        self.full_next = false;
        match self.verifier.accept_any(body) {
            Ok(Verdict::New(m)) => self.new_manifest(m, base, body.len() as u64, is_delta),
            Ok(Verdict::Unchanged) => self.unchanged(base, started),
            Err(error) => {
                let mut wait = Duration::ZERO;
                if is_delta {
                    // The document itself may be fine: ask this source for it whole.
                    tracing::warn!(%base, %error, "manifest delta refused; asking for the whole document");
                    self.full_next = true;
                } else {
                    tracing::warn!(%base, %error, "manifest refused; playing on with what we have");
                    // Perhaps a bad mirror: try the next source.
                    wait = self.next_source();
                }
                Step {
                    event: Some(PollEvent::Refused {
                        source: base.clone(),
                        error,
                    }),
                    new: None,
                    wait,
                }
            }
        }
    }

    fn new_manifest(&mut self, m: SignedManifest, base: &Url, fetched: u64, delta: bool) -> Step {
        let target = m.manifest.target_duration;
        self.poll_interval = Duration::from_millis((target / 90 / 4).clamp(100, 2000));
        let now = Instant::now();
        self.advanced_at[self.source] = now;
        self.newest_at = Some(now);
        self.target = Some(Duration::from_micros(target.saturating_mul(100) / 9));
        let end = m.manifest.end_of_stream;
        let mode = if self.long_poll[self.source] {
            "long_poll"
        } else {
            "poll"
        };
        Step {
            event: Some(PollEvent::Manifest {
                manifest: Arc::new(m),
                source: base.clone(),
                mode,
                fetched,
                delta,
            }),
            new: Some(end),
            wait: Duration::ZERO,
        }
    }

    /// `base` answered the last accepted manifest again, to a request made at `started`.
    fn unchanged(&mut self, base: &Url, started: Instant) -> Step {
        let source = self.source;
        if self.long_poll[source]
            && started.elapsed() < HELD_AT_LEAST
            && self.verifier.last_seq().is_some()
        {
            tracing::info!(%base, "the server does not hold manifest requests: polling instead");
            self.long_poll[source] = false;
        }
        let mut wait = Duration::ZERO;
        if !self.long_poll[source] {
            wait = self.poll_interval;
        }
        // Answering, but with nothing new for too long: a stale mirror.
        let now = Instant::now();
        let advanced_at = self.advanced_at[source];
        if self.sources > 1
            && self
                .target
                .is_some_and(|t| is_stale(now, advanced_at, self.newest_at, t))
        {
            tracing::warn!(
                %base,
                quiet_ms = now.duration_since(advanced_at).as_millis() as u64,
                "manifest source is stale (no newer manifest for several segments); trying the next"
            );
            self.source = (source + 1) % self.sources;
            self.advanced_at[self.source] = now;
            wait = Duration::ZERO;
        }
        Step::wait(wait)
    }

    /// A request to `base` made at `started` within `timeout` failed.
    fn failed(&mut self, base: &Url, error: String, started: Instant, timeout: Duration) -> Step {
        if self.verifier.last_seq().is_none() {
            self.first_failures += 1;
        }
        if timeout == FIRST_FETCH_TIMEOUT && started.elapsed() >= timeout {
            // A publisher holds a first request until it has a manifest: not an error.
            tracing::info!(%base, "no manifest within 2 s (none published yet, or a slow source); trying the next");
        } else {
            tracing::warn!(%base, %error, "manifest source unreachable; trying the next");
        }
        Step {
            event: Some(PollEvent::Unreachable {
                source: base.clone(),
                error,
            }),
            new: None,
            wait: self.next_source(),
        }
    }

    /// Moves to the next source; returns how long to wait first, and doubles the backoff.
    fn next_source(&mut self) -> Duration {
        next_source(&mut self.source, self.sources, &mut self.backoff)
    }
}

/// Moves to the next source; returns how long to wait first, and doubles the backoff.
fn next_source(source: &mut usize, sources: usize, backoff: &mut Duration) -> Duration {
    *source = (*source + 1) % sources;
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    wait
}

/// Fetches a document of at most `max` bytes within `timeout` (connect, headers and body); an
/// error status, or a body found larger than `max`, is an error. The one bounded fetch of
/// swarmcast's documents (manifests here, and what `swarmcast inspect` is given by URL).
pub async fn fetch_capped(
    client: &reqwest::Client,
    url: &Url,
    timeout: Duration,
    max: usize,
) -> Result<Vec<u8>, String> {
    let response = client
        .get(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let response = response.error_for_status().map_err(|e| e.to_string())?;
    read_capped(response, max).await
}

/// Reads a response body of at most `max` bytes, refusing a larger one as soon as its length
/// header or its bytes so far say so: a source cannot make the viewer hold more than `max` (plus
/// one chunk) of a document it will refuse anyway.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let too_big = |n: u64| format!("{n} bytes or more: larger than the {max} bytes allowed");
    if let Some(n) = response.content_length().filter(|n| *n > max as u64) {
        return Err(too_big(n));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(too_big((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
