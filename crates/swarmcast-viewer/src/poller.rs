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
        let fetched = tokio::select! {
            r = fetch(&client, &url) => r,
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
                tracing::warn!(%base, %error, "manifest source unreachable; trying the next");
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

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, String> {
    // The hold is 10 s at our publisher; 30 s bounds any server.
    let response = client
        .get(url.clone())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let response = response.error_for_status().map_err(|e| e.to_string())?;
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > swarmcast_core::manifest::MAX_DOCUMENT {
        return Err(format!(
            "{} bytes: larger than a manifest can be",
            body.len()
        ));
    }
    Ok(body.to_vec())
}
