//! `swarmcast watch`: the async viewer that carries out the [`Scheduler`]'s actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::StreamLink;
use swarmcast_metrics::{Kind, Recorder, Role};
use swarmcast_swarm::ratelimit::ByteLimiter;
use swarmcast_swarm::{Swarm, SwarmConfig};
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::io::{HttpClients, ManifestFetch, PlaybackSink, SegmentFetch, SegmentSwarm};
use crate::poller::{poll_with, PollEvent};
use crate::schedule::{Action, ScheduleConfig, Scheduler};
use crate::sink::{Sink, SinkConfig};
use crate::viewer::{Viewer, ViewerEvent};

mod datadir;
mod summary;

pub use summary::WatchSummary;

use datadir::{tempdir, TempDir};

/// How often a downloading segment's stats are sampled (first peer, first piece, completion).
pub const SAMPLE: Duration = Duration::from_millis(5);
/// How long closing the output may take after the viewer was stopped (a write still blocked on
/// a pipe nobody reads holds the close).
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Manifest refusals before the first accepted one after which the link is taken to be wrong.
pub(crate) const REFUSALS_BEFORE_GIVING_UP: u64 = 3;

/// How segments are fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// From the swarm (re-seeding them), with HTTP fallback when late.
    #[default]
    Swarm,
    /// Over plain HTTP from the publisher (`/segments/<n>.ts`, the HLS way): the lab's baseline.
    /// Every piece is still checked against the signed info; nothing is seeded.
    Http,
}

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
    /// Download limit, bytes/s (librqbit's limiter for the swarm; ours for HTTP).
    pub download_limit: Option<u32>,
    /// How segments are fetched.
    pub transport: Transport,
    /// Ask for manifest deltas once a manifest is held (default true).
    pub manifest_deltas: bool,
    /// Most peers per segment's swarm (see [`SwarmConfig::peer_limit`]); `None`: librqbit's 128.
    pub peer_limit: Option<usize>,
    /// TCP hole punching: peers listed at a port in this range are dialled from that port (see
    /// [`SwarmConfig::punch_ports`]); `None`: off.
    pub punch_ports: Option<std::ops::RangeInclusive<u16>>,
    /// Under the upload limit, serve the segment that plays next before the ones after it (each
    /// segment's torrent ranked by its number; librqbit patch 0013). Off by default: it helped
    /// 2 s segments and hurt 10 s ones (docs/experiments.md, "The segment that plays next goes
    /// first").
    pub urgent_first: bool,
    /// hls.js for the playback page (`--hls-js`); `None`: looked up (see [`crate::http::hlsjs`]).
    pub hls_js: Option<PathBuf>,
    /// Where `/metrics` (and `/status.json`) are served when the output is not HTTP (with an
    /// HTTP output they are served there, and this is ignored).
    pub metrics_addr: Option<SocketAddr>,
    /// Speak the manifest exchange: take manifests from peers and pass them on (on by default
    /// with a link that is the key alone; docs/manifest.md).
    pub swarm_manifests: bool,
    /// Peers each newer manifest is pushed to when the exchange is on (`--manifest-push`; 6,
    /// `GossipConfig::viewer`); the others are told with a `have`.
    pub manifest_push: usize,
    /// Find the stream on the mainline DHT (and peers of each segment there). A link with no
    /// `xs` uses the public DHT when this is `None`.
    pub dht: Option<swarmcast_dht::DhtOptions>,
    /// With the DHT and the manifest exchange on and no tracker in the manifest: look the
    /// stream's peer key up on the DHT, dial the peers met in earlier segments' swarms (and
    /// those found) when a segment is added, and look a segment up on the DHT only while
    /// fewer than 4 peers are live ([`swarmcast_core::carry`]). On by default since the ninth
    /// session (docs/manifest.md, "Peers carried from segment to segment"); `false` looks every
    /// segment up (`watch --no-carried-peers`).
    pub carry_peers: bool,
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
            transport: Transport::Swarm,
            manifest_deltas: true,
            peer_limit: None,
            punch_ports: None,
            urgent_first: false,
            hls_js: None,
            metrics_addr: None,
            swarm_manifests: false,
            manifest_push: swarmcast_core::gossip::GossipConfig::viewer().push_to,
            dht: None,
            carry_peers: true,
        }
    }

    /// The DHT options in effect: `dht`, or the public DHT for a link without `xs`.
    pub fn dht_in_effect(&self) -> Option<swarmcast_dht::DhtOptions> {
        self.dht.clone().or_else(|| {
            self.link
                .sources
                .is_empty()
                .then(|| swarmcast_dht::DhtOptions::new(Vec::new()))
        })
    }

    /// Whether manifests are exchanged with peers: asked for, or a link without `xs`.
    pub fn swarm_manifests_in_effect(&self) -> bool {
        self.swarm_manifests || self.link.sources.is_empty()
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
    /// The output file holds an earlier recording, and overwriting was not asked for.
    #[error("output {} exists and holds {bytes} bytes (an earlier recording?): pass --overwrite to replace it, or choose another file", path.display())]
    OutputExists {
        /// The file.
        path: PathBuf,
        /// Its length.
        bytes: u64,
    },
    /// The hls.js file given cannot be served.
    #[error(transparent)]
    HlsJs(#[from] crate::http::hlsjs::HlsJsError),
    /// Every manifest was refused: the link is wrong or the sources are forged.
    #[error("manifest refused: {0}")]
    Refused(#[source] swarmcast_core::ManifestError),
    /// The counters file could not be created.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
}

/// Ready information for callers that need the bound addresses.
#[derive(Clone, Debug)]
pub struct WatchReady {
    /// The peer listener.
    pub peer: SocketAddr,
    /// The playback HTTP server, with an HTTP sink.
    pub http: Option<SocketAddr>,
    /// Where `/metrics` is served: the playback server, or `--metrics-addr`'s.
    pub metrics: Option<SocketAddr>,
    /// What the viewer is doing now (for a status line).
    pub live: crate::live::Live,
}

/// Watches the stream until its end (`Ok` after the last segment is played) or `cancel`.
///
/// Every task it starts is spawned in one [`Tasks`] group, which it shuts down (cancels, then
/// awaits) before it returns, however it returns; if it is dropped unfinished, the group is
/// cancelled and its tasks end at their next await.
pub async fn watch(
    config: WatchConfig,
    cancel: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<WatchReady>>,
) -> Result<WatchSummary, WatchError> {
    let origin = Instant::now();
    // Before anything starts: an earlier recording is never truncated unasked.
    if let SinkConfig::File {
        path,
        overwrite: false,
    } = &config.sink
    {
        if let Some(bytes) = existing_recording(path) {
            return Err(WatchError::OutputExists {
                path: path.clone(),
                bytes,
            });
        }
    }
    let hls_js = crate::http::hls_js_for(&config)?;
    let recorder = Recorder::new(
        config.node.clone(),
        Role::Viewer,
        config.metrics_out.as_deref(),
    )?;
    let (dir, _tempdir) = data_dir(config.data_dir.as_deref())?;
    let http = HttpClients::new().map_err(|e| WatchError::Io {
        what: "HTTP client".into(),
        source: std::io::Error::other(e),
    })?;
    let tasks = Tasks::with_token("watch", cancel.child_token());
    let dht = config.dht_in_effect();
    let exchange = config.swarm_manifests_in_effect().then(|| {
        let (tx, rx) = mpsc::channel(64);
        let (exchange, handler) = swarmcast_swarm::exchange::Exchange::start(
            config.link.key,
            swarmcast_core::gossip::GossipConfig {
                push_to: config.manifest_push,
                ..swarmcast_core::gossip::GossipConfig::viewer()
            },
            tx,
            &tasks,
        );
        (exchange, rx, handler)
    });
    let swarm = Arc::new(
        Swarm::start(SwarmConfig {
            default_dir: dir.clone(),
            listen: config.listen,
            upload_limit: config.upload_limit,
            download_limit: config.download_limit,
            announce: true,
            super_seed: None,
            peer_limit: config.peer_limit,
            punch_ports: config.punch_ports.clone(),
            extension: exchange
                .as_ref()
                .map(|(_, _, h)| swarmcast_swarm::ExtensionSlot(h.clone())),
            dht_bootstrap: dht.as_ref().map(|d| d.bootstrap.clone()),
        })
        .await?,
    );
    let carried = exchange.map(|(exchange, events, _)| crate::carried::Carried {
        exchange,
        events,
        dht,
        peer_id: swarm.peer_id(),
    });
    if let Some(c) = &carried {
        tasks.spawn(
            "nat-tell",
            crate::carried::tell_nat(swarm.clone(), c.exchange.clone()),
        );
    }
    let live = crate::live::Live::default();
    // The HTTP server has a group of its own: after the end of the stream it outlives playback
    // while HLS clients finish.
    let server_tasks = Tasks::with_token("watch-http", cancel.child_token());
    let _stop_server = server_tasks.token().clone().drop_guard();
    let mut server = crate::http::start_for(&config, &dir, hls_js, &live, &server_tasks).await?;
    let sink = Sink::open(
        &config.sink,
        server.as_mut().and_then(|s| s.playback.take()),
    )
    .await
    .map_err(|source| WatchError::Io {
        what: format!("output {:?}", config.sink),
        source,
    })?;
    if let Some(ready) = ready {
        let http = server.as_ref().filter(|s| s.hls.is_some()).map(|s| s.addr);
        let _ = ready.send(WatchReady {
            peer: swarm.listen_addr(),
            http,
            metrics: server.as_ref().map(|s| s.addr),
            live: live.clone(),
        });
    }
    // Stdout into a pipe: the reader quitting (a player, `head`) stops the viewer at once.
    let run_cancel = cancel.child_token();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if config.sink == SinkConfig::Stdout {
        let (stop, closed) = (run_cancel.clone(), closed.clone());
        tasks.spawn("output-watch", async move {
            crate::sink::stdout_closed().await;
            tracing::warn!("the output was closed (its reader quit?): stopping");
            closed.store(true, std::sync::atomic::Ordering::SeqCst);
            stop.cancel();
        });
    }
    let parts = Parts {
        config,
        origin,
        recorder,
        dir,
        swarm,
        http,
        sink,
        tasks,
        live,
        carried,
    };
    let result = drive(parts, &run_cancel).await;
    let ended = result.as_ref().is_ok_and(|s| s.end_of_stream);
    crate::http::stop(server, server_tasks, ended, &cancel).await;
    let mut summary = result?;
    summary.output_closed |= closed.load(std::sync::atomic::Ordering::SeqCst);
    Ok(summary)
}

// `watch`'s future is `Send` (the binary and the lab spawn it), whatever the generic parts
// inside it: checked at compile time.
const _: fn(WatchConfig) = |config| {
    fn send<T: Send>(_: &T) {}
    send(&watch(config, CancellationToken::new(), None));
};

/// The data directory: `dir` (created), or a new temporary one (removed when the second value
/// is dropped).
fn data_dir(dir: Option<&Path>) -> Result<(PathBuf, Option<TempDir>), WatchError> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| WatchError::Io {
                what: format!("data directory {}", d.display()),
                source,
            })?;
            Ok((d.to_owned(), None))
        }
        None => {
            let t = tempdir().map_err(|source| WatchError::Io {
                what: "temporary directory".into(),
                source,
            })?;
            Ok((t.dir.path().to_owned(), Some(t)))
        }
    }
}

/// What [`drive`] runs: the real edges from [`watch`], or a test's fakes.
pub(crate) struct Parts<S, H, K> {
    pub(crate) config: WatchConfig,
    /// The zero of the viewer's clock.
    pub(crate) origin: Instant,
    pub(crate) recorder: Recorder,
    /// Where segments are stored while in the window.
    pub(crate) dir: PathBuf,
    pub(crate) swarm: Arc<S>,
    pub(crate) http: H,
    pub(crate) sink: K,
    /// Where every task is spawned; shut down before [`drive`] returns.
    pub(crate) tasks: Tasks,
    /// The live state the viewer keeps up to date.
    pub(crate) live: crate::live::Live,
    /// Manifests from the swarm and the DHT (`None`: HTTP only).
    pub(crate) carried: Option<crate::carried::Carried>,
}

/// Runs a viewer on `parts` until the end of the stream (`Ok`), an error, or `cancel` (`Ok`);
/// then stops the poller, records the end, closes the sink, forgets every segment, shuts the
/// tasks down (cancel, then await every one) and stops the swarm.
pub(crate) async fn drive<S, H, K>(
    parts: Parts<S, H, K>,
    cancel: &CancellationToken,
) -> Result<WatchSummary, WatchError>
where
    S: SegmentSwarm,
    H: ManifestFetch + SegmentFetch,
    K: PlaybackSink,
{
    let Parts {
        mut config,
        origin,
        recorder,
        dir,
        swarm,
        http,
        sink,
        tasks,
        live,
        carried,
    } = parts;
    // Dropped unfinished (a caller that stopped polling `watch`): the tasks end at their next
    // await instead of running on. Once `drive` returns, they are all gone already.
    let _stop_tasks = tasks.token().clone().drop_guard();
    let (poll_tx, poll_rx) = mpsc::channel(16);
    let poll_stop = tasks.token().child_token();
    let held = Arc::new(crate::carried::Held::default());
    let found = Arc::new(std::sync::Mutex::new(crate::carried::Found::default()));
    let mut carry_key = false;
    let exchange = match carried {
        Some(c) => {
            let tx = poll_tx.clone();
            tasks.spawn("swarm-manifests", crate::carried::forward(c.events, tx));
            carry_key =
                c.dht.is_some() && config.carry_peers && config.transport == Transport::Swarm;
            if let Some(dht) = c.dht {
                let (tx, h, stop) = (poll_tx.clone(), held.clone(), poll_stop.clone());
                tasks.spawn(
                    "dht-find",
                    crate::carried::find_on_dht(dht, config.link.key, c.peer_id, h, tx, stop),
                );
            }
            Some(c.exchange)
        }
        None => None,
    };
    // A link without `xs`: no HTTP source to poll. With manifests from the swarm, HTTP is a
    // backup: polled for the first manifest, then only when the swarm goes quiet.
    let backup = exchange.is_some();
    let poller = (!config.link.sources.is_empty()).then(|| {
        let (http, link, stop) = (http.clone(), config.link.clone(), poll_stop.clone());
        let deltas = config.manifest_deltas;
        let held = held.clone();
        tasks.spawn("manifest-poller", async move {
            if backup {
                crate::carried::poll_as_backup(&http, link, deltas, poll_tx, stop, held).await;
            } else {
                poll_with(&http, link, deltas, poll_tx, stop).await;
            }
        })
    });
    let (ev_tx, ev_rx) = mpsc::channel(64);
    if carry_key {
        let (swarm, key, found) = (swarm.clone(), config.link.key, found.clone());
        let wake = ev_tx.clone();
        tasks.spawn(
            "peer-key",
            crate::carried::look_up_peer_key(swarm, key, found, wake),
        );
    }
    {
        // The live figures' clock: peers and the download rate are sampled each tick.
        let tx = ev_tx.clone();
        tasks.spawn("live-tick", async move {
            let mut tick = tokio::time::interval(crate::live::TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.send(ViewerEvent::Tick).await.is_err() {
                    return;
                }
            }
        });
    }
    if config.transport == Transport::Http {
        // Every fetch is already HTTP.
        config.schedule.http_fallback = false;
    }
    let limiter = config
        .download_limit
        .and_then(ByteLimiter::new)
        .map(Arc::new);
    let mut viewer = Viewer {
        scheduler: Scheduler::new(config.schedule.clone()),
        config,
        swarm: swarm.clone(),
        dir,
        recorder,
        segs: BTreeMap::new(),
        latest: None,
        source: None,
        http,
        limiter,
        ev_tx,
        sink,
        tasks: tasks.clone(),
        origin,
        summary: WatchSummary::default(),
        live,
        rate: Default::default(),
        exchange,
        held,
        http_refused: 0,
        carry: swarmcast_core::carry::Carry::new(Default::default()),
        found,
    };

    let result = run(&mut viewer, origin, poll_rx, ev_rx, cancel).await;
    poll_stop.cancel();
    if let Some(poller) = poller {
        let _ = poller.await;
    }
    let ended = viewer.scheduler.ended();
    {
        let f = viewer.found.lock().unwrap_or_else(|e| e.into_inner());
        viewer.summary.key_lookups = f.lookups;
        viewer.summary.key_peers = f.peers;
    }
    if let Some(exchange) = &viewer.exchange {
        let s = exchange.stats();
        viewer.recorder.record(
            None,
            Kind::ManifestsSent {
                http_responses: 0,
                http_bytes: 0,
                swarm_documents: s.manifests_sent,
                swarm_answers: s.manifests_answered,
                swarm_deltas: s.deltas_sent,
                swarm_bytes: s.bytes_sent,
                swarm_messages: s.messages_sent,
                dht_puts: 0,
                dht_announces: viewer.summary.dht_lookups,
                swarm_haves: s.haves_sent,
                swarm_wants: s.wants_sent,
                swarm_bytes_received: s.bytes_received,
                swarm_duplicates: s.duplicates,
            },
        );
    }
    viewer.recorder.record(
        None,
        Kind::Ended {
            end_of_stream: ended,
        },
    );
    if cancel.is_cancelled() {
        // Stopped (Ctrl-C) perhaps while a write could not finish (a pipe nobody reads): closing
        // waits for that write, so it gets a bounded time.
        let _ = tokio::time::timeout(CLOSE_GRACE, viewer.sink.close()).await;
    } else {
        let _ = viewer.sink.close().await;
    }
    let numbers: Vec<u64> = viewer.segs.keys().copied().collect();
    for n in numbers {
        viewer.forget(n).await;
    }
    viewer.sync_live();
    tasks.shutdown().await;
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

/// What [`run`] drives: the [`Viewer`], or a test's fake.
pub(crate) trait Host {
    /// What the manifest poller sends.
    type Poll;
    /// What the segments' watchers and fetches send.
    type Event;
    /// The scheduler.
    fn scheduler(&mut self) -> &mut Scheduler;
    /// A poller event arrived.
    fn handle_poll(&mut self, event: Self::Poll) -> Result<(), WatchError>;
    /// The poller stopped (the end of the stream, or it gave up) before `cancel`.
    fn poll_stopped(&mut self);
    /// A segment event arrived.
    async fn handle_event(&mut self, event: Self::Event);
    /// Carries out the scheduler's actions; true when playback is over.
    async fn carry_out(&mut self, actions: Vec<Action>) -> Result<bool, WatchError>;
}

impl<S, H, K> Host for Viewer<S, H, K>
where
    S: SegmentSwarm,
    H: SegmentFetch,
    K: PlaybackSink,
{
    type Poll = PollEvent;
    type Event = ViewerEvent;

    fn scheduler(&mut self) -> &mut Scheduler {
        &mut self.scheduler
    }

    fn handle_poll(&mut self, event: PollEvent) -> Result<(), WatchError> {
        self.on_poll(event)
    }

    fn poll_stopped(&mut self) {
        if self
            .latest
            .as_ref()
            .is_none_or(|m| !m.manifest.end_of_stream)
        {
            tracing::warn!("manifest polling stopped");
        }
    }

    async fn handle_event(&mut self, event: ViewerEvent) {
        self.on_event(event).await;
    }

    async fn carry_out(&mut self, actions: Vec<Action>) -> Result<bool, WatchError> {
        self.act(actions).await
    }
}

/// The watch loop: waits for a poller event, a segment event, the scheduler's next wake-up or
/// `cancel`, then polls the scheduler (`origin` is its clock's zero) and carries out its actions,
/// until playback is over (`Ok`), an error, or `cancel` (`Ok`).
///
/// It waits only for what can still happen: a channel that closed is no longer listened to
/// (after the end of the stream the poller returns, and its channel would answer `None` at once,
/// forever), and the scheduler's wake-up is always ahead of the last poll (a stall waits for a
/// completion or a manifest, not for a deadline already passed).
pub(crate) async fn run<H: Host>(
    host: &mut H,
    origin: Instant,
    mut poll_rx: mpsc::Receiver<H::Poll>,
    mut ev_rx: mpsc::Receiver<H::Event>,
    cancel: &CancellationToken,
) -> Result<(), WatchError> {
    let now_ms = || origin.elapsed().as_millis() as u64;
    let (mut polling, mut events) = (true, true);
    // The time of the last poll: the scheduler's wake-ups are after it.
    let mut polled_ms = now_ms();
    loop {
        let wake = host
            .scheduler()
            .next_wakeup(polled_ms)
            .map(|ms| origin + Duration::from_millis(ms));
        tokio::select! {
            event = poll_rx.recv(), if polling => match event {
                Some(event) => host.handle_poll(event)?,
                None => {
                    // The poller ended (end of stream): keep playing what we have.
                    polling = false;
                    if !cancel.is_cancelled() {
                        host.poll_stopped();
                    }
                }
            },
            event = ev_rx.recv(), if events => match event {
                Some(event) => host.handle_event(event).await,
                None => events = false,
            },
            () = sleep_until_opt(wake) => {}
            () = cancel.cancelled() => return Ok(()),
        }
        polled_ms = now_ms();
        let actions = host.scheduler().poll(polled_ms);
        // Raced with `cancel`: a write into a pipe whose reader stopped reading does not return
        // until it reads, and Ctrl-C must stop the viewer all the same. `biased`: actions that
        // finish at once (playing what was due) are carried out.
        let over = tokio::select! {
            biased;
            r = host.carry_out(actions) => r?,
            () = cancel.cancelled() => return Ok(()),
        };
        if over {
            return Ok(());
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The length of the regular, non-empty file at `path`, if there is one (what a new recording
/// would truncate). A pipe, a device or an empty file is no recording.
fn existing_recording(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file() && m.len() > 0)
        .map(|m| m.len())
}

#[cfg(test)]
mod tests;
