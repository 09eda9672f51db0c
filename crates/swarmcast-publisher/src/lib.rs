//! swarmcast's publisher: a live feed in, a BitTorrent swarm and a signed manifest out.
//!
//! [`run`] wires the pieces: the segmenter cuts the input into `<data>/<key8>/<n>.ts`; each segment
//! gets its torrent (core), is seeded (by the wire seeder, or a librqbit session:
//! [`Seeder`]), and only once it is served is it added to the rolling [`Window`] and the next
//! manifest signed, persisted ([`state`]) and served ([`http`]). Segments that leave the window are seeded
//! for a grace period, then forgotten. The embedded [`tracker`] lists the publisher and the
//! viewers of each live segment. docs/publish.md describes it all for users.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::keys::keyfile;
use swarmcast_core::manifest::{self};
use swarmcast_core::{StreamLink, Window, WindowConfig};
use swarmcast_metrics::{Recorder, Role};
use swarmcast_segmenter::source::Format;
use swarmcast_swarm::seeder::Seeder;
use swarmcast_swarm::wire::{WireConfig, WireSeeder};
use swarmcast_swarm::{Swarm, SwarmConfig};
use swarmcast_tasks::Tasks;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use url::Url;

pub mod error;
pub mod fds;
pub mod http;
pub mod metrics;
pub mod natcheck;
mod pipeline;
pub mod segment_file;
pub mod serve;
pub mod state;
pub mod tracker;

pub use error::PublishError;

use http::Shared;
use pipeline::Publisher;
use state::{Persisted, StateDir};

/// How long a librqbit session may take to report a new segment seeding before the publisher
/// gives up (the wire seeder serves a segment once it has read and checked it).
pub(crate) const SEED_TIMEOUT: Duration = Duration::from_secs(60);
/// How often removals and upload counts are checked.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// Default of [`PublishConfig::fallback_slots`].
pub const DEFAULT_FALLBACK_SLOTS: usize = 1;

/// Default of [`PublishConfig::tracker_min_interval`], seconds. librqbit re-announces every
/// torrent of its window this often; at 1 s the tracker's answers were 0.23x of the segment bytes
/// published at 20 viewers (docs/publish.md). Viewers nobody can dial are told 1 s while they
/// miss reachable peers ([`tracker::CATCH_UP_MIN_INTERVAL_S`]).
pub const DEFAULT_TRACKER_MIN_INTERVAL: u64 = 5;

/// What seeds the publisher's segments (`publish --seeder`; docs/librqbit.md, 0007, compares
/// the two).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SeederKind {
    /// swarmcast's wire seeder on librqbit's wire-protocol crate; super-seeding is swarmcast's.
    #[default]
    Wire,
    /// A librqbit session; super-seeding is librqbit patch 0007.
    Librqbit,
}

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
    /// The embedded tracker lists a viewer to others only once it connected back to the viewer's
    /// listed address (BitTornado's `--nat_check`): viewers behind a NAT still get peer lists, but
    /// are never handed out, so nobody wastes a dial (a connect timeout and a backoff) on them.
    pub nat_check: bool,
    /// Connect timeout of a NAT check (more than a few round trips).
    pub nat_check_timeout: Duration,
    /// With the NAT check: while at least as many viewers are behind a NAT as not, the tracker
    /// lists reachable viewers only to those behind a NAT, so reachable uplinks carry the copies
    /// nobody else can, and reachable viewers get theirs from the NATed ones that dial them.
    pub spare_reachable: bool,
    /// With the NAT check: TCP hole punching. Viewers that failed the check are listed each
    /// other at a port of this range, the same for both ends of a pair and changing with the
    /// segment, which viewers with the same `watch --punch-ports` dial from that same port
    /// (docs/publish.md, the tracker). `None`: off.
    pub punch_ports: Option<std::ops::RangeInclusive<u16>>,
    /// With an upload limit: most segment bodies served over HTTP at once while the swarm
    /// carries the stream (0: no limit); more are answered 503 with `Retry-After: 1`.
    pub fallback_slots: usize,
    /// Piece length (default: the core's rule).
    pub piece_length: Option<u64>,
    /// Upload limit, bytes/s on the wire ([`swarmcast_swarm::ratelimit::ByteLimiter::wire`]:
    /// each write counted with its packets' headers and one packet more). With the wire seeder
    /// (the default) one paced budget holds everything the publisher sends: pieces, segment
    /// files over HTTP, manifests and tracker answers. With a librqbit session, the session has
    /// its own limit and the HTTP server another.
    pub upload_limit: Option<u32>,
    /// Super-seed segments (the wire seeder's policy, or librqbit patch 0007; docs/librqbit.md):
    /// each piece leaves the publisher about once, and viewers trade the rest.
    pub super_seed: bool,
    /// With `super_seed`: reveal every piece of a segment (plain seeding from then on) this long
    /// after its first copy is out, with the wire seeder (after seeding starts, with a librqbit
    /// session), so a swarm that cannot spread a piece still completes without HTTP. Default:
    /// never ([`swarmcast_swarm::REVEAL_NEVER`]): viewers that miss a piece fall back to HTTP,
    /// and every reveal measured cost the capped publisher copies (docs/experiments.md, "A
    /// reveal counted from the first copy").
    pub super_seed_reveal: Option<Duration>,
    /// With `super_seed` and the wire seeder: a piece written whole to a viewer whose TCP has
    /// not acknowledged it this long after is offered to another viewer (default
    /// [`swarmcast_swarm::wire::LATE_AFTER`]); `None`: never, a piece written is the viewer's.
    pub late_piece: Option<Duration>,
    /// With the wire seeder: connections from one IP address served at once (default
    /// [`swarmcast_swarm::wire::PER_ADDRESS`]; 0: no cap). An address that opens connections
    /// and sends nothing cannot fill the seeder's slots (docs/reliability.md).
    pub peer_conns_per_address: usize,
    /// HTTP connections open at once. `None` (the default): what the file limit leaves once the
    /// pipeline's reserve and the peer port's share are set aside ([`fds::FdBudget`]), at most
    /// [`fds::HTTP_MAX`]. A value above that is used as given, with a warning: `accept` may
    /// then run out of files (docs/reliability.md).
    pub http_max_connections: Option<usize>,
    /// HTTP connections from one IP address at once (default [`serve::PER_ADDRESS`]; 0: no
    /// cap).
    pub http_conns_per_address: usize,
    /// What seeds the segments: the wire seeder (the default) or a librqbit session
    /// (docs/librqbit.md, 0007: where super-seeding lives).
    pub seeder: SeederKind,
    /// JSON-lines metrics file.
    pub metrics_out: Option<PathBuf>,
    /// Node name in the metrics.
    pub node: String,
    /// Testing: publish this segment in the manifest but never seed it.
    pub withhold_segment: Option<u64>,
    /// Testing: fail to publish the segment the segmenter numbers so, as an I/O error (out of
    /// files, say) would; the next segment takes its number as a discontinuity.
    pub fail_segment: Option<u64>,
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
            tracker_min_interval: DEFAULT_TRACKER_MIN_INTERVAL,
            nat_check: true,
            nat_check_timeout: natcheck::DEFAULT_TIMEOUT,
            spare_reachable: true,
            punch_ports: None,
            fallback_slots: DEFAULT_FALLBACK_SLOTS,
            piece_length: None,
            upload_limit: None,
            super_seed: true,
            super_seed_reveal: None,
            late_piece: Some(swarmcast_swarm::wire::LATE_AFTER),
            peer_conns_per_address: swarmcast_swarm::wire::PER_ADDRESS,
            http_max_connections: None,
            http_conns_per_address: serve::PER_ADDRESS,
            seeder: SeederKind::Wire,
            metrics_out: None,
            node: "publisher".into(),
            withhold_segment: None,
            fail_segment: None,
        }
    }
}

/// Ctrl-C twice: the first ends the stream gracefully (end-of-stream manifest, linger), the
/// second exits. The one type every verb takes.
pub use swarmcast_tasks::Shutdown;

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
    /// Payload bytes the swarm uploaded (the seeder's count).
    pub uploaded_bytes: u64,
    /// Segment bytes sent over HTTP.
    pub http_uploaded_bytes: u64,
    /// The last manifest sequence number served.
    pub last_seq: u64,
    /// Why new segments stopped early, if they did.
    pub degraded: Option<String>,
    /// Segments lost to I/O errors (out of files, disk full) or to a busy publisher; their
    /// input was read and dropped, and the stream went on (docs/reliability.md).
    pub dropped_segments: u64,
    /// Input bytes of those.
    pub dropped_bytes: u64,
    /// Why input was being dropped at the end, if it was.
    pub dropping: Option<String>,
    /// HTTP connections accepted, closed on arrival (their address at its cap, or every
    /// connection in a request at the cap) and closed idle to make room ([`serve`]).
    pub http_connections: HttpConnections,
}

impl std::fmt::Display for Summary {
    /// The summary `swarmcast publish` prints at exit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratio = |bytes: u64| bytes as f64 / self.segment_bytes.max(1) as f64;
        write!(
            f,
            "published {} segments ({} bytes), last manifest seq {}; the swarm uploaded {} payload bytes ({:.2}x the segment bytes), HTTP {} ({:.2}x)",
            self.segments,
            self.segment_bytes,
            self.last_seq,
            self.uploaded_bytes,
            ratio(self.uploaded_bytes),
            self.http_uploaded_bytes,
            ratio(self.http_uploaded_bytes),
        )?;
        if let Some(d) = &self.degraded {
            write!(f, "; stopped taking segments early: {d}")?;
        }
        let c = self.http_connections;
        write!(
            f,
            "\nHTTP: {} connections served; closed on arrival: {} (address at --http-conns-per-address), {} (at --http-max-conns, all in a request); closed idle: {} to make room, {} sending nothing in time",
            c.accepted, c.refused_per_address, c.refused_full, c.evicted, c.header_timeouts
        )?;
        if self.dropped_segments > 0 {
            write!(
                f,
                "\ndropped {} segments ({} input bytes) that could not be written or published",
                self.dropped_segments, self.dropped_bytes
            )?;
            if let Some(d) = &self.dropping {
                write!(f, "; still failing at the end: {d}")?;
            }
        }
        Ok(())
    }
}

/// What the HTTP server did with connections, for the summary at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpConnections {
    /// Accepted and served.
    pub accepted: u64,
    /// Closed on arrival: their address held `--http-conns-per-address`.
    pub refused_per_address: u64,
    /// Closed on arrival: at `--http-max-conns`, every connection was in a request.
    pub refused_full: u64,
    /// Closed idle to make room for a new one.
    pub evicted: u64,
    /// Closed for sending no request head in time.
    pub header_timeouts: u64,
}

pub(crate) fn dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
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

/// The least segment length (target) a publisher takes, 90 kHz ticks (0.1 s).
pub const MIN_TARGET: u64 = 9_000;
/// The greatest segment length (target) a publisher takes, 90 kHz ticks (an hour).
pub const MAX_TARGET: u64 = 3_600 * 90_000;

/// Publishes a stream until the input ends or `shutdown` says so. `ready` receives the link once
/// the HTTP server and the swarm are up.
pub async fn run(
    config: PublishConfig,
    shutdown: Shutdown,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<Summary, PublishError> {
    validate(&config)?;
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

    let nat_check = config.embedded_tracker && config.nat_check;
    let (files, http_limits) = file_budget(&config, nat_check)?;

    // HTTP first: a port in use is refused before the BitTorrent session starts.
    let (http_listener, http_addr) = bind_http(config.http).await?;
    // One upload budget, paced, for everything the publisher sends with the wire seeder: pieces,
    // HTTP segment bodies, manifests, tracker answers. A librqbit session limits its own traffic
    // (a second's burst), so with it the HTTP server keeps a budget of its own.
    let budget = config
        .upload_limit
        .and_then(swarmcast_swarm::ratelimit::ByteLimiter::wire)
        .map(Arc::new);
    let seeder = start_seeder(&config, &stream_dir, &files, budget.clone()).await?;
    let peer_addr = seeder.listen_addr();
    let public = public_addr(&config, peer_addr)?;
    let public_peer = public.parse::<SocketAddr>().ok();

    let (trackers, link) = trackers_and_link(&config, http_addr, key)?;

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
    let tracker = embedded_tracker(&config, nat_check, &files);
    let mut shared = Shared::new(link.to_string(), tracker);
    // With the wire seeder this is the seeder's budget too; a librqbit session never sees it.
    shared.http_limiter = budget;
    shared.fallback_slots = config.fallback_slots;
    shared.wire = seeder.wire_counters();
    // Every task the publisher starts; a second Ctrl-C drops them all (main's grace).
    let tasks = Tasks::new("publisher");
    // Stops the HTTP server (connections in a request finish them), and with it the tracker's
    // NAT checks in flight.
    let http_stop = CancellationToken::new();
    let http_tasks = tasks.child("http");
    let nat_tasks = tasks.child("nat-check");
    shared.nat_checker =
        nat_check.then(|| natcheck::NatChecker::new(config.nat_check_timeout, nat_tasks.clone()));
    let shared = Arc::new(shared);
    let grace = config
        .grace
        .unwrap_or(Duration::from_micros(config.target * 2 * 100 / 9));

    let mut publisher = Publisher {
        tasks: tasks.clone(),
        config,
        seeder,
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
        removed_http: Default::default(),
        shift: 0,
        outages_seen: 0,
    };

    // HTTP first, so a restart's re-seeded window is served as soon as it is signed.
    let server = {
        let app = http::router(shared.clone());
        http_tasks.spawn(
            "http-accept",
            serve::serve(
                http_listener,
                app,
                http_limits,
                shared.conns.clone(),
                http_stop.clone(),
                http_tasks.child("http-connections"),
            ),
        )
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

    let outcome = publisher
        .run_to_end(persisted.next_segment, restarted, &shutdown)
        .await;
    http_stop.cancel();
    nat_tasks.cancel();
    let _ = server.await;
    // Responses under way go on while the seeder stops; what is left then is cut.
    publisher.finish().await;
    tasks.shutdown().await;
    outcome.map(|()| publisher.summary.clone())
}

/// Refuses what the user gave wrong before anything starts.
fn validate(config: &PublishConfig) -> Result<(), PublishError> {
    if config.window == 0 || config.window > manifest::MAX_WINDOW {
        return Err(PublishError::Config(format!(
            "--window {} must be from 1 to {}",
            config.window,
            manifest::MAX_WINDOW
        )));
    }
    // 0.1 s to an hour, in 90 kHz ticks: a longer target would not fit a manifest's integers
    // (a target of 1e30 s once made manifests nobody, not even the next start, could read).
    if !(MIN_TARGET..=MAX_TARGET).contains(&config.target) {
        return Err(PublishError::Config(format!(
            "segment length {} ticks of 90 kHz: expected {MIN_TARGET} to {MAX_TARGET} (0.1 s to \
             an hour)",
            config.target
        )));
    }
    // Validate what the user gave before anything starts (the port in a default public address
    // is only known once bound, so this checks the form and the unspecified-listen rule).
    public_addr(config, config.listen)?;
    let tracker_count = config.trackers.len() + usize::from(config.embedded_tracker);
    if tracker_count > manifest::MAX_TRACKERS {
        return Err(PublishError::Config(format!(
            "{tracker_count} trackers (the embedded one included): a manifest holds at most {}",
            manifest::MAX_TRACKERS
        )));
    }
    for t in &config.trackers {
        if url::Url::parse(t).map_or(true, |u| !matches!(u.scheme(), "http" | "https" | "udp")) {
            return Err(PublishError::Config(format!(
                "--tracker {t:?}: expected an http, https or udp URL"
            )));
        }
    }
    for m in &config.mirror_urls {
        if !matches!(m.scheme(), "http" | "https") || !m.has_host() {
            return Err(PublishError::Config(format!(
                "--mirror-url {m}: expected an http or https URL"
            )));
        }
    }
    // Checked before anything starts: a bad URL must not leave a session or a listener behind.
    if let Some(url) = &config.public_url {
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(PublishError::Config(format!(
                "--public-url {url}: expected an http or https base URL"
            )));
        }
    }
    if config.embedded_tracker && config.nat_check && config.nat_check_timeout.is_zero() {
        return Err(PublishError::Config(
            "the NAT check's timeout must be more than zero (or turn the NAT check off)".into(),
        ));
    }
    check_input(&config.input)
}

/// Shares the process's files between the listeners and the pipeline (docs/reliability.md,
/// "Idle HTTP connections"): the budget, and the HTTP server's limits from it and the flags.
fn file_budget(
    config: &PublishConfig,
    nat_check: bool,
) -> Result<(fds::FdBudget, serve::HttpLimits), PublishError> {
    // Files: each listener gets a share of what the process may open, and the pipeline keeps a
    // reserve no connection can take (docs/reliability.md, "Idle HTTP connections").
    let files = {
        let (limit, open) = fds::FdBudget::measure();
        fds::FdBudget::split(
            limit,
            open,
            swarmcast_swarm::wire::MAX_CONNECTIONS,
            if nat_check {
                tracker::NAT_CHECKS_IN_FLIGHT
            } else {
                0
            },
        )
        .map_err(PublishError::Config)?
    };
    let http_limits = serve::HttpLimits {
        per_address: config.http_conns_per_address,
        ..serve::HttpLimits::new(config.http_max_connections.unwrap_or(files.http))
    };
    if http_limits.max_connections > files.http {
        tracing::warn!(
            http_max_conns = http_limits.max_connections,
            file_limit = files.limit,
            budgeted = files.http,
            "--http-max-conns is more than the file limit leaves for HTTP: connections may take \
             the files segments need (raise `ulimit -n`)"
        );
    }
    tracing::debug!(?files, "file budget");
    Ok((files, http_limits))
}

/// Starts the seeder the config names, within the file budget's peer share.
async fn start_seeder(
    config: &PublishConfig,
    stream_dir: &Path,
    files: &fds::FdBudget,
    budget: Option<Arc<swarmcast_swarm::ratelimit::ByteLimiter>>,
) -> Result<Seeder, PublishError> {
    let super_seed = config.super_seed.then(|| {
        config
            .super_seed_reveal
            .unwrap_or(swarmcast_swarm::REVEAL_NEVER)
    });
    Ok(match config.seeder {
        SeederKind::Librqbit => Seeder::Librqbit(
            Swarm::start(SwarmConfig {
                default_dir: stream_dir.to_owned(),
                listen: config.listen,
                upload_limit: config.upload_limit,
                download_limit: None,
                announce: false,
                super_seed,
                // Per segment's torrent: the window and its grace period share the budget.
                peer_limit: Some((files.peer / (config.window + 2)).max(8)),
                punch_ports: None,
            })
            .await?,
        ),
        SeederKind::Wire => Seeder::Wire(
            WireSeeder::start(WireConfig {
                listen: config.listen,
                upload_limit: budget,
                super_seed,
                late_after: config.late_piece,
                max_connections: files.peer,
                per_address: config.peer_conns_per_address,
            })
            .await
            .map_err(swarmcast_swarm::SwarmError::from)?,
        ),
    })
}

/// The embedded tracker, if on, with its NAT check within the file budget.
fn embedded_tracker(
    config: &PublishConfig,
    nat_check: bool,
    files: &fds::FdBudget,
) -> Option<tracker::Tracker> {
    config.embedded_tracker.then(|| {
        let t = tracker::Tracker::new(config.tracker_interval, config.tracker_min_interval);
        if nat_check {
            t.with_nat_check(tracker::NatCheck {
                spare_reachable: config.spare_reachable,
                max_in_flight: files.nat_checks.max(1),
                ..tracker::NatCheck::for_timeout(config.nat_check_timeout)
            })
            .with_punch(config.punch_ports.clone())
        } else {
            t
        }
    })
}

/// Binds the HTTP listener: it and its address (the port is known only once bound).
async fn bind_http(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), PublishError> {
    let bind_error = |source| PublishError::HttpBind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// The trackers every segment's torrent names (the embedded one first) and the stream link
/// (the manifest's URL, then the mirrors), under `--public-url` or the bound HTTP address.
fn trackers_and_link(
    config: &PublishConfig,
    http_addr: SocketAddr,
    key: swarmcast_core::StreamKey,
) -> Result<(Vec<String>, StreamLink), PublishError> {
    let base = match &config.public_url {
        Some(u) => u.clone(),
        None => Url::parse(&format!("http://{http_addr}/")).expect("a socket address makes a URL"),
    };
    let join = |path: &str| {
        base.join(path)
            .expect("an http(s) base URL joins a relative path")
    };
    let mut trackers = Vec::new();
    if config.embedded_tracker {
        trackers.push(join("announce").to_string());
    }
    trackers.extend(config.trackers.iter().cloned());
    let mut sources = vec![join("manifest")];
    sources.extend(config.mirror_urls.iter().cloned());
    let link = StreamLink::new(key, sources).map_err(|e| PublishError::Config(e.to_string()))?;
    Ok((trackers, link))
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

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
