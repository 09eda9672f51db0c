//! `swarmcast publish`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::FeedArgs;

/// Changes of the librqbit patch series turned off (`--librqbit-off`).
#[derive(Clone, Debug, Default)]
pub(crate) struct LibrqbitOff(pub(crate) Vec<swarmcast_swarm::tweaks::SwarmTweak>);

/// Arguments of `swarmcast publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Input file [default: stdin]. Not with --watch-dir or --synth.
    #[arg(conflicts_with_all = ["watch_dir", "synth"])]
    pub(crate) input: Option<PathBuf>,
    /// Take the .ts files an encoder finishes in this directory as segments.
    #[arg(long, env = "SWARMCAST_WATCH_DIR", conflicts_with = "synth")]
    pub(crate) watch_dir: Option<PathBuf>,
    /// Publish the synthetic feed (paced in real time) instead of an input.
    #[arg(long, env = "SWARMCAST_SYNTH")]
    pub(crate) synth: bool,
    /// With --synth: bitrate in bit/s (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", value_parser = crate::parse::parse_bitrate, requires = "synth")]
    pub(crate) bitrate: Option<u64>,
    /// With --synth: stop after this many seconds of media (0.1 s to a year).
    #[arg(long, env = "SWARMCAST_SYNTH_SECS", value_parser = crate::parse::parse_feed_secs, requires = "synth")]
    pub(crate) synth_secs: Option<f64>,
    #[command(flatten)]
    pub(crate) feed: FeedArgs,
    /// The stream's secret key file (created with mode 0600 if missing).
    #[arg(long, env = "SWARMCAST_KEY", default_value = "swarmcast.key")]
    pub(crate) key: PathBuf,
    /// Data directory: segments and state go to DIR/<first 8 characters of the key>/.
    #[arg(long, env = "SWARMCAST_DATA_DIR", default_value = "swarmcast-data")]
    pub(crate) data_dir: PathBuf,
    /// BitTorrent listen address (port 0: any free port).
    #[arg(long, env = "SWARMCAST_LISTEN", default_value = "127.0.0.1:0")]
    pub(crate) listen: std::net::SocketAddr,
    /// Peer address viewers reach this publisher at, HOST:PORT [default: --listen, unless it is
    /// an unspecified address such as 0.0.0.0].
    #[arg(long, env = "SWARMCAST_PUBLIC_ADDR")]
    pub(crate) public_addr: Option<String>,
    /// HTTP listen address (manifest, torrents, segments, tracker, metrics, status page).
    #[arg(long, env = "SWARMCAST_HTTP", default_value = "127.0.0.1:8080")]
    pub(crate) http: std::net::SocketAddr,
    /// Base URL viewers reach the HTTP server at [default: http://<bound HTTP address>/].
    #[arg(long, env = "SWARMCAST_PUBLIC_URL")]
    pub(crate) public_url: Option<url::Url>,
    /// A mirror's manifest URL, added to the stream link (repeatable).
    #[arg(
        long = "mirror-url",
        env = "SWARMCAST_MIRROR_URLS",
        value_delimiter = ','
    )]
    pub(crate) mirror_urls: Vec<url::Url>,
    /// Also write every manifest, torrent and segment file to this directory, in the layout of
    /// the publisher's URLs (serve it statically as a mirror: docs/publish.md, "Mirrors").
    #[arg(long, env = "SWARMCAST_MIRROR_DIR")]
    pub(crate) mirror_dir: Option<PathBuf>,
    /// Target segment length in seconds (fractions allowed; 0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 60.0, value_parser = crate::parse::parse_segment_secs)]
    pub(crate) segment_secs: f64,
    /// Segments listed in the manifest.
    #[arg(long, env = "SWARMCAST_WINDOW", default_value_t = 5)]
    pub(crate) window: usize,
    /// Seconds a segment stays seeded after leaving the window (0.1 s to a day) [default: two
    /// segment lengths].
    #[arg(long, env = "SWARMCAST_GRACE", value_parser = crate::parse::parse_grace)]
    pub(crate) grace: Option<f64>,
    /// Seconds to keep serving after the end of the stream (0 to a day) [default: window x
    /// segment length; with --dht at least 30 s, or three segment lengths plus 20 s if longer].
    #[arg(long, env = "SWARMCAST_LINGER", value_parser = crate::parse::parse_linger)]
    pub(crate) linger: Option<f64>,
    /// Keep segment files after they are forgotten.
    #[arg(long, env = "SWARMCAST_KEEP_SEGMENTS")]
    pub(crate) keep_segments: bool,
    /// External tracker announce URL, put in every torrent and the manifest (repeatable).
    #[arg(long = "tracker", env = "SWARMCAST_TRACKERS", value_delimiter = ',')]
    pub(crate) trackers: Vec<String>,
    /// An external tracker's whitelist file (opentracker's `access.whitelist`): before each
    /// segment is listed in the manifest, it is rewritten atomically with the info hash of every
    /// segment served, one 40-character hex hash a line. A failure is logged and counted; the
    /// segment is published anyway.
    #[arg(long, env = "SWARMCAST_TRACKER_WHITELIST")]
    pub(crate) tracker_whitelist: Option<PathBuf>,
    /// With --tracker-whitelist: send this process SIGHUP after each rewrite (opentracker
    /// re-reads its whitelist on SIGHUP).
    #[arg(long, env = "SWARMCAST_TRACKER_RELOAD_PID", requires = "tracker_whitelist", conflicts_with = "tracker_reload_pidfile", value_parser = parse_pid)]
    pub(crate) tracker_reload_pid: Option<i32>,
    /// With --tracker-whitelist: send SIGHUP after each rewrite to the process whose id is in
    /// this file (read each time, so a restarted tracker is found).
    #[arg(
        long,
        env = "SWARMCAST_TRACKER_RELOAD_PIDFILE",
        requires = "tracker_whitelist"
    )]
    pub(crate) tracker_reload_pidfile: Option<PathBuf>,
    /// Do not run the embedded tracker.
    #[arg(long, env = "SWARMCAST_NO_EMBEDDED_TRACKER")]
    pub(crate) no_embedded_tracker: bool,
    /// List every announcing peer at once, without first checking that it can be reached by
    /// connecting back (the NAT check: peers behind NAT, which nobody can dial, stay out of the
    /// lists others dial).
    #[arg(long, env = "SWARMCAST_NO_NAT_CHECK")]
    pub(crate) no_nat_check: bool,
    /// How long the tracker's connect-back check waits before calling a peer unreachable,
    /// seconds (0.1 to 60).
    #[arg(long, env = "SWARMCAST_NAT_CHECK_TIMEOUT", default_value_t = 2.0, value_parser = crate::parse::parse_nat_check_timeout)]
    pub(crate) nat_check_timeout: f64,
    /// List reachable viewers to each other even when most viewers are behind a NAT. By default,
    /// while at least as many viewers failed the NAT check as passed it, a reachable viewer is
    /// listed only the publisher: the NATed viewers dial it, its uplink carries the copies only it
    /// can carry, and it gets its own copies from them.
    #[arg(long, env = "SWARMCAST_LIST_REACHABLE_TO_REACHABLE")]
    pub(crate) list_reachable_to_reachable: bool,
    /// TCP hole punching: the tracker lists viewers that failed the NAT check to each other at a
    /// port of this range (FIRST-LAST, or off), the same for both ends and changing with the
    /// segment; viewers with the same `watch --punch-ports` (the default is the same) dial each
    /// other from it, and NATs that keep ports let them connect (docs/publish.md, the tracker).
    #[arg(long, env = "SWARMCAST_PUNCH_PORTS", default_value = "52000-52063", value_parser = crate::parse::parse_punch_ports)]
    pub(crate) punch_ports: crate::parse::PunchPorts,
    /// With --upload-limit: most segment files sent over HTTP at once while the swarm is
    /// uploading (viewers' fallbacks); more are answered 503, retry in a second. 0: no limit.
    #[arg(long, env = "SWARMCAST_FALLBACK_SLOTS", default_value_t = swarmcast_publisher::DEFAULT_FALLBACK_SLOTS)]
    pub(crate) fallback_slots: usize,
    /// Tracker re-announce interval in seconds (1 to 3600).
    #[arg(long, env = "SWARMCAST_TRACKER_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) tracker_interval: u64,
    /// Tracker `min interval` in seconds (1 to --tracker-interval): how often a viewer may
    /// re-announce, and so how soon it hears of peers that joined a segment's swarm after it.
    #[arg(long, env = "SWARMCAST_TRACKER_MIN_INTERVAL", default_value_t = swarmcast_publisher::DEFAULT_TRACKER_MIN_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) tracker_min_interval: u64,
    /// Piece length in bytes, 16384 to 16777216 [default: the smallest power of two from 32 KiB giving at most 1024 pieces].
    #[arg(long, env = "SWARMCAST_PIECE_LENGTH")]
    pub(crate) piece_length: Option<u64>,
    /// Upload limit, bytes per second on the wire (at least 32768): with the wire seeder, one
    /// paced budget for everything the publisher sends (pieces, manifests, tracker answers, and
    /// HTTP segment bodies at low priority), each write counted with its packets' TCP/IP headers
    /// and one packet more; set it a little under the uplink (90%). With `--seeder librqbit`, the
    /// session and the HTTP server each get this limit.
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    pub(crate) upload_limit: Option<u32>,
    /// Super-seeding: reveal every piece of a segment (plain seeding) this many seconds after its
    /// first copy is out (0.1 to 3600; with `--seeder librqbit`: after seeding starts), or `never` [default:
    /// never; viewers that miss a piece fall back to HTTP]. Until then each viewer is offered
    /// pieces nobody has yet.
    #[arg(long, env = "SWARMCAST_SUPER_SEED_REVEAL", value_parser = crate::parse::parse_reveal)]
    pub(crate) super_seed_reveal: Option<std::time::Duration>,
    /// Super-seeding with the wire seeder: a piece written whole to a viewer whose TCP has not
    /// acknowledged it this many seconds (0.1 to 60) later is offered to another viewer, and so is
    /// a piece its one holder passed on to nobody for as long; or `off` (a piece stuck on its way
    /// to its one holder, or kept by it, is then lost to the swarm until that viewer leaves).
    #[arg(long, env = "SWARMCAST_LATE_PIECE", default_value = "3", value_parser = crate::parse::parse_late_piece)]
    pub(crate) late_piece: crate::parse::LatePiece,
    /// With the wire seeder: connections from one IP address served at once (0: no cap). One
    /// address that opens connections and sends nothing cannot fill the seeder's slots (at
    /// most 1,024, from the file limit); raise it (or 0) when many viewers share an address (a
    /// lab on loopback, a large NAT). An IPv6 host is counted by its /64.
    #[arg(long, env = "SWARMCAST_PEER_CONNS_PER_ADDRESS", default_value_t = swarmcast_swarm::wire::PER_ADDRESS)]
    pub(crate) peer_conns_per_address: usize,
    /// HTTP connections open at once [default: what the file limit leaves once segment files,
    /// the peer port and NAT checks have their share, at most 4,096]. At the cap, the
    /// connection idle the longest is closed for a new one.
    #[arg(long, env = "SWARMCAST_HTTP_MAX_CONNS")]
    pub(crate) http_max_conns: Option<usize>,
    /// HTTP connections from one IP address at once (0: no cap); raise it (or 0) when many
    /// viewers share an address (a lab on loopback, a large NAT).
    #[arg(long, env = "SWARMCAST_HTTP_CONNS_PER_ADDRESS", default_value_t = swarmcast_publisher::serve::PER_ADDRESS)]
    pub(crate) http_conns_per_address: usize,
    /// Turn off changes of swarmcast's librqbit patch series, for measurement: comma-separated
    /// names (have, wake, random, window, cancel, nodelay, superseed, steal, pace, slots), or all
    /// (docs/librqbit.md).
    #[arg(long, env = "SWARMCAST_LIBRQBIT_OFF", default_value = "", hide_default_value = true, value_parser = crate::parse::parse_librqbit_off)]
    pub(crate) librqbit_off: LibrqbitOff,
    /// What seeds the segments: swarmcast's own seeder on librqbit's wire-protocol crate
    /// (super-seeding in swarmcast), or a librqbit session (super-seeding by librqbit patch 0007);
    /// docs/librqbit.md compares the two.
    #[arg(long, env = "SWARMCAST_SEEDER", value_enum, default_value_t = SeederArg::Wire)]
    pub(crate) seeder: SeederArg,
    /// Write counters as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Node name in the counters.
    #[arg(long, env = "SWARMCAST_NODE", default_value = "publisher")]
    pub(crate) node: String,
    /// Also push the live TS, as it is cut, to an Icecast source mount
    /// (`http://source:<password>@host:port/mount`; docs/relay-tree.md). Reconnects with
    /// backoff if it drops; never slows publishing (what Icecast cannot take is dropped and
    /// counted).
    #[arg(long, env = "SWARMCAST_ICECAST", value_parser = swarmcast_publisher::icecast::IcecastTarget::parse)]
    pub(crate) icecast: Option<swarmcast_publisher::icecast::IcecastTarget>,
    /// Serve the relay directory at `/relays`, with the relay tree's source listed at this URL
    /// (its mount, e.g. `http://host:port/live.ts`); listings say `ended` once the end of the
    /// stream is published.
    #[arg(long, env = "SWARMCAST_RELAY_SOURCE")]
    pub(crate) relay_source: Option<String>,
    /// The relay tree's fan-out: children the source takes (its capacity in the directory).
    #[arg(
        long,
        env = "SWARMCAST_FANOUT",
        default_value_t = 2,
        requires = "relay_source"
    )]
    pub(crate) fanout: u32,
    /// Also stripe every published segment into substreams with RaptorQ FEC (any all but one
    /// rebuild it), served at /stripe/{s}, with the stripe directory at /stripes/
    /// (docs/striped-fec.md). The URL is where nodes reach this publisher's /stripe
    /// (http://host:port/stripe): the trees' source.
    #[arg(long, env = "SWARMCAST_STRIPE_SOURCE")]
    pub(crate) stripe_source: Option<String>,
    /// Substreams a segment is striped into (with --stripe-source).
    #[arg(long, alias = "stripes", env = "SWARMCAST_SUBSTREAMS", default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=64))]
    pub(crate) substreams: u8,
    /// Children a node takes in its home substream's tree (default: the substream count plus
    /// one, so that a tree's interior nodes have a slot for every node).
    #[arg(long, env = "SWARMCAST_STRIPE_FANOUT", requires = "stripe_source", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) stripe_fanout: Option<u32>,
    /// Children the publisher takes in each substream's tree.
    #[arg(long, env = "SWARMCAST_STRIPE_SOURCE_FANOUT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) stripe_source_fanout: u32,
    /// Testing: list this segment in the manifest but never seed it.
    #[arg(long, hide = true, env = "SWARMCAST_WITHHOLD_SEGMENT")]
    pub(crate) withhold_segment: Option<u64>,
    /// Testing: fail to publish the segment the input gives this number, as an I/O error would.
    #[arg(long, hide = true, env = "SWARMCAST_FAIL_SEGMENT")]
    pub(crate) fail_segment: Option<u64>,
    /// Carry manifests in the swarm: the seeder offers each new manifest to a few of its peers
    /// over a BitTorrent extension message (BEP 10), and viewers pass it on (docs/manifest.md).
    #[arg(long, env = "SWARMCAST_SWARM_MANIFESTS")]
    pub(crate) swarm_manifests: bool,
    /// With --swarm-manifests: peers each new manifest is pushed to (whole, or as a delta). The
    /// publisher's cost per manifest, whatever the audience; the viewers pass it on.
    #[arg(long, env = "SWARMCAST_MANIFEST_PUSH", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) manifest_push: u16,
    /// Do not serve manifests over HTTP: the link is the stream key alone, and viewers find the
    /// stream on the DHT and its manifests in the swarm (needs --swarm-manifests and --dht).
    #[arg(long, env = "SWARMCAST_NO_HTTP_MANIFESTS")]
    pub(crate) no_http_manifests: bool,
    /// Put the stream's pointer on the mainline DHT (a BEP 44 item signed with the stream key)
    /// at each manifest, and announce each segment there (BEP 5).
    #[arg(long, env = "SWARMCAST_DHT")]
    pub(crate) dht: bool,
    #[command(flatten)]
    pub(crate) dht_args: super::DhtArgs,
}

/// `--transport`.
/// `publish --seeder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SeederArg {
    /// swarmcast's wire seeder (super-seeding in swarmcast).
    Wire,
    /// A librqbit session (super-seeding: librqbit patch 0007).
    Librqbit,
}

/// `--tracker-reload-pid`: a positive process id, not ours.
fn parse_pid(text: &str) -> Result<i32, String> {
    swarmcast_publisher::whitelist::parse_pid(text)
}
