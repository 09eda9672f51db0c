//! The `swarmcast` command line.
//!
//! Thin by design (as ripgrep's root package): it parses flags (each also read from a `SWARMCAST_*`
//! environment variable), starts logging and the runtime, turns Ctrl-C into a cancellation token,
//! and calls the libraries. The flags are declared in `cli.rs` (`cli/` for the verbs with many)
//! and checked by the value parsers in `parse.rs`; `commands.rs` maps them onto the libraries'
//! configurations and prints what the libraries return.

use std::process::ExitCode;

use clap::Parser;

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

mod cli;
mod commands;
mod parse;
mod player;
mod status;

use cli::{Cli, Command};

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
                Command::Relay(args) => commands::relay(*args, cancel.clone()).await,
                Command::Demo(args) => commands::demo(args, cancel.clone()).await,
                Command::Lab(args) => commands::lab(*args, cancel.clone()).await,
                Command::Report(args) => commands::report(&args.dir),
                Command::ScaleModel(args) => commands::scale_model(&args.dirs),
                Command::IcecastNode(args) => commands::icecast_node(*args, cancel.clone()).await,
                Command::StripeNode(args) => commands::stripe_node(*args, cancel.clone()).await,
                Command::DhtTestnet(args) => commands::dht_testnet(args, cancel.clone()).await,
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
            eprintln!("error: {}", chain(&e));
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
        // Log lines go above `watch`'s status line while it is shown.
        .with_writer(status::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}

/// An error and its causes, `: `-separated, each cause left out when the message before already
/// says it (most of our errors name their cause in their own message: "cannot write segment 15
/// to the output: No space left on device", whose source is that same I/O error).
fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
