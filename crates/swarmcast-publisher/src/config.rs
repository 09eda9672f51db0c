//! What `publish` is told: [`PublishConfig`], its defaults and limits, and the checks that refuse
//! a wrong configuration before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use swarmcast_core::{manifest, WindowConfig};
use swarmcast_segmenter::source::Format;
use url::Url;

use crate::{natcheck, serve, PublishError};

/// Default of [`PublishConfig::fallback_slots`].
pub const DEFAULT_FALLBACK_SLOTS: usize = 1;

/// Default of [`PublishConfig::tracker_min_interval`], seconds. librqbit re-announces every
/// torrent of its window this often; at 1 s the tracker's answers were 0.23x of the segment bytes
/// published at 20 viewers (docs/publish.md). Viewers nobody can dial are told 1 s while they
/// miss reachable peers ([`crate::tracker::CATCH_UP_MIN_INTERVAL_S`]).
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
    /// Also write every manifest, torrent and segment file here (for a static web server or
    /// CDN), in the publisher's own URL layout.
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
    /// An external tracker's whitelist, rewritten (and the tracker signalled) before each
    /// segment is listed ([`crate::whitelist`]).
    pub tracker_whitelist: Option<crate::whitelist::WhitelistConfig>,
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
    /// not acknowledged it this long after is offered to another viewer, and so is a piece its
    /// one holder passed on to nobody for as long (default
    /// [`swarmcast_swarm::wire::LATE_AFTER`]); `None`: never, a piece written is the viewer's.
    pub late_piece: Option<Duration>,
    /// With the wire seeder: connections from one IP address served at once (default
    /// [`swarmcast_swarm::wire::PER_ADDRESS`]; 0: no cap). An address that opens connections
    /// and sends nothing cannot fill the seeder's slots (docs/reliability.md).
    pub peer_conns_per_address: usize,
    /// HTTP connections open at once. `None` (the default): what the file limit leaves once the
    /// pipeline's reserve and the peer port's share are set aside ([`crate::fds::FdBudget`]), at most
    /// [`crate::fds::HTTP_MAX`]. A value above that is used as given, with a warning: `accept` may
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
    /// Push the live TS to this Icecast source mount as it is cut (`--icecast`,
    /// docs/relay-tree.md).
    pub icecast: Option<crate::icecast::IcecastTarget>,
    /// Serve the relay directory at `/relays`, with the source listed at this URL
    /// (`--relay-source`).
    pub relay_source: Option<String>,
    /// The source's capacity in the directory: children it takes (`--fanout`).
    pub fanout: u32,
    /// Stripe every published segment into substreams served at `/stripe/{s}`, with the stripe
    /// directory at `/stripes/` (`--stripe-source`, docs/striped-fec.md).
    pub stripes: Option<StripeOutput>,
    /// Carry manifests in the swarm: the seeder speaks the manifest exchange (BEP 10) and pushes
    /// each new manifest to a few peers (`--swarm-manifests`, docs/manifest.md).
    pub swarm_manifests: bool,
    /// Peers each new manifest is pushed to, with `swarm_manifests` (`--manifest-push`; 8,
    /// `GossipConfig::publisher`): the publisher's cost per manifest, whatever the audience.
    pub manifest_push: usize,
    /// Serve manifests over HTTP at `/manifest` (and name it in the link); off
    /// (`--no-http-manifests`), the link is the key alone and viewers find the stream on the DHT.
    pub http_manifests: bool,
    /// Put the stream's pointer on the mainline DHT at each manifest, and announce each segment
    /// there (`--dht`, `--dht-bootstrap`).
    pub dht: Option<swarmcast_dht::DhtOptions>,
}

/// `--stripe-source`, `--substreams` and their companions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeOutput {
    /// n.
    pub substreams: u8,
    /// Where this publisher's `/stripe` is reached (`http://host:port/stripe`): the trees'
    /// source in the directory.
    pub source_url: String,
    /// Children a node takes in its home tree.
    pub fanout: u32,
    /// Children the source takes in each tree.
    pub source_fanout: u32,
}

impl PublishConfig {
    /// The rolling window's settings: this configuration's length and target, the publisher's
    /// public peer address and the manifest's trackers.
    pub fn window_config(&self, public_peer: String, trackers: Vec<String>) -> WindowConfig {
        WindowConfig {
            capacity: self.window,
            target_duration: self.target,
            peers: vec![public_peer],
            trackers,
        }
    }

    /// How long a segment that left the window is still seeded: `grace`, or two targets.
    pub fn grace_period(&self) -> Duration {
        self.grace
            .unwrap_or(Duration::from_micros(self.target * 2 * 100 / 9))
    }

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
            tracker_whitelist: None,
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
            swarm_manifests: false,
            manifest_push: swarmcast_core::gossip::GossipConfig::publisher().push_to,
            http_manifests: true,
            dht: None,
            withhold_segment: None,
            fail_segment: None,
            icecast: None,
            relay_source: None,
            fanout: 2,
            stripes: None,
        }
    }
}

/// The public peer address: `--public-addr`, or the bound listen address when it is specific.
pub(crate) fn public_addr(
    config: &PublishConfig,
    bound: SocketAddr,
) -> Result<String, PublishError> {
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

/// Refuses what the user gave wrong before anything starts.
pub(crate) fn validate(config: &PublishConfig) -> Result<(), PublishError> {
    let found_without_http = config.swarm_manifests && config.dht.is_some();
    if !config.http_manifests && !found_without_http {
        return Err(PublishError::Config(
            "--no-http-manifests needs --swarm-manifests and --dht: without HTTP manifests a \
             viewer finds the stream on the DHT and its manifests in the swarm"
                .into(),
        ));
    }
    if config.fanout == 0 {
        return Err(PublishError::Config(
            "--fanout 0: the source takes at least one child".into(),
        ));
    }
    if let Some(u) = &config.relay_source {
        if !Url::parse(u).is_ok_and(|u| u.scheme() == "http" && u.host().is_some()) {
            return Err(PublishError::Config(format!(
                "--relay-source {u:?}: expected the source's mount URL, http://host:port/mount"
            )));
        }
    }
    if let Some(s) = &config.stripes {
        if !(2..=swarmcast_stripe::code::MAX_SUBSTREAMS).contains(&s.substreams) {
            return Err(PublishError::Config(format!(
                "--substreams {}: expected 2 to {}",
                s.substreams,
                swarmcast_stripe::code::MAX_SUBSTREAMS
            )));
        }
        if !Url::parse(&s.source_url).is_ok_and(|u| u.scheme() == "http" && u.host().is_some()) {
            return Err(PublishError::Config(format!(
                "--stripe-source {:?}: expected where this publisher's /stripe is reached, \
                 http://host:port/stripe",
                s.source_url
            )));
        }
        if s.fanout == 0 || s.source_fanout == 0 {
            return Err(PublishError::Config(
                "--stripe-fanout and --stripe-source-fanout: at least 1".into(),
            ));
        }
    }
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
    if let Some(w) = &config.tracker_whitelist {
        w.check()
            .map_err(|e| PublishError::Config(crate::error_chain(&e)))?;
    }
    if config.embedded_tracker && config.nat_check && config.nat_check_timeout.is_zero() {
        return Err(PublishError::Config(
            "the NAT check's timeout must be more than zero (or turn the NAT check off)".into(),
        ));
    }
    check_input(&config.input)
}

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
