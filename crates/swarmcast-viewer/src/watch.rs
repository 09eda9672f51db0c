//! `swarmcast watch`: the async viewer that carries out the [`Scheduler`]'s actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::manifest::SegmentEntry;
use swarmcast_core::{InfoDict, SegmentTorrent, SignedManifest, StreamLink};
use swarmcast_metrics::{Kind, Recorder, Role};
use swarmcast_swarm::{Swarm, SwarmConfig, Torrent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::fallback;
use crate::poller::{poll_manifests, PollEvent};
use crate::schedule::{Action, ScheduleConfig, Scheduler};
use crate::sink::{Sink, SinkConfig};

/// How often a downloading segment's stats are sampled (first peer, first piece, completion).
pub const SAMPLE: Duration = Duration::from_millis(5);
/// Manifest refusals before the first accepted one after which the link is taken to be wrong.
const REFUSALS_BEFORE_GIVING_UP: u64 = 3;

/// Everything `swarmcast watch` can be told.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The stream link.
    pub link: StreamLink,
    /// The peer listener (other viewers fetch from us here).
    pub listen: SocketAddr,
    /// Where segments are stored while in the window (default: a temporary directory).
    pub data_dir: Option<PathBuf>,
    /// Scheduling.
    pub schedule: ScheduleConfig,
    /// Where played segments go.
    pub sink: SinkConfig,
    /// Keep segment files after they leave the window.
    pub keep_segments: bool,
    /// JSON-lines counters.
    pub metrics_out: Option<PathBuf>,
    /// Node name in the counters.
    pub node: String,
    /// Upload limit, bytes/s.
    pub upload_limit: Option<u32>,
    /// Download limit, bytes/s.
    pub download_limit: Option<u32>,
}

impl WatchConfig {
    /// Defaults: listen on all interfaces, any port; stdout; live edge; automatic delay.
    pub fn new(link: StreamLink) -> Self {
        Self {
            link,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            data_dir: None,
            schedule: ScheduleConfig::default(),
            sink: SinkConfig::Stdout,
            keep_segments: false,
            metrics_out: None,
            node: "viewer".into(),
            upload_limit: None,
            download_limit: None,
        }
    }
}

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The BitTorrent session failed.
    #[error(transparent)]
    Swarm(#[from] swarmcast_swarm::SwarmError),
    /// The sink or the data directory could not be opened.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Every manifest was refused: the link is wrong or the sources are forged.
    #[error("manifest refused: {0}")]
    Refused(#[source] swarmcast_core::ManifestError),
    /// The counters file could not be created.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
}

/// What a viewer did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchSummary {
    /// The first segment played (the live edge when joining, or the oldest with from-start).
    pub joined_at: Option<u64>,
    /// The newest segment when joining.
    pub newest_at_join: Option<u64>,
    /// Segments written to the sink, in order.
    pub played: Vec<u64>,
    /// Segments skipped.
    pub skipped: Vec<u64>,
    /// Late segments.
    pub stalls: u64,
    /// Time playback waited, ms.
    pub stall_ms: u64,
    /// HTTP fallbacks used.
    pub fallbacks: u64,
    /// The playout delay, ms.
    pub delay_ms: Option<u64>,
    /// From start to the first byte written, ms.
    pub startup_ms: Option<u64>,
    /// Bytes written to the sink.
    pub bytes_out: u64,
    /// Payload bytes received from the publisher.
    pub from_publisher: u64,
    /// Payload bytes received from other peers.
    pub from_peers: u64,
    /// Bytes received over HTTP fallback.
    pub from_http: u64,
    /// Payload bytes uploaded to other viewers.
    pub uploaded: u64,
    /// Manifest bytes fetched.
    pub manifest_bytes: u64,
    /// Manifests refused.
    pub manifests_refused: u64,
    /// Setup time of each segment fetched from the swarm: added → first verified piece, ms.
    pub setup_ms: Vec<f64>,
    /// Published (the publisher's clock) → first verified piece (ours), ms: valid on a shared
    /// clock only (one machine).
    pub published_to_first_piece_ms: Vec<f64>,
    /// Latency behind live of each played segment: published → played, ms (shared clock).
    pub behind_live_ms: Vec<f64>,
    /// The stream's end was seen.
    pub end_of_stream: bool,
}

struct Seg {
    entry: SegmentEntry,
    torrent: Option<Torrent>,
    watcher: Option<JoinHandle<()>>,
    added: Option<Instant>,
    first_piece_seen: bool,
    complete: bool,
}

enum Ev {
    FirstPeer(u64, Duration),
    FirstPiece(u64, Duration),
    Complete(u64),
    Http(u64, Result<u64, String>),
}

/// Ready information for callers that need the bound addresses.
#[derive(Clone, Debug)]
pub struct WatchReady {
    /// The peer listener.
    pub peer: SocketAddr,
    /// The playback HTTP server, with an HTTP sink.
    pub http: Option<SocketAddr>,
}

struct Viewer {
    config: WatchConfig,
    swarm: Arc<Swarm>,
    dir: PathBuf,
    recorder: Recorder,
    scheduler: Scheduler,
    segs: BTreeMap<u64, Seg>,
    latest: Option<Arc<SignedManifest>>,
    source: Option<Url>,
    client: reqwest::Client,
    ev_tx: mpsc::Sender<Ev>,
    sink: Sink,
    origin: Instant,
    summary: WatchSummary,
}

/// Watches the stream until its end (`Ok` after the last segment is played) or `cancel`.
pub async fn watch(
    config: WatchConfig,
    cancel: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<WatchReady>>,
) -> Result<WatchSummary, WatchError> {
    let origin = Instant::now();
    let recorder = Recorder::new(
        config.node.clone(),
        Role::Viewer,
        config.metrics_out.as_deref(),
    )?;
    let (dir, _tempdir) = match &config.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| WatchError::Io {
                what: format!("data directory {}", d.display()),
                source,
            })?;
            (d.clone(), None)
        }
        None => {
            let t = tempdir().map_err(|source| WatchError::Io {
                what: "temporary directory".into(),
                source,
            })?;
            (t.0.clone(), Some(t))
        }
    };
    let swarm = Arc::new(
        Swarm::start(SwarmConfig {
            default_dir: dir.clone(),
            listen: config.listen,
            upload_limit: config.upload_limit,
            download_limit: config.download_limit,
        })
        .await?,
    );
    let (sink, http) = Sink::open(&config.sink)
        .await
        .map_err(|source| WatchError::Io {
            what: format!("output {:?}", config.sink),
            source,
        })?;
    if let Some(ready) = ready {
        let _ = ready.send(WatchReady {
            peer: swarm.listen_addr(),
            http,
        });
    }
    let (poll_tx, mut poll_rx) = mpsc::channel(16);
    let poll_stop = cancel.child_token();
    let poller = tokio::spawn(poll_manifests(
        config.link.clone(),
        poll_tx,
        poll_stop.clone(),
    ));
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let mut viewer = Viewer {
        scheduler: Scheduler::new(config.schedule.clone()),
        config,
        swarm: swarm.clone(),
        dir,
        recorder,
        segs: BTreeMap::new(),
        latest: None,
        source: None,
        client: reqwest::Client::new(),
        ev_tx,
        sink,
        origin,
        summary: WatchSummary::default(),
    };

    let result = loop {
        let wake = viewer
            .scheduler
            .next_wakeup()
            .map(|ms| origin + Duration::from_millis(ms));
        tokio::select! {
            event = poll_rx.recv() => match event {
                Some(event) => {
                    if let Err(e) = viewer.on_poll(event) {
                        break Err(e);
                    }
                }
                None => {
                    // The poller ended (end of stream): keep playing what we have.
                    if viewer.latest.as_ref().is_none_or(|m| !m.manifest.end_of_stream) && !cancel.is_cancelled() {
                        tracing::warn!("manifest polling stopped");
                    }
                    poll_rx.close();
                }
            },
            Some(ev) = ev_rx.recv() => viewer.on_event(ev).await,
            () = sleep_until_opt(wake) => {}
            () = cancel.cancelled() => break Ok(()),
        }
        let actions = viewer.scheduler.poll(viewer.now_ms());
        match viewer.act(actions).await {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    poll_stop.cancel();
    let _ = poller.await;
    let ended = viewer.scheduler.ended();
    viewer.recorder.record(
        None,
        Kind::Ended {
            end_of_stream: ended,
        },
    );
    let _ = viewer.sink.close().await;
    let numbers: Vec<u64> = viewer.segs.keys().copied().collect();
    for n in numbers {
        viewer.forget(n).await;
    }
    swarm.shutdown().await;
    let stats = viewer.scheduler.stats().clone();
    let mut summary = viewer.summary;
    summary.stalls = stats.stalls;
    summary.stall_ms = stats.stall_ms;
    summary.fallbacks = stats.fallbacks;
    summary.delay_ms = stats.delay_ms;
    summary.end_of_stream = ended;
    result.map(|()| summary)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A temporary directory removed on drop (the viewer's default data directory).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> std::io::Result<TempDir> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = base.join(format!(
            "swarmcast-viewer-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Viewer {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn on_poll(&mut self, event: PollEvent) -> Result<(), WatchError> {
        match event {
            PollEvent::Manifest {
                manifest,
                source,
                mode,
            } => {
                let m = &manifest.manifest;
                self.summary.manifest_bytes += manifest.bytes.len() as u64;
                self.recorder.record(
                    None,
                    Kind::ManifestFetched {
                        seq: m.seq,
                        bytes: manifest.bytes.len() as u64,
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
                            Seg {
                                entry: entry.clone(),
                                torrent: None,
                                watcher: None,
                                added: None,
                                first_piece_seen: false,
                                complete: false,
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

    async fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::FirstPeer(n, since) => {
                self.recorder.record(
                    Some(n),
                    Kind::FirstPeer {
                        since_added_us: since.as_micros() as u64,
                    },
                );
            }
            Ev::FirstPiece(n, since) => {
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
            Ev::Complete(n) => self.complete_from_swarm(n),
            Ev::Http(n, result) => self.http_done(n, result).await,
        }
    }

    fn publisher_addrs(&self) -> Vec<String> {
        self.latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.peers.clone())
    }

    fn complete_from_swarm(&mut self, n: u64) {
        let publishers = self.publisher_addrs();
        let Some(seg) = self.segs.get_mut(&n) else {
            return;
        };
        if seg.complete {
            return;
        }
        seg.complete = true;
        let (mut from_publisher, mut from_peers) = (0, 0);
        if let Some(t) = &seg.torrent {
            for p in self.swarm.peer_bytes(t) {
                if publishers.contains(&p.addr) {
                    from_publisher += p.fetched;
                } else {
                    from_peers += p.fetched;
                }
            }
        }
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
            },
        );
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
    }

    async fn http_done(&mut self, n: u64, result: Result<u64, String>) {
        let temp = fallback::temp_path(&self.dir, n);
        let Some(seg) = self.segs.get(&n) else {
            let _ = tokio::fs::remove_file(&temp).await;
            return;
        };
        match result {
            Err(e) => {
                tracing::warn!(segment = n, error = %e, "HTTP fallback failed; waiting for the swarm");
                self.recorder.record(
                    Some(n),
                    Kind::HttpFallback {
                        bytes: 0,
                        ok: false,
                    },
                );
                self.scheduler.on_fetch_failed(n);
            }
            Ok(_) if seg.complete => {
                // The swarm won the race: keep its copy.
                let _ = tokio::fs::remove_file(&temp).await;
            }
            Ok(bytes) => {
                self.recorder
                    .record(Some(n), Kind::HttpFallback { bytes, ok: true });
                // Hand the verified file to librqbit: forget the torrent (keeping its file), put
                // ours in place, re-add it so librqbit re-checks it and seeds it to others.
                let name = format!("{n:08}.ts");
                let torrent_bytes = self.torrent_bytes(&seg.entry);
                if let Some(seg) = self.segs.get_mut(&n) {
                    if let Some(w) = seg.watcher.take() {
                        w.abort();
                    }
                    if let Some(t) = seg.torrent.take() {
                        self.swarm.forget(&t).await;
                    }
                }
                if let Err(e) = tokio::fs::rename(&temp, self.dir.join(&name)).await {
                    tracing::warn!(segment = n, error = %e, "cannot move the fetched segment into place");
                    self.scheduler.on_fetch_failed(n);
                    return;
                }
                let seeded = self
                    .swarm
                    .seed(&torrent_bytes, &name, &self.dir, Duration::from_secs(30))
                    .await;
                let since = seg_added_us(self.segs.get(&n));
                if let Some(seg) = self.segs.get_mut(&n) {
                    seg.complete = true;
                    match seeded {
                        Ok(t) => seg.torrent = Some(t),
                        Err(e) => {
                            tracing::warn!(segment = n, error = %e, "cannot seed the fetched segment; playing it anyway")
                        }
                    }
                }
                self.summary.from_http += bytes;
                self.recorder.record(
                    Some(n),
                    Kind::Completed {
                        since_added_us: since,
                        via: "http".into(),
                        from_publisher: 0,
                        from_peers: 0,
                        from_http: bytes,
                    },
                );
                let now = self.now_ms();
                self.scheduler.on_complete(n, now);
            }
        }
    }

    fn torrent_bytes(&self, entry: &SegmentEntry) -> Vec<u8> {
        let trackers = self
            .latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.trackers.clone());
        let info =
            InfoDict::decode_strict(&entry.info).expect("verified manifests hold valid info");
        SegmentTorrent::from_info(info, trackers).to_torrent_bytes()
    }

    async fn initial_peers(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for p in self.publisher_addrs() {
            match p.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => match tokio::net::lookup_host(p.as_str()).await {
                    Ok(addrs) => out.extend(addrs),
                    Err(e) => {
                        tracing::warn!(peer = %p, error = %e, "cannot resolve the publisher's address")
                    }
                },
            }
        }
        out
    }

    /// Carries out actions; true when playback is over.
    async fn act(&mut self, actions: Vec<Action>) -> Result<bool, WatchError> {
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
                    self.recorder.record(Some(n), Kind::Skipped);
                }
                Action::Forget(n) => self.forget(n).await,
                Action::End => return Ok(true),
            }
        }
        Ok(false)
    }

    async fn add(&mut self, n: u64) {
        let Some(seg) = self.segs.get(&n) else { return };
        let torrent = self.torrent_bytes(&seg.entry);
        let peers = self.initial_peers().await;
        let name = format!("{n:08}.ts");
        let added = Instant::now();
        self.recorder.record(Some(n), Kind::Added);
        match self
            .swarm
            .download(&torrent, &name, &self.dir, peers, vec![])
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

    fn fetch_http(&mut self, n: u64) {
        let (Some(seg), Some(source)) = (self.segs.get(&n), self.source.clone()) else {
            return;
        };
        let Ok(url) = source.join(&format!("segments/{n:08}.ts")) else {
            return;
        };
        let Ok(info) = InfoDict::decode_strict(&seg.entry.info) else {
            return;
        };
        tracing::info!(segment = n, %url, "fetching over HTTP (the swarm is late)");
        let (client, temp, tx) = (
            self.client.clone(),
            fallback::temp_path(&self.dir, n),
            self.ev_tx.clone(),
        );
        tokio::spawn(async move {
            let result = fallback::fetch_verified(&client, &url, &info, &temp).await;
            let _ = tx.send(Ev::Http(n, result)).await;
        });
    }

    /// Writes a segment to the sink; false if the sink is gone (a closed pipe).
    async fn play(&mut self, n: u64, deadline_ms: u64, stall_ms: u64) -> bool {
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

    async fn forget(&mut self, n: u64) {
        let Some(mut seg) = self.segs.remove(&n) else {
            return;
        };
        if let Some(w) = seg.watcher.take() {
            w.abort();
        }
        let mut uploaded = 0;
        if let Some(t) = seg.torrent.take() {
            uploaded = self.swarm.stats(&t).uploaded;
            self.swarm.forget(&t).await;
        }
        self.summary.uploaded += uploaded;
        self.recorder.record(
            Some(n),
            Kind::Forgotten {
                uploaded_bytes: uploaded,
            },
        );
        if !self.config.keep_segments {
            let _ = tokio::fs::remove_file(self.dir.join(format!("{n:08}.ts"))).await;
        }
    }
}

fn seg_added_us(seg: Option<&Seg>) -> u64 {
    seg.and_then(|s| s.added)
        .map_or(0, |a| a.elapsed().as_micros() as u64)
}

/// Samples a downloading segment every [`SAMPLE`]: librqbit timestamps neither the first peer nor
/// the first piece, so their times are known to within one sample.
fn spawn_watcher(
    swarm: Arc<Swarm>,
    t: Torrent,
    n: u64,
    added: Instant,
    tx: mpsc::Sender<Ev>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (mut peer, mut piece) = (false, false);
        loop {
            let s = swarm.stats(&t);
            if !peer && s.live_peers > 0 {
                peer = true;
                let _ = tx.send(Ev::FirstPeer(n, added.elapsed())).await;
            }
            if !piece && (s.pieces > 0 || s.finished) {
                piece = true;
                let _ = tx.send(Ev::FirstPiece(n, added.elapsed())).await;
            }
            if s.finished {
                let _ = tx.send(Ev::Complete(n)).await;
                return;
            }
            tokio::time::sleep(SAMPLE).await;
        }
    })
}
