//! The upstream side of a relay node: connections to parents (the publisher or a relay), the
//! piece-by-piece check of what they send, parent changes, and following their manifests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swarmcast_core::{ManifestError, Verdict, Verifier};
use swarmcast_metrics::{Kind, Recorder};
use swarmcast_tasks::Tasks;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::node::{DirectoryConfig, Parent, RelayError, RelaySummary};
use super::position::Position;
use super::server::{self, Shared, LOST_HEADER, LOST_SEGMENTS_HEADER, POSITION_HEADER};
use super::verify::{Piece, PieceVerifier, Step, VerifyError};
use crate::directory::{self, ENTRY_TTL, PARENT_TIMEOUT};

/// The pause before asking the same parent (or the directory) again after a failure.
const RETRY: Duration = Duration::from_millis(500);

/// How a connection to a parent ended.
enum Outcome {
    /// The stream's end was reached.
    End,
    /// Stopped.
    Cancelled,
    /// The parent failed; `bad`: it sent something that failed verification.
    Failed { reason: String, bad: bool },
    /// The relay cannot go on.
    Fatal(RelayError),
}

fn failed(reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        reason: reason.into(),
        bad: false,
    }
}

/// A relay's upstream side: where it is in the stream, its current parent, what it played.
pub(super) struct Upstream {
    pub(super) shared: Arc<Shared>,
    pub(super) client: reqwest::Client,
    pub(super) verifier: Arc<Mutex<Verifier>>,
    pub(super) rec: Arc<Recorder>,
    pub(super) out: Option<(PathBuf, tokio::fs::File)>,
    /// The next byte to take.
    pub(super) pos: Option<Position>,
    pub(super) written: Arc<AtomicU64>,
    /// When the last stream byte came (from any parent).
    pub(super) last_byte: Option<Instant>,
    /// When the current parent was last heard from (a stream byte or a manifest answer).
    pub(super) heard: Arc<Mutex<Instant>>,
    pub(super) node: String,
    pub(super) directory: Option<DirectoryConfig>,
    /// The current parent's URL (announced).
    pub(super) current: Arc<Mutex<Option<String>>>,
    pub(super) summary: RelaySummary,
    pub(super) tasks: Tasks,
    /// The current parent answered (`stream_connected` recorded).
    pub(super) connected: bool,
}

impl Upstream {
    fn hear(&self) {
        *self.heard.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn silent_for(&self) -> Duration {
        self.heard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    fn at_end(&self) -> bool {
        self.pos
            .is_some_and(|p| self.shared.buffer().is_past_end(p))
    }

    /// The connection loop; Ok(true) once the stream's end was reached.
    pub(super) async fn run(
        &mut self,
        first: Option<Parent>,
        cancel: &CancellationToken,
    ) -> Result<bool, RelayError> {
        let fixed = first.clone();
        let mut next = first;
        let mut previous: Option<String> = None;
        // Parents not to take again: (url, until); bad ones for good.
        let mut avoid: Vec<(String, Option<Instant>)> = Vec::new();
        loop {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            if self.at_end() {
                return Ok(true);
            }
            let parent = match next.take() {
                Some(p) => p,
                None => match self.pick(&mut avoid).await {
                    Pick::Parent(p) => p,
                    Pick::Ended => {
                        tracing::warn!(
                            "the directory says the stream ended and lists no parent: stopping before the stream's end"
                        );
                        return Ok(false);
                    }
                    Pick::None => {
                        tokio::select! {
                            () = cancel.cancelled() => return Ok(false),
                            () = tokio::time::sleep(RETRY) => continue,
                        }
                    }
                },
            };
            let url = parent.url();
            if previous.as_deref() != Some(url.as_str()) {
                let detect_us = self
                    .last_byte
                    .filter(|_| previous.is_some())
                    .map_or(0, |t| t.elapsed().as_micros() as u64);
                self.rec.record(
                    None,
                    Kind::ParentChanged {
                        from: previous.clone(),
                        to: url.clone(),
                        detect_us,
                    },
                );
            }
            *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
                matches!(parent, Parent::Relay(_)).then(|| url.clone());
            self.hear();
            let outcome = {
                let token = self.tasks.token().child_token();
                let _stop_polling = token.clone().drop_guard();
                let manifest_url = match &parent {
                    Parent::Publisher(link) => link.sources[0].clone(),
                    Parent::Relay(u) => u.join("manifest").unwrap_or_else(|_| u.clone()),
                };
                self.tasks.spawn(
                    "manifests",
                    poll_manifests(
                        self.shared.clone(),
                        self.client.clone(),
                        self.verifier.clone(),
                        manifest_url.clone(),
                        self.heard.clone(),
                        token,
                    ),
                );
                match &parent {
                    Parent::Publisher(_) => self.pull_publisher(&manifest_url, cancel).await,
                    Parent::Relay(u) => self.pull_relay(u, cancel).await,
                }
            };
            let total = self.written.load(Ordering::Relaxed);
            match outcome {
                Outcome::End => return Ok(true),
                Outcome::Cancelled => return Ok(false),
                Outcome::Fatal(e) => return Err(e),
                Outcome::Failed { reason, bad } => {
                    if std::mem::take(&mut self.connected) {
                        tracing::info!("relay {}: parent {url}: {reason}", self.node);
                        self.rec.record(
                            None,
                            Kind::StreamDisconnected {
                                url: url.clone(),
                                reason,
                            },
                        );
                        self.rec.record(None, Kind::StreamBytes { total });
                    } else {
                        // Not connected: a failed attempt, not a disconnect.
                        tracing::debug!("relay {}: parent {url}: {reason}", self.node);
                    }
                    if self.at_end() {
                        return Ok(true);
                    }
                    let until = (!bad).then(|| Instant::now() + ENTRY_TTL);
                    avoid.push((url.clone(), until));
                    previous = Some(url);
                    // The publisher, or a fixed parent with no directory: the same again.
                    let same = match (&fixed, &self.directory) {
                        (Some(p @ Parent::Publisher(_)), _) | (Some(p), None) if !bad => {
                            Some(p.clone())
                        }
                        _ => None,
                    };
                    if let Some(p) = same {
                        tokio::select! {
                            () = cancel.cancelled() => return Ok(false),
                            () = tokio::time::sleep(RETRY) => {}
                        }
                        next = Some(p);
                    } else if bad && self.directory.is_none() {
                        // The one parent sent a piece that failed its check, and there is no
                        // directory to take another from: nothing trustworthy is left.
                        return Err(RelayError::NoTrustedParent {
                            parent: previous.clone().unwrap_or_default(),
                        });
                    }
                }
            }
        }
    }

    async fn pick(&self, avoid: &mut Vec<(String, Option<Instant>)>) -> Pick {
        let Some(dir) = &self.directory else {
            return Pick::None;
        };
        let now = Instant::now();
        avoid.retain(|(_, until)| until.is_none_or(|u| u > now));
        // The directory chooses (under one lock, so that nodes joining together do not all take
        // the same free slot) and records the link at once.
        let join = directory::Join {
            announce: directory::Announce {
                node: self.node.clone(),
                url: self.summary.url.clone(),
                parent: None,
                capacity: dir.fanout,
            },
            avoid: avoid.iter().map(|(u, _)| u.clone()).collect(),
        };
        let chosen = match directory::join(&self.client, &dir.url, &join).await {
            Ok(Some(l)) => Some(l),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("{e}");
                None
            }
        };
        // No parent from the join (or a directory without it): the listing, chosen here by
        // the same rule; it also tells whether the stream ended.
        let chosen = match chosen {
            Some(l) => Some(l),
            None => match directory::fetch(&self.client, &dir.url).await {
                Ok(listing) => {
                    let refs: Vec<&str> = join.avoid.iter().map(String::as_str).collect();
                    match directory::choose_parent(&listing, &self.node, &refs) {
                        Some(l) => Some(l),
                        None if listing.ended => return Pick::Ended,
                        None => None,
                    }
                }
                Err(e) => {
                    tracing::debug!("{e}");
                    None
                }
            },
        };
        match chosen.map(|l| Url::parse(&l.url)) {
            Some(Ok(u)) => Pick::Parent(Parent::Relay(u)),
            _ => Pick::None,
        }
    }

    /// Takes the stream from a relay's `/stream`.
    async fn pull_relay(&mut self, url: &Url, cancel: &CancellationToken) -> Outcome {
        let mut req = self.client.get(url.clone());
        if let Some(p) = self.pos {
            req = req.query(&[("from", p.to_string())]);
        }
        let resp = tokio::select! {
            () = cancel.cancelled() => return Outcome::Cancelled,
            r = tokio::time::timeout(PARENT_TIMEOUT, req.send()) => r,
        };
        let mut resp = match resp {
            Err(_) => return failed("timeout: no answer"),
            Ok(Err(e)) => return failed(format!("error: {}", chain(&e))),
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return failed(format!("error: {status}: {}", body.trim()));
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let Some(start) = header(POSITION_HEADER).and_then(|p| p.parse::<Position>().ok()) else {
            return Outcome::Failed {
                reason: format!("error: no valid {POSITION_HEADER} header"),
                bad: true,
            };
        };
        let lost_header: Option<(u64, u64)> = header(LOST_HEADER)
            .and_then(|b| b.parse().ok())
            .zip(header(LOST_SEGMENTS_HEADER).and_then(|s| s.parse().ok()));
        // The parent may not know the size of the segment it starts in; this relay may.
        let start = self.shared.buffer().normalize(start);
        let asked = self.pos;
        self.rec.record(
            Some(start.segment),
            Kind::StreamConnected {
                url: url.to_string(),
                from: asked.map(|p| p.to_string()),
                position: Some(start.to_string()),
            },
        );
        self.connected = true;
        self.summary.connections += 1;
        if let Some(asked) = asked {
            let asked = self.shared.buffer().normalize(asked);
            if start < asked {
                return Outcome::Failed {
                    reason: format!("error: asked for {asked}, the answer starts at {start}"),
                    bad: true,
                };
            }
            if start > asked {
                // Older than the parent's back buffer: count what was skipped, from the signed
                // sizes where this relay knows them, else as the parent says.
                let own = self.shared.buffer().distance(asked, start);
                let (bytes, segments) = match (own, lost_header) {
                    (Ok(own), Some(said)) if own != said => {
                        tracing::warn!("parent {url} says it skipped {said:?} (bytes, segments); the signed sizes say {own:?}");
                        own
                    }
                    (Ok(own), _) => own,
                    (Err(_), Some(said)) => said,
                    (Err(_), None) => (0, 0),
                };
                self.rec
                    .record(Some(asked.segment), Kind::StreamLost { bytes, segments });
                self.summary.lost_bytes += bytes;
            }
        }
        self.pos = Some(start);
        self.summary.first.get_or_insert(start);
        let mut verifier = PieceVerifier::new(start);
        loop {
            let left = PARENT_TIMEOUT.saturating_sub(self.silent_for());
            let chunk = tokio::select! {
                () = cancel.cancelled() => return Outcome::Cancelled,
                c = tokio::time::timeout(left, resp.chunk()) => c,
            };
            match chunk {
                Err(_) => {
                    if self.silent_for() >= PARENT_TIMEOUT {
                        return failed("timeout");
                    }
                }
                Ok(Ok(Some(c))) => {
                    self.hear();
                    self.last_byte = Some(Instant::now());
                    if let Err(o) = self.feed(&mut verifier, &c, url.as_str(), cancel).await {
                        return o;
                    }
                }
                Ok(Ok(None)) => {
                    // A parent ends the body at the end of the stream, when it has the
                    // end-of-stream manifest; this relay's copy of it may be a moment behind.
                    return if self.wait_for_end(cancel).await {
                        Outcome::End
                    } else {
                        failed("eof")
                    };
                }
                Ok(Err(e)) => return failed(format!("error: {}", chain(&e))),
            }
        }
    }

    /// Takes the stream from the publisher: each segment's file in turn, as the manifests list
    /// them (the root relay).
    async fn pull_publisher(&mut self, manifest_url: &Url, cancel: &CancellationToken) -> Outcome {
        let mut rx = self.shared.changed.subscribe();
        // The first manifest.
        let newest = loop {
            rx.borrow_and_update();
            if let Some(n) = self.shared.buffer().newest_known() {
                break n;
            }
            tokio::select! {
                () = cancel.cancelled() => return Outcome::Cancelled,
                r = rx.changed() => if r.is_err() { return Outcome::Cancelled },
            }
        };
        let asked = self.pos;
        let start = *self.pos.get_or_insert(Position::start_of(newest));
        self.summary.first.get_or_insert(start);
        self.rec.record(
            Some(start.segment),
            Kind::StreamConnected {
                url: manifest_url.to_string(),
                from: asked.map(|p| p.to_string()),
                position: Some(start.to_string()),
            },
        );
        self.connected = true;
        self.summary.connections += 1;
        loop {
            if self.at_end() {
                return Outcome::End;
            }
            let pos = self.pos.expect("set above");
            // Wait until a manifest lists the segment, or says the stream ended.
            loop {
                rx.borrow_and_update();
                if self.at_end() {
                    return Outcome::End;
                }
                if self.shared.buffer().known(pos.segment).is_some() {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => return Outcome::Cancelled,
                    r = rx.changed() => if r.is_err() { return Outcome::Cancelled },
                }
            }
            let Ok(url) = manifest_url.join(&format!("segments/{:08}.ts", pos.segment)) else {
                return failed("error: no segment URL");
            };
            let mut req = self.client.get(url.clone());
            if pos.offset > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={}-", pos.offset));
            }
            let resp = tokio::select! {
                () = cancel.cancelled() => return Outcome::Cancelled,
                r = req.send() => r,
            };
            let mut resp = match resp {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    // Gone from the publisher (this relay fell more than the window and its
                    // grace behind): go on from the oldest segment listed, counting the loss.
                    let oldest = self
                        .shared
                        .manifest
                        .borrow()
                        .as_ref()
                        .and_then(|m| m.manifest.segments.first().map(|e| e.number));
                    if let Some(oldest) =
                        oldest.filter(|o| matches!(status, 404 | 410) && *o > pos.segment)
                    {
                        let to = Position::start_of(oldest);
                        let (bytes, segments) = self
                            .shared
                            .buffer()
                            .distance(pos, to)
                            .unwrap_or((0, oldest - pos.segment));
                        self.rec
                            .record(Some(pos.segment), Kind::StreamLost { bytes, segments });
                        self.rec.record(
                            Some(oldest),
                            Kind::StreamConnected {
                                url: manifest_url.to_string(),
                                from: Some(pos.to_string()),
                                position: Some(to.to_string()),
                            },
                        );
                        self.summary.lost_bytes += bytes;
                        self.pos = Some(to);
                        continue;
                    }
                    return failed(format!("error: GET {url}: {status}: {}", body.trim()));
                }
                Err(e) => return failed(format!("error: GET {url}: {}", chain(&e))),
            };
            let mut verifier = PieceVerifier::new(pos);
            loop {
                let chunk = tokio::select! {
                    () = cancel.cancelled() => return Outcome::Cancelled,
                    c = resp.chunk() => c,
                };
                match chunk {
                    Ok(Some(c)) => {
                        self.last_byte = Some(Instant::now());
                        if let Err(o) = self.feed(&mut verifier, &c, url.as_str(), cancel).await {
                            return o;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return failed(format!("error: GET {url}: {}", chain(&e))),
                }
            }
            if self.pos.is_some_and(|p| p.segment == pos.segment) {
                return failed(format!(
                    "error: GET {url}: the body ended at {}",
                    verifier.position()
                ));
            }
        }
    }

    /// Verifies `chunk` and delivers every whole verified piece.
    async fn feed(
        &mut self,
        verifier: &mut PieceVerifier,
        chunk: &[u8],
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Outcome> {
        verifier.push(chunk);
        loop {
            let step = {
                let b = self.shared.buffer();
                verifier.next(|n| b.known(n).map(|k| k.info.clone()), b.last())
            };
            match step {
                Ok(Step::Piece(p)) => self.deliver(p).await?,
                Ok(Step::More) => return Ok(()),
                Ok(Step::Info(n)) => self.wait_for_info(n, url, cancel).await?,
                Err(e) => {
                    if let VerifyError::Mismatch { segment, piece } = e {
                        self.rec.record(
                            Some(segment),
                            Kind::PieceRejected {
                                url: url.to_owned(),
                                piece,
                            },
                        );
                        self.summary.rejected += 1;
                    }
                    tracing::warn!("relay {}: {url}: {e}", self.node);
                    return Err(Outcome::Failed {
                        reason: format!("rejected: {e}"),
                        bad: true,
                    });
                }
            }
        }
    }

    /// Whether the stream's end is reached, waiting up to [`server::MANIFEST_HOLD`] twice for
    /// the end-of-stream manifest.
    async fn wait_for_end(&self, cancel: &CancellationToken) -> bool {
        let mut rx = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + 2 * server::MANIFEST_HOLD;
        loop {
            rx.borrow_and_update();
            if self.at_end() {
                return true;
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                r = tokio::time::timeout_at(deadline, rx.changed()) => {
                    if !matches!(r, Ok(Ok(()))) {
                        return false;
                    }
                }
            }
        }
    }

    /// Waits (bounded) for a manifest that lists segment `n`.
    async fn wait_for_info(
        &self,
        n: u64,
        url: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Outcome> {
        let mut rx = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + PARENT_TIMEOUT;
        let mut asked = false;
        loop {
            rx.borrow_and_update();
            if self.shared.buffer().known(n).is_some() {
                return Ok(());
            }
            let passed = self.shared.buffer().newest_known().is_some_and(|m| m > n);
            if passed && !std::mem::replace(&mut asked, true) {
                // Manifests list newer segments already: this one may have left their window
                // while this relay was away. Its parent holds a signed manifest that lists it.
                if let Ok(manifest_url) = Url::parse(url).and_then(|u| u.join("manifest")) {
                    self.fetch_listing(&manifest_url, n).await;
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(Outcome::Cancelled),
                r = tokio::time::timeout_at(deadline, rx.changed()) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(Outcome::Cancelled),
                    Err(_) => return Err(failed(format!("timeout: no signed manifest lists segment {n}"))),
                },
            }
        }
    }

    /// `GET <manifest_url>?segment=n`: a signed manifest listing segment `n`, verified against
    /// the pinned key (signature only: it is older than the one held), its segments learnt.
    async fn fetch_listing(&self, manifest_url: &Url, n: u64) {
        let key = *self
            .verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .key();
        let answer = async {
            let r = self
                .client
                .get(manifest_url.clone())
                .query(&[("segment", n)])
                .timeout(PARENT_TIMEOUT)
                .send()
                .await?
                .error_for_status()?;
            r.bytes().await
        }
        .await;
        match answer.map(|b| swarmcast_core::manifest::verify(&b, &key)) {
            Ok(Ok(signed)) => {
                let mut b = self.shared.buffer();
                for e in &signed.manifest.segments {
                    if b.known(e.number).is_none() {
                        if let Ok(info) = swarmcast_core::InfoDict::decode_strict(&e.info) {
                            b.learn_one(e.number, e.duration, info);
                        }
                    }
                }
                drop(b);
                tracing::info!(
                    "segment {n}: learnt from an older signed manifest (seq {}) from {manifest_url}",
                    signed.manifest.seq
                );
                self.shared.bump();
            }
            Ok(Err(e)) => {
                tracing::warn!("manifest for segment {n} from {manifest_url} refused: {e}")
            }
            Err(e) => tracing::debug!(
                "manifest for segment {n} from {manifest_url}: {}",
                chain(&e)
            ),
        }
    }

    async fn deliver(&mut self, piece: Piece) -> Result<(), Outcome> {
        let size = {
            let mut b = self.shared.buffer();
            let size = b.known(piece.at.segment).map_or(u64::MAX, |k| k.size);
            if let Err(e) = b.append(piece.at, piece.data.clone()) {
                return Err(failed(format!("error: {e}")));
            }
            size
        };
        self.shared.bump();
        if let Some((path, f)) = &mut self.out {
            if let Err(source) = f.write_all(&piece.data).await {
                return Err(Outcome::Fatal(RelayError::Out {
                    path: path.clone(),
                    source,
                }));
            }
        }
        self.written
            .fetch_add(piece.data.len() as u64, Ordering::Relaxed);
        self.pos = Some(piece.end(size));
        Ok(())
    }
}

enum Pick {
    Parent(Parent),
    None,
    Ended,
}

/// An error and its causes, `: `-separated (reqwest's own message is only "error sending
/// request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn etag(seq: u64) -> String {
    format!("\"seq-{seq}\"")
}

/// Follows the parent's manifests (blocking reload), verifying each against the pinned key;
/// every answer counts as hearing from the parent.
async fn poll_manifests(
    shared: Arc<Shared>,
    client: reqwest::Client,
    verifier: Arc<Mutex<Verifier>>,
    url: Url,
    heard: Arc<Mutex<Instant>>,
    cancel: CancellationToken,
) {
    let hear = || *heard.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    loop {
        let seq = verifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_seq();
        let mut req = client.get(url.clone()).timeout(Duration::from_secs(30));
        if let Some(seq) = seq {
            req = req
                .query(&[("after", seq)])
                .header(reqwest::header::IF_NONE_MATCH, etag(seq));
        }
        let answer = tokio::select! {
            () = cancel.cancelled() => return,
            r = async {
                let r = req.send().await?;
                let status = r.status();
                Ok::<_, reqwest::Error>((status, r.bytes().await?))
            } => r,
        };
        let pause = match answer {
            Ok((status, _)) if status == reqwest::StatusCode::NOT_MODIFIED => {
                hear();
                false
            }
            Ok((status, body)) if status.is_success() => {
                hear();
                let verdict = verifier
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .accept(&body);
                match verdict {
                    Ok(Verdict::New(signed)) => {
                        shared.new_manifest(Arc::new(signed));
                        false
                    }
                    Ok(Verdict::Unchanged) | Err(ManifestError::StaleSequence { .. }) => false,
                    Err(e) => {
                        tracing::warn!("manifest from {url} refused: {e}");
                        true
                    }
                }
            }
            Ok((status, _)) => {
                tracing::debug!("manifest from {url}: {status}");
                true
            }
            Err(e) => {
                tracing::debug!("manifest from {url}: {e}");
                true
            }
        };
        if pause {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}
