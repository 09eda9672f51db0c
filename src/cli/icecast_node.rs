//! `swarmcast icecast-node`: one node of an Icecast relay tree (docs/relay-tree.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Arguments of `swarmcast icecast-node`.
#[derive(Debug, Args)]
pub(crate) struct IcecastNodeArgs {
    /// The relay directory: the publisher's `/relays` URL (`publish --relay-source`).
    #[arg(long, env = "SWARMCAST_DIRECTORY")]
    pub(crate) directory: String,
    /// This node's name (unique in the stream; in the directory and the counters).
    #[arg(long, env = "SWARMCAST_NODE")]
    pub(crate) node: String,
    /// Where this node's icecast2 listens: the address and port others reach it at (announced
    /// in the directory as `http://<listen>/live.ts`).
    #[arg(long, env = "SWARMCAST_LISTEN")]
    pub(crate) listen: SocketAddr,
    /// Children this node takes at most (its capacity in the directory).
    #[arg(long, env = "SWARMCAST_FANOUT", default_value_t = 2)]
    pub(crate) fanout: u32,
    /// Play the stream into this file (whole MPEG-TS packets, as received).
    #[arg(long, env = "SWARMCAST_OUT")]
    pub(crate) out: Option<PathBuf>,
    /// Write counters as JSON lines to this file (role `relay`).
    #[arg(long, env = "SWARMCAST_METRICS_OUT")]
    pub(crate) metrics_out: Option<PathBuf>,
    /// The tree's source: a plain icecast2 taking the publisher's push on /live.ts (`publish
    /// --icecast`); no parent, not announced.
    #[arg(long, requires = "password")]
    pub(crate) source: bool,
    /// The source password the publisher pushes with (with --source).
    #[arg(long, env = "SWARMCAST_ICECAST_PASSWORD", requires = "source")]
    pub(crate) password: Option<String>,
    /// The directory icecast2 runs in (its icecast.xml and logs) [default: a temporary one,
    /// removed at exit].
    #[arg(long, env = "SWARMCAST_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The icecast2 program.
    #[arg(long, env = "SWARMCAST_ICECAST_BIN", default_value = "icecast2")]
    pub(crate) icecast_bin: PathBuf,
}
