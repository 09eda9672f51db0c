//! swarmcast's publisher: a live feed in, a BitTorrent swarm and a signed manifest out.
//!
//! [`run`] wires the pieces: the segmenter cuts the input into `<data>/<key8>/<n>.ts`; each segment
//! gets its torrent (core), is seeded by a librqbit [`Swarm`](swarmcast_swarm::Swarm), and only
//! once librqbit reports it seeding is it added to the rolling [`Window`] and the next manifest
//! signed, persisted ([`state`]) and served ([`http`]). Segments that leave the window are seeded
//! for a grace period, then forgotten. The embedded [`tracker`] lists the publisher and the
//! viewers of each live segment. docs/publish.md describes it all for users.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::keys::keyfile;
use swarmcast_core::manifest::{self, SegmentEntry, SignedManifest};
use swarmcast_core::{SegmentTorrent, StreamLink, Window, WindowConfig};
use swarmcast_metrics::{Kind, Recorder, Role};
use swarmcast_segmenter::source::{self, CutSegment, Format, Input, SegmentConfig};
use swarmcast_segmenter::CutterConfig;
use swarmcast_swarm::{Swarm, SwarmConfig, Torrent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

pub mod error;
pub mod http;
pub mod state;
pub mod tracker;

pub use error::PublishError;

use http::{Served, Shared};
use state::{Persisted, StateDir};

/// How long librqbit may take to report a new segment seeding before the publisher gives up.
const SEED_TIMEOUT: Duration = Duration::from_secs(60);
/// How often removals and upload counts are checked.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// Where the feed comes from.
#[derive(Debug, Clone)]
pub enum FeedInput {
    /// Standard input.
    Stdin,
    /// A file; with `follow`, read as it grows until idle for that long.
    File {
        /// The file.
        path: PathBuf,
        /// Idle timeout when following.
        follow: Option<Duration>,
    },
    /// The files an encoder finishes in a directory.
    WatchDir(PathBuf),
    /// The synthetic feed, paced in real time (demo, lab, tests).
    Synth {
        /// Bit/s (None: the fixture's own).
        bitrate: Option<u64>,
        /// Stop after this much media (90 kHz ticks).
        duration: Option<u64>,
    },
}

/// Everything `swarmcast publish` can be told.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The feed.
    pub input: FeedInput,
    /// Input format (for stdin and files).
    pub format: Format,
    /// The stream's secret key file (created, 0600, if missing).
    pub key: PathBuf,
    /// Segments and state go to `<data_dir>/<first 8 chars of the key>/`.
    pub data_dir: PathBuf,
    /// The BitTorrent listener.
    pub listen: SocketAddr,
    /// Address put into peer hints and tracker answers (`host:port`); default: the listen address
    /// when it is not unspecified.
    pub public_addr: Option<String>,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// Base URL viewers reach the HTTP server at (default `http://<bound HTTP address>`).
    pub public_url: Option<Url>,
    /// More manifest URLs for the link (mirrors).
    pub mirror_urls: Vec<Url>,
    /// Also write every manifest and torrent here (for a static web server or CDN).
    pub mirror_dir: Option<PathBuf>,
    /// Target segment duration, 90 kHz ticks.
    pub target: u64,
    /// Segments in the manifest's window.
    pub window: usize,
    /// How long a segment stays seeded after leaving the window (default: two segment durations).
    pub grace: Option<Duration>,
    /// How long to keep serving after the end of the stream (default: window x segment duration).
    pub linger: Option<Duration>,
    /// Keep segment files after they are forgotten.
    pub keep_segments: bool,
    /// External tracker URLs, added to every torrent and the manifest.
    pub trackers: Vec<String>,
    /// Run the embedded tracker (and announce to it).
    pub embedded_tracker: bool,
    /// Tracker `interval`, seconds.
    pub tracker_interval: u64,
    /// Tracker `min interval`, seconds.
    pub tracker_min_interval: u64,
    /// Piece length (default: the core's rule).
    pub piece_length: Option<u64>,
    /// Upload limit for the swarm, bytes/s.
    pub upload_limit: Option<u32>,
    /// JSON-lines metrics file.
    pub metrics_out: Option<PathBuf>,
    /// Node name in the metrics.
    pub node: String,
    /// Testing: publish this segment in the manifest but never seed it.
    pub withhold_segment: Option<u64>,
}

impl PublishConfig {
    /// Defaults for everything but the input (loopback listeners on free ports, 60 s segments).
    pub fn new(input: FeedInput) -> Self {
        Self {
            input,
            format: Format::Auto,
            key: PathBuf::from("swarmcast.key"),
            data_dir: PathBuf::from("swarmcast-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_addr: None,
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            mirror_urls: Vec::new(),
            mirror_dir: None,
            target: 60 * 90_000,
            window: 5,
            grace: None,
            linger: None,
            keep_segments: false,
            trackers: Vec::new(),
            embedded_tracker: true,
            tracker_interval: 10,
            tracker_min_interval: 1,
            piece_length: None,
            upload_limit: None,
            metrics_out: None,
            node: "publisher".into(),
            withhold_segment: None,
        }
    }
}

/// Ctrl-C twice: the first stops the input and ends the stream gracefully, the second exits.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// End the stream: no more input, end-of-stream manifest, linger.
    pub stop: CancellationToken,
    /// Exit now.
    pub abort: CancellationToken,
}

/// What the publisher tells its caller once it is serving.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The stream link.
    pub link: StreamLink,
    /// The bound HTTP address.
    pub http: SocketAddr,
    /// The bound BitTorrent address.
    pub peer: SocketAddr,
    /// The stream's data directory.
    pub stream_dir: PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Segments published in this run.
    pub segments: u64,
    /// Their bytes.
    pub segment_bytes: u64,
    /// Payload bytes the swarm uploaded (librqbit's count).
    pub uploaded_bytes: u64,
    /// The last manifest sequence number served.
    pub last_seq: u64,
    /// Why new segments stopped early, if they did.
    pub degraded: Option<String>,
}

struct Live {
    entry: SegmentEntry,
    torrent: Option<Torrent>,
    /// When it left the window, if it did.
    dropped_at: Option<Instant>,
    uploaded: u64,
}

struct Publisher {
    config: PublishConfig,
    swarm: Swarm,
    window: Window,
    state: StateDir,
    stream_dir: PathBuf,
    shared: Arc<Shared>,
    recorder: Recorder,
    trackers: Vec<String>,
    public_peer: Option<SocketAddr>,
    live: BTreeMap<u64, Live>,
    grace: Duration,
    summary: Summary,
    removed_uploaded: u64,
}

fn dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Dir {
        path: path.to_owned(),
        source,
    }
}

/// The public peer address: `--public-addr`, or the bound listen address when it is specific.
fn public_addr(config: &PublishConfig, bound: SocketAddr) -> Result<String, PublishError> {
    match &config.public_addr {
        Some(a) if a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0)) => {
            Ok(a.clone())
        }
        Some(a) => Err(PublishError::PublicAddr(format!("--public-addr {a:?} is not host:port"))),
        None if config.listen.ip().is_unspecified() => Err(PublishError::PublicAddr(format!(
            "--listen {} is an unspecified address: pass --public-addr HOST:PORT, the address viewers reach this publisher at",
            config.listen
        ))),
        None => Ok(bound.to_string()),
    }
}

/// Publishes a stream until the input ends or `shutdown` says so. `ready` receives the link once
/// the HTTP server and the swarm are up.
pub async fn run(
    config: PublishConfig,
    shutdown: Shutdown,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<Summary, PublishError> {
    if config.window == 0 || config.window > manifest::MAX_WINDOW {
        return Err(PublishError::Config(format!(
            "--window {} must be from 1 to {}",
            config.window,
            manifest::MAX_WINDOW
        )));
    }
    if config.public_addr.is_none() && config.listen.ip().is_unspecified() {
        public_addr(&config, config.listen)?;
    }
    check_input(&config.input)?;
    let (secret, created) = keyfile::read_or_create(&config.key)?;
    let key = secret.public();
    if created {
        tracing::info!(path = %config.key.display(), %key, "created a new stream key");
    }
    let stream_dir = config.data_dir.join(&key.to_string()[..8]);
    std::fs::create_dir_all(&stream_dir).map_err(dir_error(&stream_dir))?;
    check_writable(&stream_dir)?;
    if let Some(m) = &config.mirror_dir {
        std::fs::create_dir_all(m.join("segments")).map_err(dir_error(m))?;
    }
    let state = StateDir::new(&stream_dir);
    let previous = state.load()?;
    let recorder = Recorder::new(
        config.node.clone(),
        Role::Publisher,
        config.metrics_out.as_deref(),
    )?;

    let swarm = Swarm::start(SwarmConfig {
        default_dir: stream_dir.clone(),
        listen: config.listen,
        upload_limit: config.upload_limit,
        download_limit: None,
    })
    .await?;
    let peer_addr = swarm.listen_addr();
    let public = public_addr(&config, peer_addr)?;
    let public_peer = public.parse::<SocketAddr>().ok();

    let http_listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| PublishError::HttpBind {
            addr: config.http,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| PublishError::HttpBind {
            addr: config.http,
            source,
        })?;
    let base = match &config.public_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("http://{http_addr}/")).expect("a socket address makes a URL"),
    };
    let join = |path: &str| base.join(path).expect("a relative path joins");
    let mut trackers = Vec::new();
    if config.embedded_tracker {
        trackers.push(join("announce").to_string());
    }
    trackers.extend(config.trackers.iter().cloned());
    if trackers.len() > manifest::MAX_TRACKERS {
        return Err(PublishError::Config(format!(
            "{} trackers (the embedded one included): a manifest holds at most {}",
            trackers.len(),
            manifest::MAX_TRACKERS
        )));
    }
    let mut sources = vec![join("manifest")];
    sources.extend(config.mirror_urls.iter().cloned());
    let link = StreamLink::new(key, sources).map_err(|e| PublishError::Config(e.to_string()))?;

    let restarted = previous.is_some();
    let (persisted, previous_doc) =
        previous.map_or((Persisted::default(), None), |p| (p.persisted, p.manifest));
    let window = Window::new(
        secret,
        WindowConfig {
            capacity: config.window,
            target_duration: config.target,
            peers: vec![public],
            trackers: trackers.clone(),
        },
        persisted.next_seq,
    )?;
    let tracker = config
        .embedded_tracker
        .then(|| tracker::Tracker::new(config.tracker_interval, config.tracker_min_interval));
    let shared = Arc::new(Shared::new(link.to_string(), tracker));
    let grace = config
        .grace
        .unwrap_or(Duration::from_micros(config.target * 2 * 100 / 9));

    let mut publisher = Publisher {
        config,
        swarm,
        window,
        state,
        stream_dir: stream_dir.clone(),
        shared: shared.clone(),
        recorder,
        trackers,
        public_peer,
        live: BTreeMap::new(),
        grace,
        summary: Summary {
            last_seq: persisted.next_seq.saturating_sub(1),
            ..Summary::default()
        },
        removed_uploaded: 0,
    };

    // HTTP first, so a restart's re-seeded window is served as soon as it is signed.
    let http_stop = CancellationToken::new();
    let server = {
        let app = http::router(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let stop = http_stop.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(http_listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    };

    if let Some(doc) = previous_doc {
        publisher.reseed(&doc).await;
    }
    tracing::info!(%link, http = %http_addr, peer = %peer_addr, "publishing");
    if let Some(ready) = ready {
        let _ = ready.send(Ready {
            link: link.clone(),
            http: http_addr,
            peer: peer_addr,
            stream_dir: stream_dir.clone(),
        });
    }

    let result = publisher
        .run_feed(persisted.next_segment, restarted, &shutdown)
        .await;
    let outcome = match result {
        Ok(()) => match publisher.end_of_stream(&shutdown).await {
            // What was published stays on disk and was served; say why the end could not be.
            Err(e) => {
                publisher.degrade(format!(
                    "cannot publish the end of the stream: {}",
                    error_chain(&e)
                ));
                Ok(())
            }
            ok => ok,
        },
        Err(e) => Err(e),
    };
    http_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    publisher.finish().await;
    outcome.map(|()| publisher.summary.clone())
}

/// Refuses an input file or directory that cannot be read before anything starts.
fn check_input(input: &FeedInput) -> Result<(), PublishError> {
    match input {
        FeedInput::File { path, .. } => {
            std::fs::File::open(path)
                .map(drop)
                .map_err(|source| PublishError::Input {
                    path: path.clone(),
                    source,
                })
        }
        FeedInput::WatchDir(dir) => {
            std::fs::read_dir(dir)
                .map(drop)
                .map_err(|source| PublishError::Input {
                    path: dir.clone(),
                    source,
                })
        }
        FeedInput::Stdin | FeedInput::Synth { .. } => Ok(()),
    }
}

fn check_writable(dir: &Path) -> Result<(), PublishError> {
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(dir_error(dir))?;
    std::fs::remove_file(&probe).map_err(dir_error(dir))
}

impl Publisher {
    /// Re-seeds the previous run's window and serves it under a new sequence number: the newest
    /// segments whose files are all still here, and only if every one of them seeds (a window must
    /// stay contiguous with the segments that follow).
    async fn reseed(&mut self, doc: &[u8]) {
        let mut entries = match manifest::verify(doc, &self.window_key()) {
            Ok(m) => m.manifest.segments,
            Err(e) => {
                tracing::warn!(error = %e, "the previous run's manifest is unusable: not re-seeding its window");
                return;
            }
        };
        let first_kept = entries
            .iter()
            .rposition(|e| !self.segment_path(e.number).exists())
            .map_or(0, |i| i + 1);
        if first_kept > 0 {
            tracing::warn!(
                missing = entries[first_kept - 1].number,
                "a previous segment file is gone: re-seeding only the segments after it"
            );
        }
        let entries = entries.split_off(first_kept);
        let mut seeded = Vec::with_capacity(entries.len());
        for entry in &entries {
            match self.seed_entry(entry).await {
                Ok(torrent) => seeded.push(torrent),
                Err(e) => {
                    tracing::warn!(segment = entry.number, error = %e, "cannot re-seed a previous segment: not re-serving the previous window");
                    for t in &seeded {
                        self.swarm.forget(t).await;
                    }
                    return;
                }
            }
        }
        for (entry, torrent) in entries.into_iter().zip(seeded) {
            let torrent_bytes = self.torrent_bytes(&entry);
            self.serve(&entry, Some(torrent), torrent_bytes);
            if let Err(e) = self.window.push(entry) {
                tracing::warn!(error = %e, "cannot re-add a previous segment");
            }
        }
        if self.window.segments().len() > 0 {
            if let Err(e) = self.sign_and_serve(None).await {
                tracing::warn!(error = %e, "cannot serve the re-seeded window");
            }
        }
    }

    fn window_key(&self) -> swarmcast_core::StreamKey {
        self.window.key()
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.stream_dir.join(format!("{number:08}.ts"))
    }

    fn torrent_bytes(&self, entry: &SegmentEntry) -> Bytes {
        let info = swarmcast_core::InfoDict::decode_strict(&entry.info)
            .expect("window entries hold valid info");
        Bytes::from(SegmentTorrent::from_info(info, self.trackers.clone()).to_torrent_bytes())
    }

    async fn seed_entry(&self, entry: &SegmentEntry) -> Result<Torrent, PublishError> {
        let torrent = self.torrent_bytes(entry);
        Ok(self
            .swarm
            .seed(
                &torrent,
                &format!("{:08}.ts", entry.number),
                &self.stream_dir,
                SEED_TIMEOUT,
            )
            .await?)
    }

    fn serve(&mut self, entry: &SegmentEntry, torrent: Option<Torrent>, torrent_bytes: Bytes) {
        let seeded = torrent.is_some();
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                entry.number,
                Served {
                    path: self.segment_path(entry.number),
                    torrent: torrent_bytes.clone(),
                    info_hash: entry.info_hash,
                    size: entry.size,
                    in_window: true,
                },
            );
        if let Some(tracker) = &self.shared.tracker {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_torrent(entry.info_hash.0, self.public_peer.filter(|_| seeded));
        }
        if let Some(m) = &self.config.mirror_dir {
            let path = m
                .join("segments")
                .join(format!("{:08}.torrent", entry.number));
            if let Err(e) = state::write_atomic(&path, &torrent_bytes) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the mirror's torrent");
            }
        }
        self.live.insert(
            entry.number,
            Live {
                entry: entry.clone(),
                torrent,
                dropped_at: None,
                uploaded: 0,
            },
        );
    }

    /// Signs the next manifest, persists the counters, then serves it.
    async fn sign_and_serve(
        &mut self,
        next_segment: Option<u64>,
    ) -> Result<Arc<SignedManifest>, PublishError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let signed = self.window.sign(now_ms)?;
        let next_segment = next_segment
            .unwrap_or_else(|| self.window.segments().last().map_or(0, |s| s.number + 1));
        let persisted = Persisted {
            next_seq: self.window.next_seq(),
            next_segment,
        };
        self.state
            .save(persisted, &signed.bytes)
            .map_err(dir_error(&self.stream_dir))?;
        if let Some(m) = &self.config.mirror_dir {
            if let Err(e) = state::write_atomic(&m.join("manifest"), &signed.bytes) {
                tracing::warn!(error = %e, "cannot write the mirror's manifest");
            }
        }
        let signed = Arc::new(signed);
        self.summary.last_seq = signed.manifest.seq;
        self.shared.manifest.send_replace(Some(signed.clone()));
        Ok(signed)
    }

    /// Takes segments from the feed until it ends or `shutdown.stop`.
    async fn run_feed(
        &mut self,
        first_number: u64,
        restarted: bool,
        shutdown: &Shutdown,
    ) -> Result<(), PublishError> {
        let (tx, mut rx) = mpsc::channel::<CutSegment>(4);
        let feed_stop = CancellationToken::new();
        let segment_config = SegmentConfig {
            out_dir: self.stream_dir.clone(),
            cutter: CutterConfig {
                target: self.config.target,
                first_number,
                first_discontinuity: restarted,
            },
            format: self.config.format,
        };
        let mut feed = {
            let input = self.config.input.clone();
            let stop = feed_stop.clone();
            tokio::spawn(async move {
                match input {
                    FeedInput::Stdin => {
                        source::segment_stream(Input::Stdin, segment_config, tx, stop).await
                    }
                    FeedInput::File { path, follow } => {
                        source::segment_stream(
                            Input::File { path, follow },
                            segment_config,
                            tx,
                            stop,
                        )
                        .await
                    }
                    FeedInput::WatchDir(dir) => {
                        source::watch_dir(&dir, segment_config, tx, stop).await
                    }
                    FeedInput::Synth { bitrate, duration } => {
                        let synth = match swarmcast_segmenter::synth::Synth::new(bitrate, 0) {
                            Ok(s) => s,
                            Err(e) => {
                                return Err(source::SourceError::Read {
                                    what: "the synthetic feed".into(),
                                    source: std::io::Error::other(e),
                                })
                            }
                        };
                        let reader = source::synth_reader(synth, true, duration, stop.clone());
                        source::segment_stream(
                            Input::Reader(Box::new(reader)),
                            segment_config,
                            tx,
                            stop,
                        )
                        .await
                    }
                }
            })
        };
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut feed_done = false;
        let mut taking = true;
        loop {
            tokio::select! {
                segment = rx.recv(), if taking => match segment {
                    Some(segment) => {
                        if let Err(e) = self.publish_segment(segment).await {
                            self.degrade(format!("{e}"));
                            feed_stop.cancel();
                            taking = false;
                        }
                    }
                    None => taking = false,
                },
                result = &mut feed, if !feed_done => {
                    feed_done = true;
                    match result {
                        Ok(Ok(run)) => tracing::info!(segments = run.segments, bytes = run.bytes_in, skipped = run.cutter.bytes_skipped, "input ended"),
                        Ok(Err(e)) => self.degrade(error_chain(&e)),
                        Err(e) => self.degrade(format!("the segmenter task failed: {e}")),
                    }
                },
                _ = housekeeping.tick() => self.housekeeping().await,
                () = shutdown.stop.cancelled(), if !feed_stop.is_cancelled() => feed_stop.cancel(),
                () = shutdown.abort.cancelled() => return Ok(()),
            }
            if feed_done && !taking {
                break;
            }
        }
        if let Some(reason) = self.summary.degraded.clone() {
            // No new segments, but what is published stays served until Ctrl-C.
            tracing::error!(%reason, "not taking new segments; still serving the published ones (Ctrl-C to end)");
            loop {
                tokio::select! {
                    _ = housekeeping.tick() => self.housekeeping().await,
                    () = shutdown.stop.cancelled() => break,
                    () = shutdown.abort.cancelled() => break,
                }
            }
        }
        Ok(())
    }

    fn degrade(&mut self, reason: String) {
        tracing::error!(%reason, "stopped taking new segments");
        *self
            .shared
            .degraded
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        self.summary.degraded.get_or_insert(reason);
    }

    async fn publish_segment(&mut self, cut: CutSegment) -> Result<(), PublishError> {
        let received = Instant::now();
        let meta = cut.meta.clone();
        let n = meta.number;
        self.recorder.record(
            Some(n),
            Kind::Cut {
                size: meta.size,
                media_start: meta.media_start,
                duration: meta.duration,
                discontinuity: meta.discontinuity,
            },
        );
        let (path, name, trackers, piece_length) = (
            cut.path.clone(),
            format!("{n:08}.ts"),
            self.trackers.clone(),
            self.config.piece_length,
        );
        let torrent = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            let size = file.metadata()?.len();
            SegmentTorrent::build(
                std::io::BufReader::new(file),
                size,
                &name,
                piece_length,
                trackers,
            )
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
        })
        .await
        .map_err(|e| PublishError::Config(format!("hashing task failed: {e}")))?
        .map_err(dir_error(&cut.path))?;
        let hashed = received.elapsed();
        self.recorder.record(
            Some(n),
            Kind::Hashed {
                hash_us: hashed.as_micros() as u64,
                pieces: torrent.info().piece_count(),
                piece_length: torrent.info().piece_length,
                info_hash: torrent.info_hash().to_string(),
            },
        );
        let entry = SegmentEntry {
            number: n,
            media_start: meta.media_start,
            duration: meta.duration,
            size: meta.size,
            discontinuity: meta.discontinuity,
            published_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            info_hash: torrent.info_hash(),
            info: torrent.info_bytes().to_vec(),
        };
        let torrent_bytes = Bytes::from(torrent.to_torrent_bytes());
        let seeded = if self.config.withhold_segment == Some(n) {
            tracing::warn!(
                segment = n,
                "withholding this segment from the swarm (testing flag)"
            );
            None
        } else {
            let add = Instant::now();
            let t = self
                .swarm
                .seed(
                    &torrent_bytes,
                    &format!("{n:08}.ts"),
                    &self.stream_dir,
                    SEED_TIMEOUT,
                )
                .await?;
            self.recorder.record(
                Some(n),
                Kind::Seeding {
                    add_us: add.elapsed().as_micros() as u64,
                },
            );
            Some(t)
        };
        self.serve(&entry, seeded, torrent_bytes);
        if let Some(dropped) = self.window.push(entry)? {
            if let Some(live) = self.live.get_mut(&dropped.number) {
                live.dropped_at = Some(Instant::now());
            }
            if let Some(s) = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&dropped.number)
            {
                s.in_window = false;
            }
        }
        let signed = self.sign_and_serve(Some(n + 1)).await?;
        self.summary.segments += 1;
        self.summary.segment_bytes += meta.size;
        self.recorder.record(
            Some(n),
            Kind::Published {
                seq: signed.manifest.seq,
                manifest_bytes: signed.bytes.len() as u64,
                cut_to_published_us: received.elapsed().as_micros() as u64,
            },
        );
        tracing::info!(
            segment = n,
            seq = signed.manifest.seq,
            size = meta.size,
            ms = received.elapsed().as_millis() as u64,
            "segment published"
        );
        Ok(())
    }

    /// Forgets segments whose grace period is over; samples upload counts.
    async fn housekeeping(&mut self) {
        let mut total = self.removed_uploaded;
        for live in self.live.values_mut() {
            if let Some(t) = &live.torrent {
                live.uploaded = self.swarm.stats(t).uploaded;
            }
            total += live.uploaded;
        }
        self.shared.uploaded_bytes.store(total, Ordering::Relaxed);
        if let Some(tracker) = &self.shared.tracker {
            let now = self.shared.now_ms();
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expire(now);
        }
        let due: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.dropped_at.is_some_and(|d| d.elapsed() >= self.grace))
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            self.remove(n).await;
        }
    }

    async fn remove(&mut self, n: u64) {
        let Some(live) = self.live.remove(&n) else {
            return;
        };
        let mut uploaded = live.uploaded;
        if let Some(t) = &live.torrent {
            uploaded = self.swarm.stats(t).uploaded;
            self.swarm.forget(t).await;
        }
        self.removed_uploaded += uploaded;
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&n);
        if let Some(tracker) = &self.shared.tracker {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove_torrent(&live.entry.info_hash.0);
        }
        if !self.config.keep_segments {
            if let Err(e) = std::fs::remove_file(self.segment_path(n)) {
                tracing::warn!(segment = n, error = %e, "cannot delete the segment file");
            }
        }
        if let Some(m) = &self.config.mirror_dir {
            let _ = std::fs::remove_file(m.join("segments").join(format!("{n:08}.torrent")));
        }
        self.recorder
            .record(Some(n), Kind::Uploaded { bytes: uploaded });
        self.recorder.record(
            Some(n),
            Kind::Removed {
                uploaded_bytes: uploaded,
                kept_file: self.config.keep_segments,
            },
        );
        tracing::debug!(segment = n, uploaded, "segment forgotten");
    }

    /// Serves the end-of-stream manifest, then lingers.
    async fn end_of_stream(&mut self, shutdown: &Shutdown) -> Result<(), PublishError> {
        if shutdown.abort.is_cancelled() {
            return Ok(());
        }
        self.window.end_stream();
        let signed = self.sign_and_serve(None).await?;
        self.recorder.record(
            None,
            Kind::EndOfStream {
                seq: signed.manifest.seq,
            },
        );
        let linger = self.config.linger.unwrap_or(Duration::from_micros(
            self.config.target * self.window.segments().len().max(1) as u64 * 100 / 9,
        ));
        tracing::info!(
            seq = signed.manifest.seq,
            linger_s = linger.as_secs_f64(),
            "end of stream: lingering so viewers get the end (Ctrl-C to exit now)"
        );
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let until = Instant::now() + linger;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                _ = housekeeping.tick() => self.housekeeping().await,
                () = shutdown.abort.cancelled() => break,
                // A Ctrl-C during the linger (the first one, if the input ended by itself).
                () = shutdown.stop.cancelled(), if !shutdown.stop.is_cancelled() => break,
            }
        }
        Ok(())
    }

    async fn finish(&mut self) {
        self.housekeeping().await;
        for (n, live) in std::mem::take(&mut self.live) {
            self.recorder.record(
                Some(n),
                Kind::Uploaded {
                    bytes: live.uploaded,
                },
            );
        }
        self.summary.uploaded_bytes = self.shared.uploaded_bytes.load(Ordering::Relaxed);
        self.swarm.shutdown().await;
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
