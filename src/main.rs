//! The `swarmcast` command line.
//!
//! Thin by design (as ripgrep's root package): it parses flags (each also read from a `SWARMCAST_*`
//! environment variable), starts logging and the runtime, turns Ctrl-C into a cancellation token,
//! and calls the libraries. The verbs' glue lives in `commands.rs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

mod commands;

/// Live broadcasting over BitTorrent by minute swarming.
#[derive(Debug, Parser)]
#[command(name = "swarmcast", version, about, propagate_version = true)]
struct Cli {
    /// Log filter for stderr (tracing `EnvFilter` syntax, e.g. `info`, `swarmcast=debug`).
    /// mpeg2ts_reader is quiet by default: it warns on every malformed packet, which the
    /// segmenter already counts.
    #[arg(
        long,
        global = true,
        env = "SWARMCAST_LOG",
        default_value = "info,mpeg2ts_reader=error"
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
    /// Piece length in bytes: a power of two from 32768 to 16777216 [default: the smallest giving
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
    /// Target segment length in seconds (fractions allowed).
    #[arg(long, env = "SWARMCAST_SEGMENT_SECS", default_value_t = 60.0, value_parser = commands::parse_secs)]
    segment_secs: f64,
    /// Take the .ts files an encoder finishes in this directory as segments, one each, in order.
    #[arg(long, env = "SWARMCAST_WATCH_DIR")]
    watch_dir: Option<PathBuf>,
    /// Keep reading the input file as it grows, until --idle-timeout passes with no new data.
    #[arg(long, env = "SWARMCAST_FOLLOW", requires = "input")]
    follow: bool,
    /// With --follow: seconds without new data after which the input is over.
    #[arg(long, env = "SWARMCAST_IDLE_TIMEOUT", default_value_t = 10.0, value_parser = commands::parse_secs)]
    idle_timeout: f64,
    /// Input format: `ts` cuts at keyframes, `raw` by wall clock, `auto` decides from the first bytes.
    #[arg(long, env = "SWARMCAST_FORMAT", default_value = "auto", value_parser = ["auto", "ts", "raw"])]
    format: String,
    /// Number of the first segment.
    #[arg(long, env = "SWARMCAST_FIRST_NUMBER", default_value_t = 0)]
    first_number: u64,
}

/// Arguments of `swarmcast synth`.
#[derive(Debug, Args)]
struct SynthArgs {
    /// Output file, or `-` for stdout.
    #[arg(long, short, env = "SWARMCAST_SYNTH_OUT", default_value = "-")]
    out: PathBuf,
    /// Bitrate in bit/s (suffixes k and M allowed), padded with null packets [default: the
    /// fixture's own, about 135k].
    #[arg(long, env = "SWARMCAST_BITRATE", value_parser = commands::parse_bitrate)]
    bitrate: Option<u64>,
    /// Stop after this many seconds of media [default: endless].
    #[arg(long, env = "SWARMCAST_SYNTH_SECS", value_parser = commands::parse_secs)]
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
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("interrupted: shutting down");
                on_signal.cancel();
            }
        });
        match cli.command {
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
        }
    });
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

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("--log {filter:?} is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}
