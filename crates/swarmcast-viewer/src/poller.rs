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

/// Polls the link's sources until `cancel` or the end of the stream; `deltas`: ask for deltas.
pub async fn poll_manifests(
    link: StreamLink,
    deltas: bool,
    tx: mpsc::Sender<PollEvent>,
    cancel: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
    {
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
    let mut verifier = Verifier::new(link.key);
    let mut source = 0usize;
    let mut long_poll = vec![true; link.sources.len()];
    let mut backoff = Duration::from_millis(100);
    let mut poll_interval = Duration::from_millis(500);
    // After a refused delta, the next request asks for the whole document.
    let mut full_next = false;
    // Per source, when it last gave a newer manifest (or was moved to); when any source did;
    // the stream's target duration (from its manifests); first requests that failed.
    let mut advanced_at = vec![Instant::now(); link.sources.len()];
    let mut newest_at: Option<Instant> = None;
    let mut target: Option<Duration> = None;
    let mut first_failures = 0usize;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let base = &link.sources[source];
        let mut url = base.clone();
        if long_poll[source] {
            url.query_pairs_mut()
                .append_pair("after", &verifier.last_seq().unwrap_or(0).to_string());
            if deltas && !full_next && verifier.last_seq().is_some() {
                url.query_pairs_mut().append_pair("delta", "1");
            }
        }
        let started = Instant::now();
        let timeout = if verifier.last_seq().is_none() && first_failures < link.sources.len() {
            FIRST_FETCH_TIMEOUT
        } else {
            FETCH_TIMEOUT
        };
        let fetched = tokio::select! {
            r = fetch(&client, &url, timeout) => r,
            () = cancel.cancelled() => return,
        };
        let mut wait = Duration::ZERO;
        match fetched {
            Ok(body) => {
                backoff = Duration::from_millis(100);
                let is_delta = delta::is_delta(&body);
                full_next = false;
                match verifier.accept_any(&body) {
                    Ok(Verdict::New(m)) => {
                        poll_interval = Duration::from_millis(
                            (m.manifest.target_duration / 90 / 4).clamp(100, 2000),
                        );
                        let now = Instant::now();
                        advanced_at[source] = now;
                        newest_at = Some(now);
                        target = Some(Duration::from_micros(
                            m.manifest.target_duration.saturating_mul(100) / 9,
                        ));
                        let end = m.manifest.end_of_stream;
                        let mode = if long_poll[source] {
                            "long_poll"
                        } else {
                            "poll"
                        };
                        let event = PollEvent::Manifest {
                            manifest: Arc::new(m),
                            source: base.clone(),
                            mode,
                            fetched: body.len() as u64,
                            delta: is_delta,
                        };
                        if tx.send(event).await.is_err() || end {
                            return;
                        }
                    }
                    Ok(Verdict::Unchanged) => {
                        if long_poll[source]
                            && started.elapsed() < HELD_AT_LEAST
                            && verifier.last_seq().is_some()
                        {
                            tracing::info!(%base, "the server does not hold manifest requests: polling instead");
                            long_poll[source] = false;
                        }
                        if !long_poll[source] {
                            wait = poll_interval;
                        }
                        // Answering, but with nothing new for too long: a stale mirror.
                        let now = Instant::now();
                        if link.sources.len() > 1
                            && target
                                .is_some_and(|t| is_stale(now, advanced_at[source], newest_at, t))
                        {
                            tracing::warn!(
                                %base,
                                quiet_ms = now.duration_since(advanced_at[source]).as_millis() as u64,
                                "manifest source is stale (no newer manifest for several segments); trying the next"
                            );
                            source = (source + 1) % link.sources.len();
                            advanced_at[source] = now;
                            wait = Duration::ZERO;
                        }
                    }
                    Err(error) => {
                        if is_delta {
                            // The document itself may be fine: ask this source for it whole.
                            tracing::warn!(%base, %error, "manifest delta refused; asking for the whole document");
                            full_next = true;
                        } else {
                            tracing::warn!(%base, %error, "manifest refused; playing on with what we have");
                            // Perhaps a bad mirror: try the next source.
                            wait = next_source(&mut source, link.sources.len(), &mut backoff);
                        }
                        let _ = tx
                            .send(PollEvent::Refused {
                                source: base.clone(),
                                error,
                            })
                            .await;
                    }
                }
            }
            Err(error) => {
                if verifier.last_seq().is_none() {
                    first_failures += 1;
                }
                if timeout == FIRST_FETCH_TIMEOUT && started.elapsed() >= timeout {
                    // A publisher holds a first request until it has a manifest: not an error.
                    tracing::info!(%base, "no manifest within 2 s (none published yet, or a slow source); trying the next");
                } else {
                    tracing::warn!(%base, %error, "manifest source unreachable; trying the next");
                }
                let _ = tx
                    .send(PollEvent::Unreachable {
                        source: base.clone(),
                        error,
                    })
                    .await;
                wait = next_source(&mut source, link.sources.len(), &mut backoff);
            }
        }
        if !wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// Moves to the next source; returns how long to wait first, and doubles the backoff.
fn next_source(source: &mut usize, sources: usize, backoff: &mut Duration) -> Duration {
    *source = (*source + 1) % sources;
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    wait
}

/// Fetches a manifest within `timeout` (connect, headers and body).
async fn fetch(client: &reqwest::Client, url: &Url, timeout: Duration) -> Result<Vec<u8>, String> {
    fetch_capped(client, url, timeout, swarmcast_core::manifest::MAX_DOCUMENT).await
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
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers one request with an endless chunked body (no length header).
    async fn endless_source() -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 1024];
            let _ = sock.read(&mut req).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-bittorrent\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = [b'd'; 64 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            // Until the client hangs up, or 60 s (a bound: longer than the fetch's own 30 s
            // timeout, so a client that reads it all ends on that timeout, not on the cap).
            let until = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < until {
                if sock.write_all(&framed).await.is_err() {
                    return;
                }
                // 6.4 MB/s: past the cap in a fraction of a second, and a client that reads
                // it all holds some 200 MB at its timeout, not gigabytes.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Url::parse(&format!("http://{addr}/manifest")).unwrap()
    }

    /// On a given clock: 3 targets behind another source, 5 in any case, and a healthy long poll
    /// (a new manifest every target, or a 10 s hold on one-minute segments) never.
    #[test]
    fn a_source_is_stale_after_three_targets_behind_another_or_five_in_any_case() {
        let t = Duration::from_secs(2);
        let at = Instant::now();
        let after = |d: Duration| at + d;
        // Alone: 5 targets.
        assert!(!is_stale(
            after(t * 5 - Duration::from_millis(1)),
            at,
            Some(at),
            t
        ));
        assert!(is_stale(after(t * 5), at, Some(at), t));
        assert!(!is_stale(after(t * 4), at, None, t));
        // Another source advanced since: 3 targets.
        let other = Some(after(t));
        assert!(!is_stale(
            after(t * 3 - Duration::from_millis(1)),
            at,
            other,
            t
        ));
        assert!(is_stale(after(t * 3), at, other, t));
        // One-minute segments, a held request answered unchanged after 10 s: healthy.
        let minute = Duration::from_secs(60);
        assert!(!is_stale(after(Duration::from_secs(10)), at, other, minute));
        assert!(!is_stale(after(minute), at, other, minute));
    }

    #[tokio::test]
    async fn an_endless_manifest_body_is_refused_once_past_the_cap() {
        let url = endless_source().await;
        let client = reqwest::Client::new();
        let err = fetch(&client, &url, FETCH_TIMEOUT).await.unwrap_err();
        assert!(
            err.contains("larger than the 1048576 bytes allowed"),
            "{err}"
        );
    }
}
