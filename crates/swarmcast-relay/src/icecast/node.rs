//! `swarmcast icecast-node`: one node of an Icecast relay tree (docs/relay-tree.md).
//!
//! The node runs an `icecast2` child ([`Icecast`]) and plays that child's own mount into its
//! output, as a listener would: the player is also how it notices its parent is gone (the
//! mount closes, or no byte comes for the detection timeout). A relay node takes its parent
//! from the directory, announces itself there every [`ANNOUNCE_EVERY`], and moves its relay
//! when [`ParentWatch`] gives the parent up. The source node only accepts the publisher's
//! push. Both exit once the directory says the stream ended and their stream went quiet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use swarmcast_metrics::{Kind, Recorder, Role};
use swarmcast_tasks::Tasks;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::watch::{GaveUp, ParentWatch, Step, Switch};
use super::{owner_if_root, Icecast, IcecastConfig, IcecastError, RelayFrom};
use crate::directory::{self, Announce, Join, Listing, PARENT_TIMEOUT};

mod io;
use io::{directory_loop, first_listing, play, probe};

/// How often the player retries a mount that is not there (yet), and the node checks time.
const TICK: Duration = Duration::from_millis(100);
/// A probe of a parent that does not answer within this is taken as gone.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the first listing may take (the directory may start after the node).
const FIRST_LISTING: Duration = Duration::from_secs(15);

/// What a node is told.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The directory's `/relays` URL.
    pub directory: String,
    /// The node's name (unique in the stream).
    pub node: String,
    /// Where its `icecast2` listens (a specific address: it is announced).
    pub listen: SocketAddr,
    /// How many children it takes at most (announced as its capacity).
    pub fanout: u32,
    /// Where it plays the stream (whole MPEG-TS packets; none: counted, not kept).
    pub out: Option<PathBuf>,
    /// Its metrics (JSON lines, `Role::Relay`).
    pub metrics_out: Option<PathBuf>,
    /// The source node: the password the publisher pushes with. None: a relay node.
    pub source_password: Option<String>,
    /// The directory `icecast2` runs in (its configuration and logs); none: a temporary one.
    pub data_dir: Option<PathBuf>,
    /// The `icecast2` program.
    pub icecast_bin: PathBuf,
    /// The detection timeout ([`PARENT_TIMEOUT`]).
    pub parent_timeout: Duration,
}

impl NodeConfig {
    /// A relay node with the defaults.
    pub fn new(directory: String, node: String, listen: SocketAddr) -> Self {
        Self {
            directory,
            node,
            listen,
            fanout: 2,
            out: None,
            metrics_out: None,
            source_password: None,
            data_dir: None,
            icecast_bin: "icecast2".into(),
            parent_timeout: PARENT_TIMEOUT,
        }
    }

    fn check(&self) -> Result<(), IcecastError> {
        let bad = |m: String| Err(IcecastError::Config(m));
        if self.node.is_empty() {
            return bad("--node must not be empty".into());
        }
        if self.fanout == 0 {
            return bad("--fanout 0: a relay takes at least one child".into());
        }
        if self.listen.ip().is_unspecified() || self.listen.port() == 0 {
            return bad(format!(
                "--listen {}: give the address and port others reach this node at (it is \
                 announced in the directory)",
                self.listen
            ));
        }
        if self.source_password.as_deref() == Some("") {
            return bad("--password must not be empty".into());
        }
        Ok(())
    }
}

/// Times a node starts its icecast2 again after it died, before it gives up.
pub const MAX_RESTARTS: u32 = 3;

/// What a node did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSummary {
    /// Stream bytes written to its output.
    pub bytes: u64,
    /// Bytes received but not written (partial packets at the edges of connections).
    pub skipped: u64,
    /// Parent changes after the first.
    pub switches: u32,
    /// Times its stream broke.
    pub disconnects: u32,
    /// Times its icecast2 died and was started again.
    pub restarts: u32,
    /// It ended because the stream did (false: stopped).
    pub ended: bool,
}

/// What the player tells the node.
enum Heard {
    Connected,
    Bytes { total: u64, skipped: u64 },
    Ended { reason: String },
}

/// Runs a node until the stream ends (the directory says so and the node's stream went quiet)
/// or `cancel`. `ready` gets its mount's URL once `icecast2` answers. Its `icecast2` is stopped
/// whatever happens.
pub async fn run(
    config: NodeConfig,
    cancel: CancellationToken,
    ready: Option<oneshot::Sender<String>>,
) -> Result<NodeSummary, IcecastError> {
    config.check()?;
    let recorder = Recorder::new(&config.node, Role::Relay, config.metrics_out.as_deref())?;
    let out = match &config.out {
        Some(p) => Some(
            tokio::fs::File::create(p)
                .await
                .map_err(|source| IcecastError::Io {
                    path: p.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let dir_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| IcecastError::Config(format!("HTTP client: {e}")))?;
    // Removed when dropped, at the end of the run.
    let (dir, _temp) = work_dir(config.data_dir.as_deref())?;
    let source = config.source_password.is_some();
    let password = config
        .source_password
        .clone()
        .unwrap_or_else(random_password);
    let mut ice = IcecastConfig::new(config.listen, password, dir);
    ice.owner = owner_if_root();
    let mut watch = if source {
        ParentWatch::source(&config.node)
    } else {
        ParentWatch::relay(&config.node, config.parent_timeout.as_micros() as u64)
    };
    let me = (!source).then(|| Announce {
        node: config.node.clone(),
        url: format!("http://{}{}", config.listen, super::MOUNT),
        parent: None,
        capacity: config.fanout,
    });
    let mut first = None;
    if let Some(me) = &me {
        let listing = first_listing(&dir_client, &config.directory, &cancel).await?;
        first = first_parent(
            &mut watch,
            &recorder,
            &dir_client,
            &config.directory,
            me,
            &listing,
        )
        .await;
        if let Some(s) = &first {
            ice.relay = Some(RelayFrom::from_url(&s.to).map_err(IcecastError::Config)?);
        }
    }
    // icecast2 2.4.4 was seen to crash (SIGSEGV) right after answering its first request, one
    // node in 50: a supervisor starts it again, as after a later crash.
    let mut start_failures = 0;
    let icecast = loop {
        match Icecast::start(&config.icecast_bin, ice.clone()).await {
            Ok(icecast) => break icecast,
            Err(e @ IcecastError::Failed { .. }) if start_failures < MAX_RESTARTS => {
                start_failures += 1;
                tracing::warn!(node = %config.node, error = %e, "icecast2 failed at start; starting it again");
            }
            Err(e) => return Err(e),
        }
    };
    tracing::info!(node = %config.node, mount = %icecast.mount_url(), pid = ?icecast.pid(), source, "icecast2 answering");
    if let Some(s) = first {
        record_switch(&recorder, s);
    }
    if let Some(ready) = ready {
        let _ = ready.send(icecast.mount_url());
    }
    let tasks = Tasks::new("icecast-node");
    let mut node = Node {
        me,
        recorder,
        watch,
        icecast,
        own_url: String::new(),
        connected_to: None,
        total: 0,
        sampled: (0, 0),
        summary: NodeSummary {
            restarts: start_failures,
            ..NodeSummary::default()
        },
        refetch: Arc::new(Notify::new()),
        parent_tx: tokio::sync::watch::channel(None).0,
        wants_tx: tokio::sync::watch::channel(true).0,
    };
    node.own_url = node.icecast.mount_url();
    let outcome = node.drive(&config, &tasks, out, dir_client, &cancel).await;
    tasks.shutdown().await;
    let Node {
        recorder,
        icecast,
        total,
        mut summary,
        ..
    } = node;
    recorder.record(None, Kind::StreamBytes { total });
    recorder.flush();
    icecast.stop().await;
    summary.bytes = total;
    outcome.map(|ended| NodeSummary { ended, ..summary })
}

/// The running node's state.
struct Node {
    /// What a relay node announces (none: the source).
    me: Option<Announce>,
    recorder: Recorder,
    watch: ParentWatch,
    icecast: Icecast,
    own_url: String,
    /// The stream's source while the player is connected (the parent; the source node's own
    /// mount).
    connected_to: Option<String>,
    total: u64,
    /// The last `StreamBytes` sample: when (µs) and the total then.
    sampled: (u64, u64),
    summary: NodeSummary,
    /// Asks the directory task for a listing now.
    refetch: Arc<Notify>,
    /// The parent the node announces.
    parent_tx: tokio::sync::watch::Sender<Option<String>>,
    /// Whether the directory task fetches listings ([`ParentWatch::wants_listing`]).
    wants_tx: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// The node's loop; true when it ended with the stream.
    async fn drive(
        &mut self,
        config: &NodeConfig,
        tasks: &Tasks,
        out: Option<tokio::fs::File>,
        dir_client: reqwest::Client,
        cancel: &CancellationToken,
    ) -> Result<bool, IcecastError> {
        let (heard_tx, mut heard) = mpsc::channel(256);
        let player = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| IcecastError::Config(format!("HTTP client: {e}")))?;
        tasks.spawn("player", play(player, self.own_url.clone(), out, heard_tx));
        let (list_tx, mut listings) = mpsc::channel(4);
        let me = self.me.clone();
        self.parent_tx
            .send_replace(self.watch.parent().map(str::to_owned));
        tasks.spawn(
            "directory",
            directory_loop(
                dir_client.clone(),
                config.directory.clone(),
                me,
                self.parent_tx.subscribe(),
                self.wants_tx.subscribe(),
                self.refetch.clone(),
                list_tx,
            ),
        );
        let (probe_tx, mut probes) = mpsc::channel(4);
        let (join_tx, mut joins) = mpsc::channel::<Option<String>>(1);
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(false),
                Some(h) = heard.recv() => self.on_heard(h, tasks, &dir_client, &probe_tx),
                Some((url, alive)) = probes.recv() => {
                    let now = self.recorder.mono_us();
                    if let Some(why) = self.watch.on_probe(now, &url, alive) {
                        self.gave_up(why);
                    }
                }
                Some(listing) = listings.recv() => {
                    let now = self.recorder.mono_us();
                    if let Some(s) = self.watch.on_listing(now, &listing) {
                        self.switch(s)?;
                    }
                }
                Some(given) = joins.recv() => {
                    let now = self.recorder.mono_us();
                    if let Some(s) = self.watch.on_joined(now, given) {
                        self.switch(s)?;
                    }
                }
                _ = tick.tick() => {
                    self.icecast_alive().await?;
                    let now = self.recorder.mono_us();
                    self.wants_tx.send_if_modified(|w| {
                        let now_wants = self.watch.wants_listing(now);
                        std::mem::replace(w, now_wants) != now_wants
                    });
                    match self.watch.on_tick(now) {
                        Some(Step::GaveUp(why)) => self.gave_up(why),
                        Some(Step::Probe(parent)) => probe(tasks, &dir_client, &probe_tx, parent),
                        None => {}
                    }
                    if let (Some(avoid), Some(me)) = (self.watch.join_request(now), &self.me) {
                        let join = Join { announce: me.clone(), avoid };
                        let (client, url, tx) = (dir_client.clone(), config.directory.clone(), join_tx.clone());
                        tasks.spawn("join", async move {
                            let given = match directory::join(&client, &url, &join).await {
                                Ok(p) => p.map(|p| p.url),
                                Err(e) => {
                                    tracing::debug!(error = %e, "join failed");
                                    None
                                }
                            };
                            let _ = tx.send(given).await;
                        });
                    }
                    if self.watch.should_exit(now) {
                        return Ok(true);
                    }
                    self.sample(now, false);
                }
            }
        }
    }

    /// Moves the relay to the new parent, announces it and records the change.
    fn switch(&mut self, s: Switch) -> Result<(), IcecastError> {
        let relay = RelayFrom::from_url(&s.to).map_err(IcecastError::Config)?;
        self.icecast.set_relay(Some(relay))?;
        self.parent_tx.send_replace(Some(s.to.clone()));
        self.summary.switches += u32::from(s.from.is_some());
        tracing::info!(from = ?s.from, to = %s.to, detect_ms = s.detect_us / 1000, "new parent");
        record_switch(&self.recorder, s);
        Ok(())
    }

    /// Checks the icecast2 child; one that died is started again, at most [`MAX_RESTARTS`]
    /// times (its listeners and children reconnect; what passed meanwhile is lost and shows as
    /// a gap), then the node fails naming it.
    async fn icecast_alive(&mut self) -> Result<(), IcecastError> {
        let status = match self.icecast.child.try_wait() {
            Ok(None) => return Ok(()),
            Ok(Some(status)) => status,
            Err(e) => return Err(self.icecast.failed(format!("cannot be waited for: {e}"))),
        };
        if self.summary.restarts >= MAX_RESTARTS {
            return Err(self.icecast.failed(format!(
                "exited ({status}), after {} restarts",
                self.summary.restarts
            )));
        }
        tracing::warn!(%status, log = %self.icecast.log_tail(), "icecast2 died: starting it again");
        self.summary.restarts += 1;
        self.icecast.restart().await
    }

    fn on_heard(
        &mut self,
        h: Heard,
        tasks: &Tasks,
        client: &reqwest::Client,
        probe_tx: &mpsc::Sender<(String, bool)>,
    ) {
        let now = self.recorder.mono_us();
        match h {
            Heard::Connected => {
                let url = self
                    .watch
                    .parent()
                    .map_or_else(|| self.own_url.clone(), str::to_owned);
                self.recorder.record(
                    None,
                    Kind::StreamConnected {
                        url: url.clone(),
                        from: None,
                        position: None,
                    },
                );
                self.connected_to = Some(url);
            }
            Heard::Bytes { total, skipped } => {
                self.watch.on_bytes(now);
                self.total = total;
                self.summary.skipped = skipped;
                self.sample(now, false);
            }
            Heard::Ended { reason } => {
                self.disconnected(reason);
                if let Some(parent) = self.watch.on_stream_end(now) {
                    probe(tasks, client, probe_tx, parent);
                }
            }
        }
    }

    /// The player's connection ended (or timed out): the arrival curve's point, and why.
    fn disconnected(&mut self, reason: String) {
        if let Some(url) = self.connected_to.take() {
            self.sample(self.recorder.mono_us(), true);
            self.summary.disconnects += 1;
            self.recorder
                .record(None, Kind::StreamDisconnected { url, reason });
        }
    }

    fn gave_up(&mut self, why: GaveUp) {
        tracing::warn!(?why, "parent given up: taking another from the directory");
        if why == GaveUp::Timeout {
            self.disconnected("timeout".into());
        }
        self.parent_tx.send_replace(None);
        self.wants_tx.send_replace(true);
        self.refetch.notify_one();
    }

    /// Records `StreamBytes` at most every 100 ms while bytes flow (or now, if `force`).
    fn sample(&mut self, now: u64, force: bool) {
        let (at, total) = self.sampled;
        if self.total != total && (force || now.saturating_sub(at) >= TICK.as_micros() as u64) {
            self.recorder
                .record(None, Kind::StreamBytes { total: self.total });
            self.sampled = (now, self.total);
        }
    }
}

fn record_switch(recorder: &Recorder, s: Switch) {
    recorder.record(
        None,
        Kind::ParentChanged {
            from: s.from,
            to: s.to,
            detect_us: s.detect_us,
        },
    );
}

/// A password nobody is told (a relay node takes no source): random enough for a lab.
fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// The directory `icecast2` runs in: `--data-dir`, or a temporary one (its guard removes it).
fn work_dir(
    data_dir: Option<&std::path::Path>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), IcecastError> {
    if let Some(d) = data_dir {
        return Ok((d.to_owned(), None));
    }
    let temp = tempfile::Builder::new()
        .prefix("swarmcast-icecast-")
        .tempdir()
        .map_err(|source| IcecastError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    Ok((temp.path().to_owned(), Some(temp)))
}

/// The first parent: the directory chooses (`POST /relays/join`, under one lock, so nodes
/// starting together spread); if it cannot, the node chooses from `listing`.
async fn first_parent(
    watch: &mut ParentWatch,
    recorder: &Recorder,
    client: &reqwest::Client,
    directory: &str,
    me: &Announce,
    listing: &Listing,
) -> Option<Switch> {
    if let Some(avoid) = watch.join_request(recorder.mono_us()) {
        let join = Join {
            announce: me.clone(),
            avoid,
        };
        let given = directory::join(client, directory, &join).await;
        if let Err(e) = &given {
            tracing::warn!(error = %e, "cannot join through the directory: choosing from its listing");
        }
        let given = given.ok().flatten().map(|p| p.url);
        if let Some(s) = watch.on_joined(recorder.mono_us(), given) {
            return Some(s);
        }
    }
    watch.on_listing(recorder.mono_us(), listing)
}
