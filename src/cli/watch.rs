//! `swarmcast watch`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::LibrqbitOff;

/// Arguments of `swarmcast watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The stream link (`swarmcast:?pk=...&xs=...`).
    pub(crate) link: String,
    /// Output: `-` for stdout (pipe it to mpv, VLC or ffplay), or a file.
    #[arg(
        long,
        short,
        env = "SWARMCAST_OUT",
        default_value = "-",
        conflicts_with = "http_out"
    )]
    pub(crate) out: PathBuf,
    /// Replace an earlier recording in the --out file (without it, a file that exists and is
    /// not empty is refused).
    #[arg(long, env = "SWARMCAST_OVERWRITE")]
    pub(crate) overwrite: bool,
    /// Serve the stream at http://ADDR/ instead (open it in mpv, VLC or ffplay), with an HLS
    /// playlist at /live.m3u8, a page playing it at /watch, and /metrics (docs/players.md).
    #[arg(long, env = "SWARMCAST_HTTP_OUT")]
    pub(crate) http_out: Option<std::net::SocketAddr>,
    /// hls.js for the page at /watch (with --http-out) [default:
    /// node_modules/hls.js/dist/hls.min.js under the current directory, else under the
    /// executable's directory or one of its ancestors].
    #[arg(long, env = "SWARMCAST_HLS_JS")]
    pub(crate) hls_js: Option<PathBuf>,
    /// Serve /metrics and /status.json at http://ADDR/ when there is no --http-out (with it,
    /// they are served there and this is ignored).
    #[arg(long, env = "SWARMCAST_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Play into this player instead: a command line (split into words as a shell would) whose
    /// standard input gets the stream, e.g. 'mpv -', 'vlc -', 'ffplay -'. The viewer stops when
    /// the player exits; the player is stopped when the viewer does (docs/watch.md).
    #[arg(long, value_name = "CMD", env = "SWARMCAST_PLAYER", conflicts_with_all = ["out", "http_out"], value_parser = crate::parse::parse_player)]
    pub(crate) player: Option<crate::player::PlayerCommand>,
    /// No status line (it is shown only when stderr is a terminal). The variable takes 1, true,
    /// yes or on (0, false, no, off: the line is shown).
    #[arg(long, short, env = "SWARMCAST_QUIET", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) quiet: bool,
    /// BitTorrent listen address (other viewers fetch from here).
    #[arg(long, env = "SWARMCAST_LISTEN", default_value = "0.0.0.0:0")]
    pub(crate) listen: std::net::SocketAddr,
    /// Segments fetched ahead: every one from the next to play on, up to this many of those the
    /// manifest lists (segments that left the window, still being finished, do not count).
    #[arg(long, env = "SWARMCAST_PREFETCH", default_value_t = swarmcast_viewer::schedule::DEFAULT_PREFETCH)]
    pub(crate) prefetch: usize,
    /// Playout delay in seconds (0 to 600) [default: twice the first segment's fetch time, 0.25 to 2.5 s,
    /// plus the HTTP fallback margin (--fallback-margin)].
    #[arg(long, env = "SWARMCAST_DELAY", value_parser = crate::parse::parse_play_secs)]
    pub(crate) delay: Option<f64>,
    /// Start at the oldest segment in the window instead of the live edge.
    #[arg(long, env = "SWARMCAST_FROM_START")]
    pub(crate) from_start: bool,
    /// Never fetch a late segment over HTTP.
    #[arg(long, env = "SWARMCAST_NO_HTTP_FALLBACK")]
    pub(crate) no_http_fallback: bool,
    /// Seconds before a deadline at which a late segment is fetched over HTTP (0 to 600; the
    /// automatic delay includes it).
    #[arg(long, env = "SWARMCAST_FALLBACK_MARGIN", default_value_t = 0.5, value_parser = crate::parse::parse_play_secs)]
    pub(crate) fallback_margin: f64,
    /// Where segments are kept while in the window [default: a temporary directory].
    #[arg(long, env = "SWARMCAST_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep segment files after they leave the window (with --data-dir).
    #[arg(long, env = "SWARMCAST_KEEP_SEGMENTS")]
    pub(crate) keep_segments: bool,
    /// Write counters as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Node name in the counters.
    #[arg(long, env = "SWARMCAST_NODE", default_value = "viewer")]
    pub(crate) node: String,
    /// Upload limit, bytes per second (at least 32768).
    #[arg(long, env = "SWARMCAST_UPLOAD_LIMIT")]
    pub(crate) upload_limit: Option<u32>,
    /// Download limit, bytes per second (at least 32768).
    #[arg(long, env = "SWARMCAST_DOWNLOAD_LIMIT")]
    pub(crate) download_limit: Option<u32>,
    /// Turn off changes of swarmcast's librqbit patch series, for measurement: comma-separated
    /// names (have, wake, random, window, cancel, nodelay, superseed, steal, pace, slots), or all
    /// (docs/librqbit.md).
    #[arg(long, env = "SWARMCAST_LIBRQBIT_OFF", default_value = "", hide_default_value = true, value_parser = crate::parse::parse_librqbit_off)]
    pub(crate) librqbit_off: LibrqbitOff,
    /// How segments are fetched: `swarm`, or `http` (plain HTTP from the publisher, the HLS way:
    /// the lab's baseline; nothing is re-seeded).
    #[arg(long, env = "SWARMCAST_TRANSPORT", value_enum, default_value_t = TransportArg::Swarm)]
    pub(crate) transport: TransportArg,
    /// Always fetch whole manifests, never deltas (for measurement; docs/manifest.md, "Deltas").
    #[arg(long, env = "SWARMCAST_NO_MANIFEST_DELTAS")]
    pub(crate) no_manifest_deltas: bool,
    /// Most peers connected at once in each segment's swarm, the publisher included [default:
    /// librqbit's 128]. Each connection costs its handshakes and a Have per piece each way.
    #[arg(long, env = "SWARMCAST_PEER_LIMIT", value_parser = clap::value_parser!(u16).range(2..))]
    pub(crate) peer_limit: Option<u16>,
    /// Under `--upload-limit`, serve other viewers the segment that plays next before the ones
    /// after it (earliest deadline first). Fewer stalls with 2 s segments, more with 10 s ones
    /// (docs/watch.md). Needs `--upload-limit`: without one the kernel's queue decides the order.
    #[arg(long, env = "SWARMCAST_URGENT_FIRST")]
    pub(crate) urgent_first: bool,
    /// TCP hole punching: dial a peer the tracker lists at a port of this range (FIRST-LAST, or
    /// off) from that same local port, as the publisher's `--punch-ports` (the same default)
    /// expects (docs/watch.md).
    #[arg(long, env = "SWARMCAST_PUNCH_PORTS", default_value = "52000-52063", value_parser = crate::parse::parse_punch_ports)]
    pub(crate) punch_ports: crate::parse::PunchPorts,
    /// Take manifests from peers and pass them on, over a BitTorrent extension message on the
    /// connections of the segments' swarms (on by default with a link that is the key alone).
    #[arg(long, env = "SWARMCAST_SWARM_MANIFESTS")]
    pub(crate) swarm_manifests: bool,
    /// With the manifest exchange on: peers each newer manifest is pushed to (the others are
    /// told of it with a `have`).
    #[arg(long, env = "SWARMCAST_MANIFEST_PUSH", default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) manifest_push: u16,
    /// Find the stream on the mainline DHT, and each segment's peers there (on by default with
    /// a link that is the key alone; --dht-bootstrap also turns it on).
    #[arg(long, env = "SWARMCAST_DHT")]
    pub(crate) dht: bool,
    /// On the DHT path, find the stream's audience under one DHT key, dial the peers of the
    /// segments before at once, and look a segment up only while fewer than 4 peers are live
    /// (the default; docs/watch.md). Kept so that scripts written when it was opt-in still run.
    #[arg(
        long,
        env = "SWARMCAST_CARRIED_PEERS",
        overrides_with = "no_carried_peers"
    )]
    pub(crate) carried_peers: bool,
    /// On the DHT path, look every segment's peers up on the DHT instead of carrying them from
    /// the segments before (the behaviour before carrying became the default).
    #[arg(
        long,
        env = "SWARMCAST_NO_CARRIED_PEERS",
        overrides_with = "carried_peers"
    )]
    pub(crate) no_carried_peers: bool,
    #[command(flatten)]
    pub(crate) dht_args: super::DhtArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TransportArg {
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
