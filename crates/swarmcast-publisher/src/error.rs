//! The publisher's errors: each names the file, address or field at fault.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the publisher could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The stream key file is unusable.
    #[error("stream key")]
    Key(#[from] swarmcast_core::KeyFileError),
    /// `--public-addr` is needed and missing, or invalid.
    #[error("{0}")]
    PublicAddr(String),
    /// A directory cannot be created or written.
    #[error("directory {path} is not usable: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The input file or directory cannot be read.
    #[error("cannot read input {path}: {source}")]
    Input {
        /// The input.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP address cannot be bound (in use, not local, no permission).
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The BitTorrent session failed.
    #[error(transparent)]
    Swarm(#[from] swarmcast_swarm::SwarmError),
    /// The persisted state is unreadable.
    #[error("state file {path} is unreadable: {reason} (move it away to start the stream afresh)")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A manifest could not be made.
    #[error("cannot sign the manifest")]
    Manifest(#[from] swarmcast_core::ManifestError),
    /// The window configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A segment file's torrent could not be built.
    #[error(transparent)]
    SegmentFile(#[from] crate::segment_file::SegmentFileError),
    /// A task of the publisher's panicked or was cancelled.
    #[error("the {what} task failed")]
    Task {
        /// What it did.
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The metrics file cannot be written.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
}
