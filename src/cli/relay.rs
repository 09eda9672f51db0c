//! `swarmcast relay`'s flags.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `swarmcast relay`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    /// The stream link (`swarmcast:?pk=...&xs=...`): pins the key every manifest is verified
    /// against.
    #[arg(long, env = "SWARMCAST_LINK")]
    pub(crate) link: String,
    /// Where to serve /stream and /manifest (the address children and players reach; an
    /// unspecified address is announced as 127.0.0.1).
    #[arg(long, env = "SWARMCAST_LISTEN")]
    pub(crate) listen: std::net::SocketAddr,
    /// Seconds of media kept for resumes (0 to 3600).
    #[arg(long, env = "SWARMCAST_BACK_BUFFER", default_value_t = 30.0, value_parser = parse_back_buffer)]
    pub(crate) back_buffer: f64,
    /// The first parent: the stream link itself (the publisher: this relay is the root) or a
    /// relay's URL (http://host:port/stream). Without it, parents come from --directory.
    #[arg(long, env = "SWARMCAST_PARENT")]
    pub(crate) parent: Option<String>,
    /// The relay directory (`http://host:port/relays`): announce this relay there and take
    /// the next parent from it when the current one fails.
    #[arg(long, env = "SWARMCAST_DIRECTORY", requires = "node")]
    pub(crate) directory: Option<String>,
    /// Node name (metrics; unique in the directory).
    #[arg(long, env = "SWARMCAST_NODE", default_value = "relay")]
    pub(crate) node: String,
    /// Children served at most: announced to the directory, and `/stream` requests over it are
    /// answered 503 (relay full).
    #[arg(long, env = "SWARMCAST_FANOUT", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) fanout: u32,
    /// Play the verified stream into this file (stream order, the published bytes).
    #[arg(long, short, env = "SWARMCAST_OUT")]
    pub(crate) out: Option<PathBuf>,
    /// Write counters (Stream* events) as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    pub(crate) metrics_out: Option<PathBuf>,
}

fn parse_back_buffer(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: expected seconds from 0 to 3600")),
    }
}
