//! The `swarmcast` command line.
//!
//! Thin by design (as ripgrep's root package): it parses flags (each also read from a `SWARMCAST_*`
//! environment variable), starts logging and the runtime, turns Ctrl-C into a cancellation token,
//! and calls the libraries. The verbs' glue lives in `commands.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// `println!` for a verb's output: a closed stdout (its reader went away, as `| head` does) ends
/// the output, and the process exits quietly with success, as ripgrep does.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for a verb's output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod commands;

/// Writes to stdout for [`outln!`]: on a closed pipe, exits with success; on any other error,
/// exits saying why.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// Live broadcasting over BitTorrent by minute swarming.
#[derive(Debug, Parser)]
#[command(name = "swarmcast", version, about, propagate_version = true)]
struct Cli {
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
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// Write the synthetic MPEG-TS feed (a looped, playable H.264 GOP; a keyframe every second).
    Synth(SynthArgs),
}

/// Arguments of `swarmcast keygen`.
#[derive(Debug, Args)]
struct KeygenArgs {
    /// Where to write the secret key (a new file; never overwritten).
    #[arg(
        long,
        short,
        env = "SWARMCAST_KEYGEN_OUT",
        default_value = "swarmcast.key"
    )]
    out: PathBuf,
}

/// Arguments of `swarmcast torrent`.
#[derive(Debug, Args)]
struct TorrentArgs {
    /// The file to describe (its base name becomes the torrent's name).
    file: PathBuf,
    /// Piece length in bytes: a power of two from 16384 to 16777216 [default: the smallest giving
    /// at most 1024 pieces].
    #[arg(long, env = "SWARMCAST_PIECE_LENGTH")]
    piece_length: Option<u64>,
    /// Tracker announce URL (repeatable; the first becomes `announce`).
    #[arg(long = "tracker", env = "SWARMCAST_TRACKERS", value_delimiter = ',')]
    trackers: Vec<String>,
    /// Output path [default: FILE.torrent].
    #[arg(long, short, env = "SWARMCAST_TORRENT_OUT")]
    out: Option<PathBuf>,
}

/// Arguments of `swarmcast inspect`.
#[derive(Debug, Args)]
struct InspectArgs {
    /// A file, an http(s) URL, or a stream link (`swarmcast:?pk=...`, which also pins the key).
    target: String,
    /// Stream public key (base32) to verify a manifest against.
    #[arg(long, env = "SWARMCAST_STREAM_KEY")]
    key: Option<String>,
}

/// Arguments of `swarmcast segment`.
#[derive(Debug, Args)]
struct SegmentArgs {
    /// Input file [default: stdin]. Not with --watch-dir.
    #[arg(conflicts_with = "watch_dir")]
    input: Option<PathBuf>,
    /// Directory the segments are written to, as `<number as 8 digits>.ts`.
    #[arg(long, short, env = "SWARMCAST_SEGMENT_OUT")]
    out: PathBuf,
    /// Target segment length in seconds (fractions allowed; 0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 60.0, value_parser = commands::parse_segment_secs)]
    segment_secs: f64,
    /// Take the .ts files an encoder finishes in this directory as segments, one each, in order.
    #[arg(long, env = "SWARMCAST_WATCH_DIR")]
    watch_dir: Option<PathBuf>,
    #[command(flatten)]
    feed: FeedArgs,
    /// Number of the first segment.
    #[arg(long, env = "SWARMCAST_FIRST_NUMBER", default_value_t = 0)]
    first_number: u64,
}

/// How a feed file is read: shared by `segment` and `publish`.
#[derive(Debug, Args)]
struct FeedArgs {
    /// Keep reading the input file as it grows, until --idle-timeout passes with no new data.
    #[arg(long, env = "SWARMCAST_FOLLOW", requires = "input")]
    follow: bool,
    /// With --follow: seconds without new data after which the input is over (0.1 s to a year).
    #[arg(long, env = "SWARMCAST_IDLE_TIMEOUT", default_value_t = 10.0, value_parser = commands::parse_feed_secs)]
    idle_timeout: f64,
    /// Input format: `ts` cuts at keyframes, `raw` by wall clock, `auto` decides from the first bytes.
    #[arg(long, env = "SWARMCAST_FORMAT", value_enum, default_value_t = InputFormat::Auto)]
    format: InputFormat,
}

/// `--format`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    /// TS if three packets in a row line up.
    Auto,
    /// MPEG-TS: cut at keyframes.
    Ts,
    /// Anything else: cut by wall clock.
    Raw,
}

impl FeedArgs {
    fn format(&self) -> swarmcast_segmenter::source::Format {
        use swarmcast_segmenter::source::Format;
        match self.format {
            InputFormat::Auto => Format::Auto,
            InputFormat::Ts => Format::Ts,
            InputFormat::Raw => Format::Raw,
        }
    }

    /// The idle timeout when following, `None` when not.
    fn follow(&self) -> Option<std::time::Duration> {
        self.follow
            .then(|| std::time::Duration::from_secs_f64(self.idle_timeout))
    }
}

/// Changes of the librqbit patch series turned off (`--librqbit-off`).
#[derive(Clone, Debug, Default)]
struct LibrqbitOff(Vec<swarmcast_swarm::tweaks::SwarmTweak>);

/// Arguments of `swarmcast publish`.
#[derive(Debug, Args)]
struct PublishArgs {
    /// Input file [default: stdin]. Not with --watch-dir or --synth.
    #[arg(conflicts_with_all = ["watch_dir", "synth"])]
    input: Option<PathBuf>,
    /// Take the .ts files an encoder finishes in this directory as segments.
    #[arg(long, env = "SWARMCAST_WATCH_DIR", conflicts_with = "synth")]
    watch_dir: Option<PathBuf>,
    /// Publish the synthetic feed (paced in real time) instead of an input.
    #[arg(long, env = "SWARMCAST_SYNTH")]
    synth: bool,
    /// With --synth: bitrate in bit/s (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", value_parser = commands::parse_bitrate, requires = "synth")]
    bitrate: Option<u64>,
    /// With --synth: stop after this many seconds of media (0.1 s to a year).
    #[arg(long, env = "SWARMCAST_SYNTH_SECS", value_parser = commands::parse_feed_secs, requires = "synth")]
    synth_secs: Option<f64>,
    #[command(flatten)]
    feed: FeedArgs,
    /// The stream's secret key file (created with mode 0600 if missing).
    #[arg(long, env = "SWARMCAST_KEY", default_value = "swarmcast.key")]
    key: PathBuf,
    /// Data directory: segments and state go to DIR/<first 8 characters of the key>/.
    #[arg(long, env = "SWARMCAST_DATA_DIR", default_value = "swarmcast-data")]
    data_dir: PathBuf,
    /// BitTorrent listen address (port 0: any free port).
    #[arg(long, env = "SWARMCAST_LISTEN", default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Peer address viewers reach this publisher at, HOST:PORT [default: --listen, unless it is
    /// an unspecified address such as 0.0.0.0].
    #[arg(long, env = "SWARMCAST_PUBLIC_ADDR")]
    public_addr: Option<String>,
    /// HTTP listen address (manifest, torrents, segments, tracker, metrics, status page).
    #[arg(long, env = "SWARMCAST_HTTP", default_value = "127.0.0.1:8080")]
    http: std::net::SocketAddr,
    /// Base URL viewers reach the HTTP server at [default: http://<bound HTTP address>/].
    #[arg(long, env = "SWARMCAST_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// A mirror's manifest URL, added to the stream link (repeatable).
    #[arg(
        long = "mirror-url",
        env = "SWARMCAST_MIRROR_URLS",
        value_delimiter = ','
    )]
    mirror_urls: Vec<url::Url>,
    /// Also write every manifest and torrent to this directory (serve it statically as a mirror).
    #[arg(long, env = "SWARMCAST_MIRROR_DIR")]
    mirror_dir: Option<PathBuf>,
    /// Target segment length in seconds (fractions allowed; 0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 60.0, value_parser = commands::parse_segment_secs)]
    segment_secs: f64,
    /// Segments listed in the manifest.
    #[arg(long, env = "SWARMCAST_WINDOW", default_value_t = 5)]
    window: usize,
    /// Seconds a segment stays seeded after leaving the window (0.1 s to a day) [default: two
    /// segment lengths].
    #[arg(long, env = "SWARMCAST_GRACE", value_parser = commands::parse_grace)]
    grace: Option<f64>,
    /// Seconds to keep serving after the end of the stream (0 to a day) [default: window x
    /// segment length].
    #[arg(long, env = "SWARMCAST_LINGER", value_parser = commands::parse_linger)]
    linger: Option<f64>,
    /// Keep segment files after they are forgotten.
    #[arg(long, env = "SWARMCAST_KEEP_SEGMENTS")]
    keep_segments: bool,
    /// External tracker announce URL, put in every torrent and the manifest (repeatable).
    #[arg(long = "tracker", env = "SWARMCAST_TRACKERS", value_delimiter = ',')]
    trackers: Vec<String>,
    /// Do not run the embedded tracker.
    #[arg(long, env = "SWARMCAST_NO_EMBEDDED_TRACKER")]
    no_embedded_tracker: bool,
    /// List every announcing peer at once, without first checking that it can be reached by
    /// connecting back (the NAT check: peers behind NAT, which nobody can dial, stay out of the
    /// lists others dial).
    #[arg(long, env = "SWARMCAST_NO_NAT_CHECK")]
    no_nat_check: bool,
    /// How long the tracker's connect-back check waits before calling a peer unreachable,
    /// seconds (0.1 to 60).
    #[arg(long, env = "SWARMCAST_NAT_CHECK_TIMEOUT", default_value_t = 2.0, value_parser = commands::parse_nat_check_timeout)]
    nat_check_timeout: f64,
    /// List reachable viewers to each other even when most viewers are behind a NAT. By default,
    /// while at least as many viewers failed the NAT check as passed it, a reachable viewer is
    /// listed only the publisher: the NATed viewers dial it, its uplink carries the copies only it
    /// can carry, and it gets its own copies from them.
    #[arg(long, env = "SWARMCAST_LIST_REACHABLE_TO_REACHABLE")]
    list_reachable_to_reachable: bool,
    /// TCP hole punching: the tracker lists viewers that failed the NAT check to each other at a
    /// port of this range (FIRST-LAST, or off), the same for both ends and changing with the
    /// segment; viewers with the same `watch --punch-ports` (the default is the same) dial each
    /// other from it, and NATs that keep ports let them connect (docs/publish.md, the tracker).
    #[arg(long, env = "SWARMCAST_PUNCH_PORTS", default_value = "52000-52063", value_parser = commands::parse_punch_ports)]
    punch_ports: commands::PunchPorts,
    /// With --upload-limit: most segment files sent over HTTP at once while the swarm is
    /// uploading (viewers' fallbacks); more are answered 503, retry in a second. 0: no limit.
    #[arg(long, env = "SWARMCAST_FALLBACK_SLOTS", default_value_t = swarmcast_publisher::DEFAULT_FALLBACK_SLOTS)]
    fallback_slots: usize,
    /// Tracker re-announce interval in seconds (1 to 3600).
    #[arg(long, env = "SWARMCAST_TRACKER_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    tracker_interval: u64,
    /// Tracker `min interval` in seconds (1 to --tracker-interval): how often a viewer may
    /// re-announce, and so how soon it hears of peers that joined a segment's swarm after it.
    #[arg(long, env = "SWARMCAST_TRACKER_MIN_INTERVAL", default_value_t = swarmcast_publisher::DEFAULT_TRACKER_MIN_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=3600))]
    tracker_min_interval: u64,
    /// Piece length in bytes, 16384 to 16777216 [default: the smallest power of two from 32 KiB giving at most 1024 pieces].
    #[arg(long, env = "SWARMCAST_PIECE_LENGTH")]
    piece_length: Option<u64>,
    /// Upload limit, bytes per second on the wire (at least 32768): with the wire seeder, one
    /// paced budget for everything the publisher sends (pieces, manifests, tracker answers, and
    /// HTTP segment bodies at low priority), each write counted with its packets' TCP/IP headers
    /// and one packet more; set it a little under the uplink (90%). With `--seeder librqbit`, the
    /// session and the HTTP server each get this limit.
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    upload_limit: Option<u32>,
    /// Super-seeding: reveal every piece of a segment (plain seeding) this many seconds after its
    /// first copy is out (0.1 to 3600; with `--seeder librqbit`: after seeding starts), or `never` [default:
    /// never; viewers that miss a piece fall back to HTTP]. Until then each viewer is offered
    /// pieces nobody has yet.
    #[arg(long, env = "SWARMCAST_SUPER_SEED_REVEAL", value_parser = commands::parse_reveal)]
    super_seed_reveal: Option<std::time::Duration>,
    /// Super-seeding with the wire seeder: a piece written whole to a viewer whose TCP has not
    /// acknowledged it this many seconds (0.1 to 60) later is offered to another viewer, or `off` (a piece
    /// stuck on its way to its one holder is then lost to the swarm until that viewer leaves).
    #[arg(long, env = "SWARMCAST_LATE_PIECE", default_value = "3", value_parser = commands::parse_late_piece)]
    late_piece: commands::LatePiece,
    /// With the wire seeder: connections from one IP address served at once (0: no cap). One
    /// address that opens connections and sends nothing cannot fill the seeder's slots (at
    /// most 1,024, from the file limit); raise it (or 0) when many viewers share an address (a
    /// lab on loopback, a large NAT). An IPv6 host is counted by its /64.
    #[arg(long, env = "SWARMCAST_PEER_CONNS_PER_ADDRESS", default_value_t = swarmcast_swarm::wire::PER_ADDRESS)]
    peer_conns_per_address: usize,
    /// HTTP connections open at once [default: what the file limit leaves once segment files,
    /// the peer port and NAT checks have their share, at most 4,096]. At the cap, the
    /// connection idle the longest is closed for a new one.
    #[arg(long, env = "SWARMCAST_HTTP_MAX_CONNS")]
    http_max_conns: Option<usize>,
    /// HTTP connections from one IP address at once (0: no cap); raise it (or 0) when many
    /// viewers share an address (a lab on loopback, a large NAT).
    #[arg(long, env = "SWARMCAST_HTTP_CONNS_PER_ADDRESS", default_value_t = swarmcast_publisher::serve::PER_ADDRESS)]
    http_conns_per_address: usize,
    /// Turn off changes of swarmcast's librqbit patch series, for measurement: comma-separated
    /// names (have, wake, random, window, cancel, nodelay, superseed, steal, pace, slots), or all
    /// (docs/librqbit.md).
    #[arg(long, env = "SWARMCAST_LIBRQBIT_OFF", default_value = "", hide_default_value = true, value_parser = commands::parse_librqbit_off)]
    librqbit_off: LibrqbitOff,
    /// What seeds the segments: swarmcast's own seeder on librqbit's wire-protocol crate
    /// (super-seeding in swarmcast), or a librqbit session (super-seeding by librqbit patch 0007);
    /// docs/librqbit.md compares the two.
    #[arg(long, env = "SWARMCAST_SEEDER", value_enum, default_value_t = SeederArg::Wire)]
    seeder: SeederArg,
    /// Write counters as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    metrics_out: Option<PathBuf>,
    /// Node name in the counters.
    #[arg(long, env = "SWARMCAST_NODE", default_value = "publisher")]
    node: String,
    /// Testing: list this segment in the manifest but never seed it.
    #[arg(long, hide = true, env = "SWARMCAST_WITHHOLD_SEGMENT")]
    withhold_segment: Option<u64>,
    /// Testing: fail to publish the segment the input gives this number, as an I/O error would.
    #[arg(long, hide = true, env = "SWARMCAST_FAIL_SEGMENT")]
    fail_segment: Option<u64>,
}

/// Arguments of `swarmcast watch`.
#[derive(Debug, Args)]
struct WatchArgs {
    /// The stream link (`swarmcast:?pk=...&xs=...`).
    link: String,
    /// Output: `-` for stdout (pipe it to mpv, VLC or ffplay), or a file.
    #[arg(
        long,
        short,
        env = "SWARMCAST_OUT",
        default_value = "-",
        conflicts_with = "http_out"
    )]
    out: PathBuf,
    /// Replace an earlier recording in the --out file (without it, a file that exists and is
    /// not empty is refused).
    #[arg(long, env = "SWARMCAST_OVERWRITE")]
    overwrite: bool,
    /// Serve the stream at http://ADDR/ instead (open it in mpv, VLC or ffplay).
    #[arg(long, env = "SWARMCAST_HTTP_OUT")]
    http_out: Option<std::net::SocketAddr>,
    /// BitTorrent listen address (other viewers fetch from here).
    #[arg(long, env = "SWARMCAST_LISTEN", default_value = "0.0.0.0:0")]
    listen: std::net::SocketAddr,
    /// Segments fetched ahead: every one from the next to play on, up to this many of those the
    /// manifest lists (segments that left the window, still being finished, do not count).
    #[arg(long, env = "SWARMCAST_PREFETCH", default_value_t = swarmcast_viewer::schedule::DEFAULT_PREFETCH)]
    prefetch: usize,
    /// Playout delay in seconds (0 to 600) [default: twice the first segment's fetch time, 0.25 to 2.5 s,
    /// plus the HTTP fallback margin (--fallback-margin)].
    #[arg(long, env = "SWARMCAST_DELAY", value_parser = commands::parse_play_secs)]
    delay: Option<f64>,
    /// Start at the oldest segment in the window instead of the live edge.
    #[arg(long, env = "SWARMCAST_FROM_START")]
    from_start: bool,
    /// Never fetch a late segment over HTTP.
    #[arg(long, env = "SWARMCAST_NO_HTTP_FALLBACK")]
    no_http_fallback: bool,
    /// Seconds before a deadline at which a late segment is fetched over HTTP (0 to 600; the
    /// automatic delay includes it).
    #[arg(long, env = "SWARMCAST_FALLBACK_MARGIN", default_value_t = 0.5, value_parser = commands::parse_play_secs)]
    fallback_margin: f64,
    /// Where segments are kept while in the window [default: a temporary directory].
    #[arg(long, env = "SWARMCAST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Keep segment files after they leave the window (with --data-dir).
    #[arg(long, env = "SWARMCAST_KEEP_SEGMENTS")]
    keep_segments: bool,
    /// Write counters as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    metrics_out: Option<PathBuf>,
    /// Node name in the counters.
    #[arg(long, env = "SWARMCAST_NODE", default_value = "viewer")]
    node: String,
    /// Upload limit, bytes per second (at least 32768).
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    upload_limit: Option<u32>,
    /// Download limit, bytes per second (at least 32768).
    #[arg(long, env = "SWARMCAST_DOWNLOAD_LIMIT")]
    download_limit: Option<u32>,
    /// Turn off changes of swarmcast's librqbit patch series, for measurement: comma-separated
    /// names (have, wake, random, window, cancel, nodelay, superseed, steal, pace, slots), or all
    /// (docs/librqbit.md).
    #[arg(long, env = "SWARMCAST_LIBRQBIT_OFF", default_value = "", hide_default_value = true, value_parser = commands::parse_librqbit_off)]
    librqbit_off: LibrqbitOff,
    /// How segments are fetched: `swarm`, or `http` (plain HTTP from the publisher, the HLS way:
    /// the lab's baseline; nothing is re-seeded).
    #[arg(long, env = "SWARMCAST_TRANSPORT", value_enum, default_value_t = TransportArg::Swarm)]
    transport: TransportArg,
    /// Always fetch whole manifests, never deltas (for measurement; docs/manifest.md, "Deltas").
    #[arg(long, env = "SWARMCAST_NO_MANIFEST_DELTAS")]
    no_manifest_deltas: bool,
    /// Most peers connected at once in each segment's swarm, the publisher included [default:
    /// librqbit's 128]. Each connection costs its handshakes and a Have per piece each way.
    #[arg(long, env = "SWARMCAST_PEER_LIMIT", value_parser = clap::value_parser!(u16).range(2..))]
    peer_limit: Option<u16>,
    /// Under `--upload-limit`, serve other viewers the segment that plays next before the ones
    /// after it (earliest deadline first). Fewer stalls with 2 s segments, more with 10 s ones
    /// (docs/watch.md). Needs `--upload-limit`: without one the kernel's queue decides the order.
    #[arg(long, env = "SWARMCAST_URGENT_FIRST")]
    urgent_first: bool,
    /// TCP hole punching: dial a peer the tracker lists at a port of this range (FIRST-LAST, or
    /// off) from that same local port, as the publisher's `--punch-ports` (the same default)
    /// expects (docs/watch.md).
    #[arg(long, env = "SWARMCAST_PUNCH_PORTS", default_value = "52000-52063", value_parser = commands::parse_punch_ports)]
    punch_ports: commands::PunchPorts,
}

/// `--transport`.
/// `publish --seeder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SeederArg {
    /// swarmcast's wire seeder (super-seeding in swarmcast).
    Wire,
    /// A librqbit session (super-seeding: librqbit patch 0007).
    Librqbit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    /// From the swarm, re-seeding to other viewers, with HTTP fallback when late.
    Swarm,
    /// Plain HTTP from the publisher.
    Http,
}

impl From<TransportArg> for swarmcast_viewer::Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Swarm => Self::Swarm,
            TransportArg::Http => Self::Http,
        }
    }
}

/// Arguments of `swarmcast demo`.
#[derive(Debug, Args)]
struct DemoArgs {
    /// Viewers.
    #[arg(long, env = "SWARMCAST_VIEWERS", default_value_t = 3)]
    viewers: usize,
    /// Segment length in seconds (0.1 to 3600).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 2.0, value_parser = commands::parse_segment_secs)]
    segment_secs: f64,
    /// Seconds of the synthetic feed to publish (1 to 86400).
    #[arg(long, env = "SWARMCAST_DEMO_SECS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    /// Bitrate of the synthetic feed (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", default_value = "1M", value_parser = commands::parse_bitrate)]
    bitrate: u64,
    /// Seconds between viewers joining (0 to 3600).
    #[arg(long, env = "SWARMCAST_STAGGER", default_value_t = 2.0, value_parser = commands::parse_stagger)]
    stagger: f64,
    /// Keep every file (segments, outputs, counters) in this directory [default: a temporary one].
    #[arg(long, env = "SWARMCAST_DEMO_DIR")]
    dir: Option<PathBuf>,
    /// Cap the publisher's upload, bytes/s (at least 32768).
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    upload_limit: Option<u32>,
}

/// Arguments of `swarmcast lab`.
#[derive(Debug, Args)]
struct LabArgs {
    /// Segment lengths to sweep, seconds (comma-separated).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", value_delimiter = ',', default_value = "2,10,60", value_parser = commands::parse_secs)]
    segment_secs: Vec<f64>,
    /// Audience sizes to sweep (comma-separated).
    #[arg(
        long,
        env = "SWARMCAST_VIEWERS",
        value_delimiter = ',',
        default_value = "1,5,20"
    )]
    viewers: Vec<usize>,
    /// Transports: `swarm`, and `http` as the baseline (comma-separated).
    #[arg(
        long,
        env = "SWARMCAST_TRANSPORTS",
        value_delimiter = ',',
        default_value = "swarm,http"
    )]
    transports: Vec<swarmcast_lab::plan::Transport>,
    /// Variants of swarmcast's librqbit patch series for the swarm runs (comma-separated):
    /// `patched` (every change on), `upstream` (every change off), `no-<change>[+<change>...]`
    /// or `only-<change>[+...]`; changes: have, wake, random, window, cancel, nodelay, superseed,
    /// steal, pace, slots.
    /// A `librqbit-` prefix (or `librqbit` alone, for patched) runs the publisher with `--seeder
    /// librqbit` (`upstream` implies it); `wire-` names the default seeder explicitly. A suffix
    /// `@reveal=SECS` or `@reveal=never` sets the publisher's `--super-seed-reveal`.
    #[arg(
        long,
        env = "SWARMCAST_VARIANTS",
        value_delimiter = ',',
        default_value = "patched"
    )]
    variants: Vec<swarmcast_lab::plan::Variant>,
    /// Runs of every configuration.
    #[arg(long, env = "SWARMCAST_REPEATS", default_value_t = 1)]
    repeats: u32,
    /// Bitrate of the synthetic feed (k and M suffixes allowed; 8k to 1000M).
    #[arg(long, env = "SWARMCAST_BITRATE", default_value = "1M", value_parser = commands::parse_bitrate)]
    bitrate: u64,
    /// Seconds of media per run [default: max(5 segments, 60 s)].
    #[arg(long, env = "SWARMCAST_DURATION", value_parser = commands::parse_secs)]
    duration: Option<f64>,
    /// Join pattern: all at once, staggered (one every --join-every), or churn (every
    /// --join-every the longest-running viewer leaves and a new one joins).
    #[arg(long, env = "SWARMCAST_JOIN", value_enum, default_value_t = JoinArg::All)]
    join: JoinArg,
    /// Seconds between joins (staggered) or between leave-and-joins (churn).
    #[arg(long, env = "SWARMCAST_JOIN_EVERY", default_value_t = 2.0, value_parser = commands::parse_secs)]
    join_every: f64,
    /// The publisher's upload caps to sweep (comma-separated): bytes/s (k, M suffixes), a multiple
    /// of the bitrate (`1.5x`), or `none`. At least 32768 bytes/s. Applies to the swarm and to
    /// HTTP alike; on loopback the processes limit their payload, on an emulated network the
    /// link limits wire bytes.
    #[arg(
        long,
        env = "SWARMCAST_PUBLISHER_UPLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    publisher_upload_limit: Vec<commands::Cap>,
    /// Each viewer's upload caps to sweep (as --publisher-upload-limit).
    #[arg(
        long,
        env = "SWARMCAST_VIEWER_UPLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    viewer_upload_limit: Vec<commands::Cap>,
    /// Each viewer's download caps to sweep (as --publisher-upload-limit).
    #[arg(
        long,
        env = "SWARMCAST_VIEWER_DOWNLOAD_LIMIT",
        value_delimiter = ',',
        default_value = "none"
    )]
    viewer_download_limit: Vec<commands::Cap>,
    /// Where nodes run: `loopback` (processes on 127.0.0.1), `emulated` (each node in its own
    /// network namespace behind an emulated access link: caps, round trip, jitter, loss, NAT;
    /// needs root), or `plain` (the same namespaces with plain kernel forwarding: the control).
    #[arg(long, env = "SWARMCAST_NET", value_enum, default_value_t = NetArg::Loopback)]
    net: NetArg,
    /// Round-trip times to sweep, ms (comma-separated; half each way). Needs --net emulated.
    #[arg(long, env = "SWARMCAST_RTT", value_delimiter = ',')]
    rtt: Option<Vec<f64>>,
    /// Jitter per direction to sweep, ms: each packet's delay varies uniformly by up to this
    /// much, without reordering a path. Needs --net emulated.
    #[arg(long, env = "SWARMCAST_JITTER", value_delimiter = ',')]
    jitter: Option<Vec<f64>>,
    /// Loss per direction to sweep, percent (end to end). Needs --net emulated.
    #[arg(long, env = "SWARMCAST_LOSS", value_delimiter = ',')]
    loss: Option<Vec<f64>>,
    /// Shares of viewers behind NAT to sweep, 0 to 1 (each behind its own NAT: it can dial out,
    /// nobody can dial in). Needs --net emulated (or plain).
    #[arg(long, env = "SWARMCAST_NAT", value_delimiter = ',')]
    nat: Option<Vec<f64>>,
    /// The queue behind each emulated cap, ms at the cap's rate (drop-tail).
    #[arg(long, env = "SWARMCAST_QUEUE_MS", default_value_t = swarmcast_lab::plan::DEFAULT_QUEUE_MS)]
    queue_ms: f64,
    /// Share of the viewers behind NAT whose NAT is symmetric, 0 to 1: a random port for every
    /// connection (as carrier-grade NATs do), so hole punching fails through it; the others keep
    /// the host's port (docs/netlab.md). Not swept.
    #[arg(long, env = "SWARMCAST_SYMMETRIC_NAT", default_value_t = 0.0)]
    symmetric_nat: f64,
    /// On an emulated network, also give each capped process its own limiter at this share of
    /// its link's cap (--upload-limit, --download-limit), as a user who told swarmcast their
    /// upload would. Default: only the links limit.
    #[arg(long, env = "SWARMCAST_SELF_LIMIT")]
    self_limit: Option<f64>,
    /// Calibrate the emulated network instead of running a sweep: round trip, loss and
    /// throughput between two emulated hosts, against what was asked (--rtt, --loss, and the
    /// first --viewer-upload-limit as the cap).
    #[arg(long)]
    net_check: bool,
    /// Remove every namespace (and its processes) that any emulated run left behind, and exit.
    #[arg(long)]
    cleanup: bool,
    /// Swarm viewers never fetch late segments over HTTP.
    #[arg(long, env = "SWARMCAST_NO_HTTP_FALLBACK")]
    no_http_fallback: bool,
    /// Run one run at a time, instead of the swarm and HTTP runs of a configuration side by side.
    #[arg(long, env = "SWARMCAST_ONE_AT_A_TIME")]
    one_at_a_time: bool,
    /// Results directory [default: lab-results/<unix time>].
    #[arg(long, short, env = "SWARMCAST_LAB_OUT")]
    out: Option<PathBuf>,
    /// Keep segment files and viewer outputs (large) in the results.
    #[arg(long, env = "SWARMCAST_KEEP_MEDIA")]
    keep_media: bool,
    /// Print the plan and its estimated time, and run nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `--net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum NetArg {
    /// Every process on 127.0.0.1.
    Loopback,
    /// Network namespaces behind emulated links.
    Emulated,
    /// Network namespaces, plain forwarding (the control).
    Plain,
}

/// `--join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum JoinArg {
    /// Every viewer starts with the publisher.
    All,
    /// One viewer every --join-every seconds.
    Staggered,
    /// Viewers leave and join at a set rate.
    Churn,
}

/// Arguments of `swarmcast report`.
#[derive(Debug, Args)]
struct ReportArgs {
    /// A results directory written by `swarmcast lab`.
    dir: PathBuf,
}

/// Arguments of `swarmcast synth`.
#[derive(Debug, Args)]
struct SynthArgs {
    /// Output file, or `-` for stdout.
    #[arg(long, short, env = "SWARMCAST_SYNTH_OUT", default_value = "-")]
    out: PathBuf,
    /// Bitrate in bit/s (suffixes k and M allowed; 8k to 1000M), padded with null packets [default: the
    /// fixture's own, about 135k].
    #[arg(long, env = "SWARMCAST_BITRATE", value_parser = commands::parse_bitrate)]
    bitrate: Option<u64>,
    /// Stop after this many seconds of media (0.1 s to a year) [default: endless].
    #[arg(long, env = "SWARMCAST_SYNTH_SECS", value_parser = commands::parse_feed_secs)]
    seconds: Option<f64>,
    /// Pace the output in real time, as a live encoder would.
    #[arg(long, env = "SWARMCAST_REALTIME")]
    realtime: bool,
    /// PTS of the first frame, in 90 kHz ticks (near 8589934592 to test wrap-around).
    #[arg(long, env = "SWARMCAST_START_PTS", default_value_t = 0)]
    start_pts: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every socket is a file: take the hard limit, as servers do (1,024 is a common soft one).
    // The publisher shares what it gets between its listeners and its pipeline.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if let Err(e) = init_logging(&cli.log) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The first Ctrl-C (or SIGTERM) asks for a graceful end; the second for an immediate one.
    let shutdown = swarmcast_tasks::Shutdown::default();
    let cancel = shutdown.stop.clone();
    let abort = shutdown.abort.clone();
    // `publish` ends at once on its own when aborted (it stops seeding and serving, keeping
    // what is published); it gets this long before it is dropped like any other verb.
    let abort_grace = if matches!(cli.command, Command::Publish(_)) {
        std::time::Duration::from_secs(2)
    } else {
        std::time::Duration::ZERO
    };
    let command = cli.command;
    let (cancel_in, shutdown_in) = (cancel.clone(), shutdown.clone());
    let result = runtime.block_on(async move {
        let (cancel, shutdown) = (cancel_in, shutdown_in);
        let signals = shutdown.clone();
        let tasks = swarmcast_tasks::Tasks::new("swarmcast");
        tasks.spawn("signals", async move {
            for round in 0.. {
                if !wait_for_signal().await {
                    return;
                }
                if round == 0 {
                    tracing::info!("interrupted: ending gracefully (again to exit at once)");
                    signals.stop.cancel();
                } else {
                    signals.abort.cancel();
                    return;
                }
            }
        });
        let command = async move {
            match command {
                Command::Keygen(args) => commands::keygen(&args.out),
                Command::Torrent(args) => commands::torrent(
                    &args.file,
                    args.piece_length,
                    args.trackers,
                    args.out.as_deref(),
                ),
                Command::Inspect(args) => {
                    commands::inspect(&args.target, args.key.as_deref(), &cancel).await
                }
                Command::Segment(args) => commands::segment(args, cancel.clone()).await,
                Command::Synth(args) => commands::synth(args, cancel.clone()).await,
                Command::Publish(args) => commands::publish(*args, shutdown.clone()).await,
                Command::Watch(args) => commands::watch(*args, cancel.clone()).await,
                Command::Demo(args) => commands::demo(args, cancel.clone()).await,
                Command::Lab(args) => commands::lab(*args, cancel.clone()).await,
                Command::Report(args) => commands::report(&args.dir),
            }
        };
        // A second Ctrl-C exits at once in every verb: the command is dropped, which kills the
        // processes it started and removes its network namespaces and temporary directories
        // (each is owned by a guard that does so when dropped).
        let result = tokio::select! {
            r = command => r,
            () = async {
                abort.cancelled().await;
                tokio::time::sleep(abort_grace).await;
            } => Err(anyhow::anyhow!("interrupted twice: stopped at once")),
        };
        tasks.shutdown().await;
        result
    });
    // Tasks still running are dropped; a blocking one (a read of stdin) is not waited for long.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if cancel.is_cancelled() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Waits for Ctrl-C or SIGTERM; false if signals cannot be watched.
async fn wait_for_signal() -> bool {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return tokio::signal::ctrl_c().await.is_ok();
        };
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            _ = term.recv() => true,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.is_ok()
    }
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log {filter:?} is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}
