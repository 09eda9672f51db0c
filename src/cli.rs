//! The command line's declarations: every verb's flags, each also read from a `SWARMCAST_*`
//! environment variable. The long ones have modules of their own.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod icecast_node;
mod lab;
mod publish;
mod relay;
mod stripe_node;
mod watch;

pub(crate) use icecast_node::IcecastNodeArgs;
pub(crate) use lab::{JoinArg, LabArgs, NetArg};
pub(crate) use publish::{LibrqbitOff, PublishArgs, SeederArg};
pub(crate) use relay::RelayArgs;
pub(crate) use stripe_node::StripeNodeArgs;
pub(crate) use watch::WatchArgs;

/// How to join the mainline DHT (`publish --dht`, and `watch` with a link that is the key
/// alone or `--dht`).
#[derive(Args, Clone, Debug)]
pub(crate) struct DhtArgs {
    /// DHT nodes to join through (`host:port`, repeatable or comma-separated); default: the
    /// public DHT's routers.
    #[arg(long, env = "SWARMCAST_DHT_BOOTSTRAP", value_delimiter = ',')]
    pub(crate) dht_bootstrap: Vec<String>,
    /// Testing: the DHT socket's address (127.0.0.1 for a local test DHT).
    #[arg(
        long,
        hide = true,
        env = "SWARMCAST_DHT_BIND",
        default_value = "0.0.0.0"
    )]
    pub(crate) dht_bind: std::net::Ipv4Addr,
    /// Testing: how long a DHT query waits for a node's answer, in ms (default: mainline's
    /// 2,000).
    #[arg(long, hide = true, env = "SWARMCAST_DHT_REQUEST_TIMEOUT_MS")]
    pub(crate) dht_request_timeout_ms: Option<u64>,
}

impl DhtArgs {
    /// The options these flags give.
    pub(crate) fn options(&self) -> swarmcast_dht::DhtOptions {
        swarmcast_dht::DhtOptions {
            bootstrap: self.dht_bootstrap.clone(),
            bind: self.dht_bind,
            request_timeout: self
                .dht_request_timeout_ms
                .map(std::time::Duration::from_millis),
        }
    }
}

/// Live broadcasting over BitTorrent by minute swarming.
#[derive(Debug, Parser)]
#[command(name = "swarmcast", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Log filter for stderr (tracing `EnvFilter` syntax, e.g. `info`, `swarmcast=debug`).
    /// mpeg2ts_reader is quiet by default (it warns on every malformed packet, which the segmenter
    /// already counts), and librqbit logs warnings only (its per-peer task errors, such as peers
    /// dropped when a segment is forgotten, are off).
    #[arg(
        long,
        global = true,
        env = "SWARMCAST_LOG",
        default_value = "info,mpeg2ts_reader=error,librqbit=warn,librqbit_core=warn,librqbit_core::spawn_utils=off"
    )]
    pub(crate) log: String,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a stream key: writes the secret key file (mode 0600) and prints the public key.
    Keygen(KeygenArgs),
    /// Build a BitTorrent v1 .torrent for a file; prints the info hash and magnet link.
    Torrent(TorrentArgs),
    /// Decode a manifest or .torrent (file, http(s) URL or stream link) and print its fields;
    /// with a pinned key, verify the manifest and fail with the reason if it is refused.
    Inspect(InspectArgs),
    /// Cut a feed (MPEG-TS or any byte stream) into segment files, one line per segment.
    Segment(SegmentArgs),
    /// Publish a live feed: segments seeded over BitTorrent, a signed manifest over HTTP, an
    /// embedded tracker. Prints the stream link.
    Publish(Box<PublishArgs>),
    /// Watch a stream: verify its manifests against the link's key, fetch segments ahead of time
    /// from the swarm (re-seeding them), and play them back to back.
    Watch(Box<WatchArgs>),
    /// Relay a stream with a back buffer (docs/relay.md): pull it from a parent (the publisher
    /// or another relay), verify it piece by piece, serve it live at /stream and from any held
    /// position at /stream?from=<segment>:<offset>, and play it.
    Relay(Box<RelayArgs>),
    /// The whole system on this machine: the synthetic feed, a publisher and staggered viewers on
    /// loopback; prints what each segment's swarm cost; fails if a viewer's output differs from
    /// the published segments it played.
    Demo(DemoArgs),
    /// Measure what a new swarm every segment costs: sweeps of runs, each one publisher and N
    /// viewers as separate processes on loopback, the swarm against plain HTTP side by side;
    /// writes raw counters, summary.csv, summary.md and SVG plots to a results directory.
    Lab(Box<LabArgs>),
    /// Regenerate a lab results directory's summary.csv, summary.md and plots from its raw files.
    Report(ReportArgs),
    /// Manifest figures of lab runs (HTTP against swarm-carried manifests, `--variants
    /// patched,patched@manifests=swarm`), the per-segment costs fitted to them, and a model of the
    /// publisher's load from 10 to 10^5 viewers: what runs out first (docs/experiments.md).
    ScaleModel(ScaleModelArgs),
    /// One node of an Icecast relay tree (the seed's method (a); docs/relay-tree.md): an
    /// icecast2 child relaying a parent taken from the directory, played into a file; or, with
    /// --source, the tree's source taking the publisher's push.
    IcecastNode(Box<IcecastNodeArgs>),
    /// One node of the striped method (the seed's method (c); docs/striped-fec.md): joins the
    /// stripe directory, pulls every substream from a parent it gives, checks every symbol
    /// against its signed hash, relays its home substream, rebuilds the stream and plays it.
    StripeNode(Box<StripeNodeArgs>),
    /// Write the synthetic MPEG-TS feed (a looped, playable H.264 GOP; a keyframe every second).
    Synth(SynthArgs),
    /// Testing: run a local mainline DHT of N nodes on one address (the lab's DHT host); prints
    /// `bootstrap <host:port,...>` once they are up and runs until interrupted.
    #[command(hide = true)]
    DhtTestnet(DhtTestnetArgs),
}

/// Arguments of `swarmcast dht-testnet`.
#[derive(Debug, Args)]
pub(crate) struct DhtTestnetArgs {
    /// Nodes.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u16).range(2..=512))]
    pub(crate) nodes: u16,
    /// The address every node binds (its ports are the system's choice).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) bind: std::net::Ipv4Addr,
}

/// Arguments of `swarmcast keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the secret key (a new file; never overwritten).
    #[arg(
        long,
        short,
        env = "SWARMCAST_KEYGEN_OUT",
        default_value = "swarmcast.key"
    )]
    pub(crate) out: PathBuf,
}

/// Arguments of `swarmcast torrent`.
#[derive(Debug, Args)]
pub(crate) struct TorrentArgs {
    /// The file to describe (its base name becomes the torrent's name).
    pub(crate) file: PathBuf,
    /// Piece length in bytes: a power of two from 16384 to 16777216 [default: the smallest giving
    /// at most 1024 pieces].
    #[arg(long, env = "SWARMCAST_PIECE_LENGTH")]
    pub(crate) piece_length: Option<u64>,
    /// Tracker announce URL (repeatable; the first becomes `announce`).
    #[arg(long = "tracker", env = "SWARMCAST_TRACKERS", value_delimiter = ',')]
    pub(crate) trackers: Vec<String>,
    /// Output path [default: FILE.torrent].
    #[arg(long, short, env = "SWARMCAST_TORRENT_OUT")]
    pub(crate) out: Option<PathBuf>,
}

/// Arguments of `swarmcast inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A file, an http(s) URL, or a stream link (`swarmcast:?pk=...`, which also pins the key).
    pub(crate) target: String,
    /// Stream public key (base32) to verify a manifest against.
    #[arg(long, env = "SWARMCAST_STREAM_KEY")]
    pub(crate) key: Option<String>,
}

/// Arguments of `swarmcast segment`.
#[derive(Debug, Args)]
pub(crate) struct SegmentArgs {
    /// Input file [default: stdin]. Not with --watch-dir.
    #[arg(conflicts_with = "watch_dir")]
    pub(crate) input: Option<PathBuf>,
    /// Directory the segments are written to, as `<number as 8 digits>.ts`.
    #[arg(long, short, env = "SWARMCAST_SEGMENT_OUT")]
    pub(crate) out: PathBuf,
    /// Target segment length in seconds (fractions allowed; 0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 60.0, value_parser = crate::parse::parse_segment_secs)]
    pub(crate) segment_secs: f64,
    /// Take the .ts files an encoder finishes in this directory as segments, one each, in order.
    #[arg(long, env = "SWARMCAST_WATCH_DIR")]
    pub(crate) watch_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) feed: FeedArgs,
    /// Number of the first segment.
    #[arg(long, env = "SWARMCAST_FIRST_NUMBER", default_value_t = 0)]
    pub(crate) first_number: u64,
}

/// How a feed file is read: shared by `segment` and `publish`.
#[derive(Debug, Args)]
pub(crate) struct FeedArgs {
    /// Keep reading the input file as it grows, until --idle-timeout passes with no new data.
    #[arg(long, env = "SWARMCAST_FOLLOW", requires = "input")]
    pub(crate) follow: bool,
    /// With --follow: seconds without new data after which the input is over (0.1 s to a year).
    #[arg(long, env = "SWARMCAST_IDLE_TIMEOUT", default_value_t = 10.0, value_parser = crate::parse::parse_feed_secs)]
    pub(crate) idle_timeout: f64,
    /// Input format: `ts` cuts at keyframes, `raw` by wall clock, `auto` decides from the first bytes.
    #[arg(long, env = "SWARMCAST_FORMAT", value_enum, default_value_t = InputFormat::Auto)]
    pub(crate) format: InputFormat,
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum InputFormat {
    /// TS if three packets in a row line up.
    Auto,
    /// MPEG-TS: cut at keyframes.
    Ts,
    /// Anything else: cut by wall clock.
    Raw,
}

impl FeedArgs {
    pub(crate) fn format(&self) -> swarmcast_segmenter::source::Format {
        use swarmcast_segmenter::source::Format;
        match self.format {
            InputFormat::Auto => Format::Auto,
            InputFormat::Ts => Format::Ts,
            InputFormat::Raw => Format::Raw,
        }
    }

    /// The idle timeout when following, `None` when not.
    pub(crate) fn follow(&self) -> Option<std::time::Duration> {
        self.follow
            .then(|| std::time::Duration::from_secs_f64(self.idle_timeout))
    }
}

/// Arguments of `swarmcast demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Viewers.
    #[arg(long, env = "SWARMCAST_VIEWERS", default_value_t = 3)]
    pub(crate) viewers: usize,
    /// Segment length in seconds (0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 2.0, value_parser = crate::parse::parse_segment_secs)]
    pub(crate) segment_secs: f64,
    /// Seconds of the synthetic feed to publish (1 to 86400).
    #[arg(long, env = "SWARMCAST_DEMO_SECS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) seconds: u64,
    /// Bitrate of the synthetic feed (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", default_value = "1M", value_parser = crate::parse::parse_bitrate)]
    pub(crate) bitrate: u64,
    /// Seconds between viewers joining (0 to 3600).
    #[arg(long, env = "SWARMCAST_STAGGER", default_value_t = 2.0, value_parser = crate::parse::parse_stagger)]
    pub(crate) stagger: f64,
    /// Keep every file (segments, outputs, counters) in this directory [default: a temporary one].
    #[arg(long, env = "SWARMCAST_DEMO_DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Cap the publisher's upload, bytes/s (at least 32768).
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    pub(crate) upload_limit: Option<u32>,
}

/// Arguments of `swarmcast report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// A results directory written by `swarmcast lab`.
    pub(crate) dir: PathBuf,
}

/// Arguments of `swarmcast scale-model`.
#[derive(Debug, Args)]
pub(crate) struct ScaleModelArgs {
    /// Results directories written by `swarmcast lab`.
    #[arg(required = true)]
    pub(crate) dirs: Vec<PathBuf>,
}

/// Arguments of `swarmcast synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Output file, or `-` for stdout.
    #[arg(long, short, env = "SWARMCAST_SYNTH_OUT", default_value = "-")]
    pub(crate) out: PathBuf,
    /// Bitrate in bit/s (suffixes k and M allowed; 8k to 1000M), padded with null packets [default: the
    /// fixture's own, about 135k].
    #[arg(long, env = "SWARMCAST_BITRATE", value_parser = crate::parse::parse_bitrate)]
    pub(crate) bitrate: Option<u64>,
    /// Stop after this many seconds of media (0.1 s to a year) [default: endless].
    #[arg(long, env = "SWARMCAST_SYNTH_SECS", value_parser = crate::parse::parse_feed_secs)]
    pub(crate) seconds: Option<f64>,
    /// Pace the output in real time, as a live encoder would.
    #[arg(long, env = "SWARMCAST_REALTIME")]
    pub(crate) realtime: bool,
    /// PTS of the first frame, in 90 kHz ticks (near 8589934592 to test wrap-around).
    #[arg(long, env = "SWARMCAST_START_PTS", default_value_t = 0)]
    pub(crate) start_pts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmcast_core::gossip::GossipConfig;

    /// The flags' defaults are the gossip's own (written twice: clap needs a literal).
    #[test]
    fn manifest_push_defaults_are_the_gossips() {
        let Command::Publish(p) = Cli::parse_from(["swarmcast", "publish", "--synth"]).command
        else {
            panic!("not publish");
        };
        assert_eq!(
            usize::from(p.manifest_push),
            GossipConfig::publisher().push_to
        );
        let Command::Watch(w) = Cli::parse_from(["swarmcast", "watch", "swarmcast:?pk=x"]).command
        else {
            panic!("not watch");
        };
        assert_eq!(usize::from(w.manifest_push), GossipConfig::viewer().push_to);
        assert!(Cli::try_parse_from(["swarmcast", "watch", "l", "--manifest-push", "0"]).is_err());
    }

    /// `watch` carries peers unless `--no-carried-peers` says otherwise; the old opt-in flag
    /// still parses, and the last of the two given wins.
    #[test]
    fn carried_peers_are_on_unless_turned_off() {
        let off = |args: &[&str]| {
            let all = [&["swarmcast", "watch", "swarmcast:?pk=x"], args].concat();
            let Command::Watch(w) = Cli::parse_from(all).command else {
                panic!("not watch");
            };
            w.no_carried_peers
        };
        assert!(!off(&[]));
        assert!(!off(&["--carried-peers"]));
        assert!(off(&["--no-carried-peers"]));
        assert!(!off(&["--no-carried-peers", "--carried-peers"]));
        assert!(off(&["--carried-peers", "--no-carried-peers"]));
    }
}
