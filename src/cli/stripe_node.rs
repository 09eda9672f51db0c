//! `swarmcast stripe-node`'s flags.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `swarmcast stripe-node`.
#[derive(Debug, Args)]
pub(crate) struct StripeNodeArgs {
    /// The stream link (`swarmcast:?pk=...`): pins the key every substream header must be
    /// signed by.
    #[arg(long, env = "SWARMCAST_LINK")]
    pub(crate) link: String,
    /// The stripe directory (`http://host:port/stripes`, served by `publish --stripe-source`).
    #[arg(long, env = "SWARMCAST_DIRECTORY")]
    pub(crate) directory: String,
    /// Node name (unique in the directory; metrics).
    #[arg(long, env = "SWARMCAST_NODE")]
    pub(crate) node: String,
    /// Where to serve /stripe/{s} to children (the address they reach).
    #[arg(long, env = "SWARMCAST_LISTEN")]
    pub(crate) listen: std::net::SocketAddr,
    /// Children served at once at most (more are answered 503).
    #[arg(long, env = "SWARMCAST_FANOUT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) fanout: u32,
    /// Seconds a later segment may wait, rebuilt, for a missing one before that one is given
    /// up as lost.
    #[arg(long, env = "SWARMCAST_GIVE_UP", default_value_t = 4.0, value_parser = parse_give_up)]
    pub(crate) give_up: f64,
    /// Play the rebuilt stream into this file (the published segments, in order).
    #[arg(long, short, env = "SWARMCAST_OUT")]
    pub(crate) out: Option<PathBuf>,
    /// Write counters (Stream* events) as JSON lines to this file.
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// Testing: relay every Nth symbol to children with a byte flipped (a forging relay).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) forge_every: Option<u32>,
}

fn parse_give_up(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=600.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: expected seconds from 0 to 600")),
    }
}
