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
use swarmcast_core::{StreamLink, StreamSecret, Window};
use swarmcast_metrics::{Recorder, Role};
use swarmcast_swarm::ratelimit::ByteLimiter;
use swarmcast_swarm::seeder::Seeder;
use swarmcast_swarm::wire::{WireConfig, WireSeeder};
use swarmcast_swarm::{Swarm, SwarmConfig};
use swarmcast_tasks::Tasks;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use url::Url;

pub mod carrier;
mod config;
pub mod error;
pub mod fds;
pub mod http;
pub mod icecast;
pub mod metrics;
pub mod natcheck;
mod pipeline;
pub mod segment_file;
pub mod serve;
pub mod state;
mod summary;
pub mod tracker;
pub mod whitelist;

pub use config::{
    FeedInput, PublishConfig, SeederKind, StripeOutput, DEFAULT_FALLBACK_SLOTS,
    DEFAULT_TRACKER_MIN_INTERVAL, MAX_TARGET, MIN_TARGET,
};
pub use error::PublishError;
pub use summary::{HttpConnections, Ready, Summary};

use config::{public_addr, validate};

use http::Shared;
use pipeline::Publisher;
use state::{Persisted, StateDir};

/// How long a librqbit session may take to report a new segment seeding before the publisher
/// gives up (the wire seeder serves a segment once it has read and checked it).
pub(crate) const SEED_TIMEOUT: Duration = Duration::from_secs(60);
/// How often removals and upload counts are checked.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// Ctrl-C twice: the first ends the stream gracefully (end-of-stream manifest, linger), the
/// second exits. The one type every verb takes.
pub use swarmcast_tasks::Shutdown;

pub(crate) fn dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Dir {
        path: path.to_owned(),
        source,
    }
}

/// Publishes a stream until the input ends or `shutdown` says so. `ready` receives the link once
/// the HTTP server and the swarm are up.
pub async fn run(
    config: PublishConfig,
    shutdown: Shutdown,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<Summary, PublishError> {
    let Started {
        mut publisher,
        tasks,
        server,
        http_stop,
        nat_tasks,
        first_number,
        restarted,
    } = start(config, ready).await?;
    let outcome = publisher
        .run_to_end(first_number, restarted, &shutdown)
        .await;
    http_stop.cancel();
    nat_tasks.cancel();
    let _ = server.await;
    // Responses under way go on while the seeder stops; what is left then is cut.
    publisher.finish().await;
    tasks.shutdown().await;
    publisher.relays.report();
    outcome.map(|()| publisher.summary.clone())
}

/// A publisher serving, its feed not yet started.
struct Started {
    publisher: Publisher,
    /// Every task of the run.
    tasks: Tasks,
    /// The HTTP accept loop.
    server: tokio::task::JoinHandle<Option<()>>,
    /// Stops the HTTP server (connections in a request finish it).
    http_stop: CancellationToken,
    /// The tracker's NAT checks.
    nat_tasks: Tasks,
    /// The number of the first segment to cut.
    first_number: u64,
    /// A previous run's state was found.
    restarted: bool,
}

/// Opens the stream, binds HTTP and starts the seeder, re-seeds a previous run's window, starts
/// serving and sends `ready`.
async fn start(
    config: PublishConfig,
    ready: Option<oneshot::Sender<Ready>>,
) -> Result<Started, PublishError> {
    validate(&config)?;
    let opened = open_stream(&config)?;
    let (key, stream_dir) = (opened.secret.public(), opened.stream_dir.clone());

    let nat_check = config.embedded_tracker && config.nat_check;
    let (files, http_limits) = file_budget(&config, nat_check)?;

    // HTTP first: a port in use is refused before the BitTorrent session starts.
    let (http_listener, http_addr) = bind_http(config.http).await?;
    // One upload budget, paced, for everything the publisher sends with the wire seeder: pieces,
    // HTTP segment bodies, manifests, tracker answers. A librqbit session limits its own traffic
    // (a second's burst), so with it the HTTP server keeps a budget of its own.
    let budget = config
        .upload_limit
        .and_then(ByteLimiter::wire)
        .map(Arc::new);
    // Every task the publisher starts; a second Ctrl-C drops them all (main's grace).
    let tasks = Tasks::new("publisher");
    let (seeder, carrier) =
        start_seeder(&config, &stream_dir, &files, budget.clone(), key, &tasks).await?;
    let peer_addr = seeder.listen_addr();
    let public = public_addr(&config, peer_addr)?;
    let public_peer = public.parse::<SocketAddr>().ok();

    let (trackers, link) = trackers_and_link(&config, http_addr, key)?;

    let restarted = opened.previous.is_some();
    let (persisted, previous_doc) =
        (opened.previous).map_or((Persisted::default(), None), |p| (p.persisted, p.manifest));
    let stripe_secret = opened.secret.clone();
    let window = Window::new(
        opened.secret,
        config.window_config(public, trackers.clone()),
        persisted.next_seq,
    )?;
    // Stops the HTTP server (connections in a request finish them), and with it the tracker's
    // NAT checks in flight.
    let http_stop = CancellationToken::new();
    let http_tasks = tasks.child("http");
    let nat_tasks = tasks.child("nat-check");
    let shared = shared_state(
        &config,
        &files,
        &link,
        budget,
        &seeder,
        carrier.clone(),
        &nat_tasks,
    );
    let grace = config.grace_period();
    if let Some(carrier) = carrier {
        tasks.spawn("manifest-carry", carrier::carry(carrier, shared.clone()));
    }
    if let Some(dht) = &config.dht {
        let node = dht
            .start()
            .map_err(|e| PublishError::Config(e.to_string()))?;
        let (secret, port) = (
            stripe_secret.clone(),
            public_peer.map_or(peer_addr.port(), |p| p.port()),
        );
        tasks.spawn(
            "dht-pointer",
            carrier::dht_pointer(node, secret, port, shared.clone()),
        );
    }

    let mut publisher = Publisher {
        tasks: tasks.clone(),
        config,
        seeder,
        window,
        state: opened.state,
        stream_dir: stream_dir.clone(),
        shared: shared.clone(),
        recorder: opened.recorder,
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
        relays: icecast::RelayOutputs::default(),
    };
    publisher.relays = icecast::RelayOutputs::start(&publisher.config, &tasks, &stripe_secret)?;

    // HTTP first, so a restart's re-seeded window is served as soon as it is signed.
    let mut routes = http::router(shared.clone());
    if let Some(directory) = &publisher.relays.directory {
        routes = routes.merge(swarmcast_relay::directory::router(directory.clone()));
    }
    if let Some(s) = &publisher.relays.stripes {
        routes = routes
            .merge(swarmcast_relay::stripe::server::router(s.buffers.clone()))
            .merge(swarmcast_relay::stripe::directory::router(
                s.directory.clone(),
            ));
    }
    let server = http_tasks.spawn(
        "http-accept",
        serve::serve(
            http_listener,
            routes,
            http_limits,
            shared.conns.clone(),
            http_stop.clone(),
            http_tasks.child("http-connections"),
        ),
    );

    match previous_doc {
        Some(doc) => publisher.reseed(&doc).await,
        // An empty whitelist: nothing of an earlier stream stays tracked.
        None => publisher.update_whitelist().await,
    }
    tracing::info!(%link, http = %http_addr, peer = %peer_addr, "publishing");
    if let Some(ready) = ready {
        let (http, peer) = (http_addr, peer_addr);
        let _ = ready.send(Ready {
            link,
            http,
            peer,
            stream_dir,
        });
    }
    Ok(Started {
        publisher,
        tasks,
        server,
        http_stop,
        nat_tasks,
        first_number: persisted.next_segment,
        restarted,
    })
}

/// A stream's key, directory, saved state and counter file, opened for a run.
struct Opened {
    secret: StreamSecret,
    stream_dir: PathBuf,
    state: StateDir,
    previous: Option<state::Previous>,
    recorder: Recorder,
}

/// Reads (or creates) the stream's key and opens its directory (`<data>/<key8>`, checked
/// writable), the previous run's state, the mirror directory and the counter file.
fn open_stream(config: &PublishConfig) -> Result<Opened, PublishError> {
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
    let node = config.node.clone();
    let recorder = Recorder::new(node, Role::Publisher, config.metrics_out.as_deref())?;
    Ok(Opened {
        secret,
        stream_dir,
        state,
        previous,
        recorder,
    })
}

/// What the HTTP routes, the tracker and the pipeline share: the embedded tracker, the upload
/// budget (with the wire seeder, the seeder's too; a librqbit session never sees it), the wire
/// seeder's counters, and the NAT checker, whose checks are tasks of `nat_tasks`.
fn shared_state(
    config: &PublishConfig,
    files: &fds::FdBudget,
    link: &StreamLink,
    budget: Option<Arc<ByteLimiter>>,
    seeder: &Seeder,
    carrier: Option<carrier::Carrier>,
    nat_tasks: &Tasks,
) -> Arc<Shared> {
    let nat_check = config.embedded_tracker && config.nat_check;
    let tracker = embedded_tracker(config, nat_check, files);
    let mut shared = Shared::new(link.to_string(), tracker);
    shared.http_manifests = config.http_manifests;
    shared.carrier = carrier;
    shared.http_limiter = budget;
    shared.fallback_slots = config.fallback_slots;
    shared.wire = seeder.wire_counters();
    shared.nat_checker =
        nat_check.then(|| natcheck::NatChecker::new(config.nat_check_timeout, nat_tasks.clone()));
    Arc::new(shared)
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
    budget: Option<Arc<ByteLimiter>>,
    key: swarmcast_core::StreamKey,
    tasks: &Tasks,
) -> Result<(Seeder, Option<carrier::Carrier>), PublishError> {
    let mut carrier = None;
    let gossip = swarmcast_core::gossip::GossipConfig {
        push_to: config.manifest_push,
        ..swarmcast_core::gossip::GossipConfig::publisher()
    };
    let super_seed = config.super_seed.then(|| {
        config
            .super_seed_reveal
            .unwrap_or(swarmcast_swarm::REVEAL_NEVER)
    });
    let seeder = match config.seeder {
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
                extension: config.swarm_manifests.then(|| {
                    let (c, handler) = carrier::Carrier::exchange(key, gossip, tasks);
                    carrier = Some(c);
                    swarmcast_swarm::ExtensionSlot(handler)
                }),
                dht_bootstrap: None,
            })
            .await?,
        ),
        SeederKind::Wire => {
            let hub = config
                .swarm_manifests
                .then(|| swarmcast_swarm::wire::manifests::ManifestHub::new(gossip));
            carrier = hub.clone().map(carrier::Carrier::Hub);
            Seeder::Wire(
                WireSeeder::start(WireConfig {
                    listen: config.listen,
                    upload_limit: budget,
                    super_seed,
                    late_after: config.late_piece,
                    offer_wait: Some(swarmcast_swarm::wire::OFFER_WAIT),
                    max_connections: files.peer,
                    per_address: config.peer_conns_per_address,
                    manifests: hub,
                })
                .await
                .map_err(swarmcast_swarm::SwarmError::from)?,
            )
        }
    };
    Ok((seeder, carrier))
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
    let mut sources = Vec::new();
    if config.http_manifests {
        sources.push(join("manifest"));
    }
    sources.extend(config.mirror_urls.iter().cloned());
    let link = StreamLink::new(key, sources).map_err(|e| PublishError::Config(e.to_string()))?;
    Ok((trackers, link))
}

/// Refuses an input file or directory that cannot be read before anything starts.
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
