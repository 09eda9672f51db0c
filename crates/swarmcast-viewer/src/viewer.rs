//! The viewer's state and the handlers of the scheduler's actions and of the swarm's and the
//! manifest poller's events (used by [`crate::watch`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::manifest::SegmentEntry;
use swarmcast_core::{InfoDict, SegmentTorrent, SignedManifest};
use swarmcast_metrics::{Kind, Recorder};
use swarmcast_swarm::ratelimit::ByteLimiter;
use swarmcast_swarm::{Swarm, Torrent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::fallback::{self, Milestone};
use crate::poller::PollEvent;
use crate::schedule::{Action, FetchFailure, Scheduler};
use crate::sink::Sink;
use crate::watch::{
    Transport, WatchConfig, WatchError, WatchSummary, REFUSALS_BEFORE_GIVING_UP, SAMPLE,
};

/// How long resolving a publisher's host name may take before the segment is added without it.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) struct ViewerSegment {
    pub(crate) entry: SegmentEntry,
    pub(crate) torrent: Option<Torrent>,
    pub(crate) watcher: Option<JoinHandle<()>>,
    pub(crate) added: Option<Instant>,
    pub(crate) first_piece_seen: bool,
    pub(crate) complete: bool,
    /// Payload bytes uploaded by an earlier torrent handle of this segment (one dropped when an
    /// HTTP fallback handed the segment back to librqbit).
    pub(crate) uploaded_before: u64,
    /// Bytes of the current torrent handle already reported (publisher, peers) in `completed`.
    pub(crate) reported: (u64, u64),
    /// The HTTP fallback under way, if any.
    pub(crate) fallback: Option<Fallback>,
}

/// An HTTP fallback fetch under way: stopped when the swarm completes the segment first, so the
/// publisher's uplink does not go on sending a copy nobody needs.
pub(crate) struct Fallback {
    task: JoinHandle<()>,
    /// Bytes received so far.
    received: Arc<AtomicU64>,
}

/// Attempts of an HTTP-baseline fetch.
pub(crate) const HTTP_ATTEMPTS: u32 = 20;
/// Pause between them.
pub(crate) const HTTP_RETRY: Duration = Duration::from_millis(250);

pub(crate) enum ViewerEvent {
    FirstPeer(u64, Duration),
    FirstPiece(u64, Duration),
    Complete(u64),
    Http(u64, Result<u64, fallback::FetchError>),
}

pub(crate) struct Viewer {
    pub(crate) config: WatchConfig,
    pub(crate) swarm: Arc<Swarm>,
    pub(crate) dir: PathBuf,
    pub(crate) recorder: Recorder,
    pub(crate) scheduler: Scheduler,
    pub(crate) segs: BTreeMap<u64, ViewerSegment>,
    pub(crate) latest: Option<Arc<SignedManifest>>,
    pub(crate) source: Option<Url>,
    pub(crate) client: reqwest::Client,
    /// The download limit for HTTP fetches (librqbit has its own).
    pub(crate) limiter: Option<Arc<ByteLimiter>>,
    pub(crate) ev_tx: mpsc::Sender<ViewerEvent>,
    pub(crate) sink: Sink,
    pub(crate) origin: Instant,
    pub(crate) summary: WatchSummary,
}

pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Viewer {
    pub(crate) fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) fn on_poll(&mut self, event: PollEvent) -> Result<(), WatchError> {
        match event {
            PollEvent::Manifest {
                manifest,
                source,
                mode,
                fetched,
                delta,
            } => {
                let m = &manifest.manifest;
                self.summary.manifest_bytes += fetched;
                self.recorder.record(
                    None,
                    Kind::ManifestFetched {
                        seq: m.seq,
                        bytes: fetched,
                        delta,
                        mode: mode.into(),
                    },
                );
                let stale_after = (3 * m.target_duration / 90).max(30_000);
                if !m.end_of_stream && wall_ms().saturating_sub(m.issued_ms) > stale_after {
                    tracing::warn!(
                        seq = m.seq,
                        age_ms = wall_ms().saturating_sub(m.issued_ms),
                        "the newest manifest is old: the feed may be frozen or replayed"
                    );
                }
                let first = self.latest.is_none();
                let learned = self.scheduler.on_manifest(m);
                if first {
                    let newest = m.segments.last().map_or(0, |s| s.number);
                    self.summary.newest_at_join = Some(newest);
                    self.summary.joined_at = self.scheduler.next_play();
                    self.recorder
                        .record(self.scheduler.next_play(), Kind::Joined { newest });
                }
                for n in learned {
                    if let Some(entry) = m.segments.iter().find(|s| s.number == n) {
                        self.recorder.record(
                            Some(n),
                            Kind::Learned {
                                seq: m.seq,
                                published_ms: entry.published_ms,
                            },
                        );
                        self.segs.insert(
                            n,
                            ViewerSegment {
                                entry: entry.clone(),
                                torrent: None,
                                watcher: None,
                                added: None,
                                first_piece_seen: false,
                                complete: false,
                                uploaded_before: 0,
                                reported: (0, 0),
                                fallback: None,
                            },
                        );
                    }
                }
                self.source = Some(source);
                self.latest = Some(manifest);
            }
            PollEvent::Refused { error, .. } => {
                self.summary.manifests_refused += 1;
                self.recorder.record(
                    None,
                    Kind::ManifestRefused {
                        reason: error.to_string(),
                    },
                );
                if self.latest.is_none()
                    && self.summary.manifests_refused >= REFUSALS_BEFORE_GIVING_UP
                {
                    return Err(WatchError::Refused(error));
                }
            }
            PollEvent::Unreachable { .. } => {}
        }
        Ok(())
    }

    pub(crate) async fn on_event(&mut self, ev: ViewerEvent) {
        match ev {
            ViewerEvent::FirstPeer(n, since) => {
                self.recorder.record(
                    Some(n),
                    Kind::FirstPeer {
                        since_added_us: since.as_micros() as u64,
                    },
                );
            }
            ViewerEvent::FirstPiece(n, since) => {
                if let Some(seg) = self.segs.get_mut(&n) {
                    if !seg.first_piece_seen {
                        seg.first_piece_seen = true;
                        self.summary.setup_ms.push(since.as_secs_f64() * 1000.0);
                        self.summary
                            .published_to_first_piece_ms
                            .push(wall_ms().saturating_sub(seg.entry.published_ms) as f64);
                        self.recorder.record(
                            Some(n),
                            Kind::FirstPiece {
                                since_added_us: since.as_micros() as u64,
                            },
                        );
                    }
                }
            }
            ViewerEvent::Complete(n) => self.complete_from_swarm(n),
            ViewerEvent::Http(n, result) => self.http_done(n, result).await,
        }
    }

    pub(crate) fn publisher_addrs(&self) -> Vec<String> {
        self.latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.peers.clone())
    }

    /// Payload bytes received by `t` so far: (from the publisher, from other peers).
    fn received(&self, t: &Torrent) -> (u64, u64) {
        self.tally(t).0
    }

    /// One read of `t`'s per-peer counters: the bytes of [`Self::received`], and (outgoing
    /// connection attempts, connections that ended in an error, failed dials).
    fn tally(&self, t: &Torrent) -> ((u64, u64), (u64, u64, u64)) {
        let publishers = self.publisher_addrs();
        let (mut received, mut connections) = ((0, 0), (0, 0, 0));
        for p in self.swarm.peer_bytes(t) {
            if publishers.contains(&p.addr) {
                received.0 += p.fetched;
            } else {
                received.1 += p.fetched;
            }
            connections.0 += p.connection_attempts;
            connections.1 += p.errors;
            connections.2 += p.failed_dials;
        }
        (received, connections)
    }

    pub(crate) fn complete_from_swarm(&mut self, n: u64) {
        let tally = match self.segs.get(&n) {
            Some(seg) if !seg.complete => seg.torrent.as_ref().map(|t| self.tally(t)),
            _ => return,
        };
        let (received, connections) = (tally.map(|t| t.0), tally.map(|t| t.1));
        let Some(seg) = self.segs.get_mut(&n) else {
            return;
        };
        seg.complete = true;
        let superseded = seg.fallback.take();
        let (from_publisher, from_peers) = received.unwrap_or_default();
        seg.reported = (from_publisher, from_peers);
        self.summary.from_publisher += from_publisher;
        self.summary.from_peers += from_peers;
        let since = seg.added.map_or(0, |a| a.elapsed().as_micros() as u64);
        self.recorder.record(
            Some(n),
            Kind::Completed {
                since_added_us: since,
                via: "swarm".into(),
                from_publisher,
                from_peers,
                from_http: 0,
                connect_attempts: connections.map(|c| c.0),
                connect_errors: connections.map(|c| c.1),
                failed_dials: connections.map(|c| c.2),
            },
        );
        if let Some(f) = superseded {
            // The swarm won the race: stop the fetch (its connection closes, and the publisher
            // stops sending) and count what it had received.
            f.task.abort();
            self.recorder.record(
                Some(n),
                Kind::HttpFallback {
                    bytes: f.received.load(Ordering::Relaxed),
                    ok: false,
                    superseded: true,
                    refused: false,
                },
            );
            let temp = fallback::temp_path(&self.dir, n);
            tokio::spawn(async move {
                let _ = tokio::fs::remove_file(temp).await;
            });
        }
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
    }

    pub(crate) async fn http_done(&mut self, n: u64, result: Result<u64, fallback::FetchError>) {
        let temp = fallback::temp_path(&self.dir, n);
        let Some(seg) = self.segs.get_mut(&n) else {
            let _ = tokio::fs::remove_file(&temp).await;
            return;
        };
        seg.fallback = None;
        let Some(seg) = self.segs.get(&n) else {
            return;
        };
        if self.config.transport == Transport::Http {
            match result {
                Ok(bytes) => self.http_complete(n, bytes).await,
                Err(e) => {
                    tracing::warn!(segment = n, error = %e, "HTTP fetch failed {HTTP_ATTEMPTS} times: giving up");
                    let now = self.now_ms();
                    self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
                }
            }
            return;
        }
        match result {
            Err(e) => {
                let why = e.failure();
                self.recorder.record(
                    Some(n),
                    Kind::HttpFallback {
                        bytes: 0,
                        ok: false,
                        superseded: false,
                        refused: why == FetchFailure::Busy,
                    },
                );
                match why {
                    FetchFailure::Gone => {
                        tracing::warn!(segment = n, error = %e, "HTTP fallback: the publisher no longer has the segment; waiting for the swarm")
                    }
                    FetchFailure::Busy => {
                        tracing::debug!(segment = n, error = %e, "HTTP fallback refused (the publisher is busy); waiting for the swarm, every fallback held back")
                    }
                    FetchFailure::Failed => {
                        tracing::warn!(segment = n, error = %e, "HTTP fallback failed; waiting for the swarm, retrying later")
                    }
                }
                if !seg.complete {
                    let now = self.now_ms();
                    self.scheduler.on_fetch_failed(n, now, why);
                }
            }
            Ok(_) if seg.complete => {
                // The swarm won the race (counted when it did): keep its copy.
                let _ = tokio::fs::remove_file(&temp).await;
            }
            Ok(bytes) => {
                self.recorder.record(
                    Some(n),
                    Kind::HttpFallback {
                        bytes,
                        ok: true,
                        superseded: false,
                        refused: false,
                    },
                );
                let name = format!("{n:08}.ts");
                // Hand the verified file to librqbit: forget the torrent (keeping its file), put
                // ours in place, re-add it so librqbit re-checks it and seeds it to others.
                let torrent_bytes = self.torrent_bytes(&seg.entry);
                // What the swarm delivered before the fallback won (wasted bytes, but received),
                // and what this handle uploaded, so the counters survive the new handle.
                let old = self.segs.get_mut(&n).and_then(|seg| {
                    if let Some(w) = seg.watcher.take() {
                        w.abort();
                    }
                    seg.reported = (0, 0);
                    seg.torrent.take()
                });
                let (mut from_publisher, mut from_peers) = (0, 0);
                if let Some(t) = old {
                    (from_publisher, from_peers) = self.received(&t);
                    let uploaded = self.swarm.stats(&t).uploaded;
                    if let Some(seg) = self.segs.get_mut(&n) {
                        seg.uploaded_before += uploaded;
                    }
                    self.swarm.forget(&t).await;
                }
                self.summary.from_publisher += from_publisher;
                self.summary.from_peers += from_peers;
                if let Err(e) = tokio::fs::rename(&temp, self.dir.join(&name)).await {
                    tracing::warn!(segment = n, error = %e, "cannot move the fetched segment into place");
                    let now = self.now_ms();
                    self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
                    return;
                }
                let seeded = self
                    .swarm
                    .seed(&torrent_bytes, &name, &self.dir, Duration::from_secs(30))
                    .await;
                match seeded {
                    Ok(t) => {
                        if let Some(seg) = self.segs.get_mut(&n) {
                            seg.torrent = Some(t);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(segment = n, error = %e, "cannot seed the fetched segment; playing it anyway")
                    }
                }
                self.completed_over_http(n, (from_publisher, from_peers), bytes);
            }
        }
    }

    /// Records a segment complete over HTTP: `swarm` is what the swarm had delivered before
    /// (publisher, peers; already in the summary), `bytes` what HTTP did.
    fn completed_over_http(&mut self, n: u64, swarm: (u64, u64), bytes: u64) {
        let since = seg_added_us(self.segs.get(&n));
        if let Some(seg) = self.segs.get_mut(&n) {
            seg.complete = true;
            seg.watcher = None;
        }
        self.summary.from_http += bytes;
        self.recorder.record(
            Some(n),
            Kind::Completed {
                since_added_us: since,
                via: "http".into(),
                from_publisher: swarm.0,
                from_peers: swarm.1,
                from_http: bytes,
                connect_attempts: None,
                connect_errors: None,
                failed_dials: None,
            },
        );
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
    }

    /// The HTTP baseline's segment arrived: into place, and done (nothing is seeded).
    async fn http_complete(&mut self, n: u64, bytes: u64) {
        let temp = fallback::temp_path(&self.dir, n);
        let name = format!("{n:08}.ts");
        if let Err(e) = tokio::fs::rename(&temp, self.dir.join(name)).await {
            tracing::warn!(segment = n, error = %e, "cannot move the fetched segment into place");
            let now = self.now_ms();
            self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
            return;
        }
        self.completed_over_http(n, (0, 0), bytes);
    }

    pub(crate) fn torrent_bytes(&self, entry: &SegmentEntry) -> Vec<u8> {
        let trackers = self
            .latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.trackers.clone());
        let info =
            InfoDict::decode_strict(&entry.info).expect("verified manifests hold valid info");
        SegmentTorrent::from_info(info, trackers).to_torrent_bytes()
    }

    /// The publisher's addresses from the manifest, names resolved (each within
    /// [`DNS_TIMEOUT`]).
    pub(crate) async fn initial_peers(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for p in self.publisher_addrs() {
            match p.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                // Bounded: a resolver that does not answer must not hold the watch loop (and
                // with it playback); the segment is added without that peer.
                Err(_) => {
                    match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host(p.as_str()))
                        .await
                    {
                        Ok(Ok(addrs)) => out.extend(addrs),
                        Ok(Err(e)) => {
                            tracing::warn!(peer = %p, error = %e, "cannot resolve the publisher's address")
                        }
                        Err(_) => tracing::warn!(
                            peer = %p,
                            timeout_ms = DNS_TIMEOUT.as_millis() as u64,
                            "resolving the publisher's address timed out"
                        ),
                    }
                }
            }
        }
        out
    }

    /// Carries out actions; true when playback is over.
    pub(crate) async fn act(&mut self, actions: Vec<Action>) -> Result<bool, WatchError> {
        for action in actions {
            match action {
                Action::Add(n) => self.add(n).await,
                Action::FetchHttp(n) => self.fetch_http(n),
                Action::Play {
                    number,
                    deadline_ms,
                    stall_ms,
                } => {
                    if !self.play(number, deadline_ms, stall_ms).await {
                        return Ok(true);
                    }
                }
                Action::Skip(n) => {
                    tracing::warn!(
                        segment = n,
                        "segment left the window before it could be fetched: skipped"
                    );
                    self.summary.skipped.push(n);
                    self.recorder.record(Some(n), Kind::Skipped { count: None });
                }
                Action::SkipUnlisted { first, count } => {
                    tracing::warn!(
                        first,
                        count,
                        "segments no manifest listed (they left the window unseen, or the \
                         manifest jumped ahead): skipped"
                    );
                    if count == 1 {
                        self.summary.skipped.push(first);
                    } else {
                        self.summary.skipped_unlisted += count;
                    }
                    let count = (count > 1).then_some(count);
                    self.recorder.record(Some(first), Kind::Skipped { count });
                }
                Action::Forget(n) => self.forget(n).await,
                Action::End => return Ok(true),
            }
        }
        Ok(false)
    }

    pub(crate) async fn add(&mut self, n: u64) {
        if self.config.transport == Transport::Http {
            self.add_http(n);
            return;
        }
        let Some(seg) = self.segs.get(&n) else { return };
        let torrent = self.torrent_bytes(&seg.entry);
        let peers = self.initial_peers().await;
        let name = format!("{n:08}.ts");
        let added = Instant::now();
        self.recorder.record(Some(n), Kind::Added);
        match self
            .swarm
            .download_ranked(
                &torrent,
                &name,
                &self.dir,
                peers,
                vec![],
                self.config.urgent_first.then_some(n),
            )
            .await
        {
            Ok(t) => {
                let watcher =
                    spawn_watcher(self.swarm.clone(), t.clone(), n, added, self.ev_tx.clone());
                if let Some(seg) = self.segs.get_mut(&n) {
                    seg.torrent = Some(t);
                    seg.watcher = Some(watcher);
                    seg.added = Some(added);
                }
            }
            Err(e) => {
                tracing::warn!(segment = n, error = %e, "cannot add the segment to the swarm; HTTP fallback will fetch it")
            }
        }
    }

    pub(crate) fn fetch_http(&mut self, n: u64) {
        let (Some(seg), Some(source)) = (self.segs.get_mut(&n), self.source.clone()) else {
            return;
        };
        let Ok(url) = source.join(&format!("segments/{n:08}.ts")) else {
            return;
        };
        let Ok(info) = InfoDict::decode_strict(&seg.entry.info) else {
            return;
        };
        tracing::info!(segment = n, %url, "fetching over HTTP (the swarm is late)");
        let (client, temp, tx, limiter) = (
            self.client.clone(),
            fallback::temp_path(&self.dir, n),
            self.ev_tx.clone(),
            self.limiter.clone(),
        );
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            let progress = move |m: Milestone| {
                if let Milestone::Received(total) = m {
                    counter.store(total, Ordering::Relaxed);
                }
            };
            let result = fallback::fetch_verified(
                &client,
                &url,
                &info,
                &temp,
                limiter.as_deref(),
                &progress,
            )
            .await;
            let _ = tx.send(ViewerEvent::Http(n, result)).await;
        });
        if let Some(old) = seg.fallback.replace(Fallback { task, received }) {
            old.task.abort();
        }
    }

    /// The HTTP baseline ([`Transport::Http`]): the segment is fetched from the publisher's
    /// `/segments/<n>.ts`, retried while it is wanted (at most [`HTTP_ATTEMPTS`] times). The
    /// response headers count as its first peer, the first verified piece as its first piece.
    pub(crate) fn add_http(&mut self, n: u64) {
        let (Some(seg), Some(source)) = (self.segs.get_mut(&n), self.source.clone()) else {
            return;
        };
        let (Ok(url), Ok(info)) = (
            source.join(&format!("segments/{n:08}.ts")),
            InfoDict::decode_strict(&seg.entry.info),
        ) else {
            return;
        };
        let added = Instant::now();
        seg.added = Some(added);
        self.recorder.record(Some(n), Kind::Added);
        let (client, temp, tx, limiter) = (
            self.client.clone(),
            fallback::temp_path(&self.dir, n),
            self.ev_tx.clone(),
            self.limiter.clone(),
        );
        seg.watcher = Some(tokio::spawn(async move {
            let seen = std::sync::Mutex::new((false, false));
            let progress = |m: Milestone| {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let ev = match m {
                    Milestone::Response if !seen.0 => {
                        seen.0 = true;
                        ViewerEvent::FirstPeer(n, added.elapsed())
                    }
                    Milestone::FirstPiece if !seen.1 => {
                        seen.1 = true;
                        ViewerEvent::FirstPiece(n, added.elapsed())
                    }
                    _ => return,
                };
                let _ = tx.try_send(ev);
            };
            let mut attempt = 1;
            let result = loop {
                let result = fallback::fetch_verified(
                    &client,
                    &url,
                    &info,
                    &temp,
                    limiter.as_deref(),
                    &progress,
                )
                .await;
                match &result {
                    Err(e) if e.failure() != FetchFailure::Gone && attempt < HTTP_ATTEMPTS => {
                        tracing::warn!(segment = n, attempt, error = %e, "HTTP fetch failed");
                        tokio::time::sleep(HTTP_RETRY).await;
                        attempt += 1;
                    }
                    _ => break result,
                }
            };
            let _ = tx.send(ViewerEvent::Http(n, result)).await;
        }));
    }

    /// Writes a segment to the sink; false if the sink is gone (a closed pipe).
    pub(crate) async fn play(&mut self, n: u64, deadline_ms: u64, stall_ms: u64) -> bool {
        let path = self.dir.join(format!("{n:08}.ts"));
        let data = match tokio::fs::read(&path).await {
            Ok(d) => Bytes::from(d),
            Err(e) => {
                tracing::error!(segment = n, error = %e, "cannot read a complete segment: skipped");
                self.summary.skipped.push(n);
                return true;
            }
        };
        if self.summary.startup_ms.is_none() {
            self.summary.startup_ms = Some(self.now_ms());
        }
        if stall_ms > 0 {
            tracing::warn!(segment = n, stall_ms, "stall: the segment was late");
        }
        let len = data.len() as u64;
        if let Err(e) = self.sink.write(data).await {
            tracing::warn!(error = %e, "the output is closed: stopping");
            return false;
        }
        self.summary.bytes_out += len;
        self.summary.played.push(n);
        if let Some(seg) = self.segs.get(&n) {
            self.summary
                .behind_live_ms
                .push(wall_ms().saturating_sub(seg.entry.published_ms) as f64);
        }
        self.recorder.record(
            Some(n),
            Kind::Played {
                deadline_us: deadline_ms * 1000,
                stall_us: stall_ms * 1000,
                bytes: len,
            },
        );
        true
    }

    pub(crate) async fn forget(&mut self, n: u64) {
        let Some(mut seg) = self.segs.remove(&n) else {
            return;
        };
        if let Some(w) = seg.watcher.take() {
            w.abort();
        }
        if let Some(f) = seg.fallback.take() {
            // Dropped while a fallback was under way: it ends here, with what it had received.
            f.task.abort();
            self.recorder.record(
                Some(n),
                Kind::HttpFallback {
                    bytes: f.received.load(Ordering::Relaxed),
                    ok: false,
                    superseded: false,
                    refused: false,
                },
            );
        }
        let mut uploaded = seg.uploaded_before;
        // Bytes received and not reported at completion: all of them for a segment that never
        // completed from the swarm (wasted, but received).
        let (mut from_publisher, mut from_peers) = (0, 0);
        if let Some(t) = seg.torrent.take() {
            uploaded += self.swarm.stats(&t).uploaded;
            let (p, q) = self.received(&t);
            from_publisher = p.saturating_sub(seg.reported.0);
            from_peers = q.saturating_sub(seg.reported.1);
            self.swarm.forget(&t).await;
        }
        self.summary.uploaded += uploaded;
        self.summary.from_publisher += from_publisher;
        self.summary.from_peers += from_peers;
        self.recorder.record(
            Some(n),
            Kind::Forgotten {
                uploaded_bytes: uploaded,
                from_publisher,
                from_peers,
            },
        );
        if !self.config.keep_segments {
            let _ = tokio::fs::remove_file(self.dir.join(format!("{n:08}.ts"))).await;
        }
        // An HTTP fetch aborted above leaves its temporary file.
        let _ = tokio::fs::remove_file(fallback::temp_path(&self.dir, n)).await;
    }
}

fn seg_added_us(seg: Option<&ViewerSegment>) -> u64 {
    seg.and_then(|s| s.added)
        .map_or(0, |a| a.elapsed().as_micros() as u64)
}

/// Samples a downloading segment every [`SAMPLE`]: librqbit timestamps neither the first peer nor
/// the first piece, so their times are known to within one sample.
pub(crate) fn spawn_watcher(
    swarm: Arc<Swarm>,
    t: Torrent,
    n: u64,
    added: Instant,
    tx: mpsc::Sender<ViewerEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (mut peer, mut piece) = (false, false);
        loop {
            let s = swarm.stats(&t);
            if !peer && s.live_peers > 0 {
                peer = true;
                let _ = tx.send(ViewerEvent::FirstPeer(n, added.elapsed())).await;
            }
            if !piece && (s.pieces > 0 || s.finished) {
                piece = true;
                let _ = tx.send(ViewerEvent::FirstPiece(n, added.elapsed())).await;
            }
            if s.finished {
                let _ = tx.send(ViewerEvent::Complete(n)).await;
                return;
            }
            tokio::time::sleep(SAMPLE).await;
        }
    })
}
