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
    #[arg(long, global = true, env = "SWARMCAST_LOG", default_value = "info")]
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
