//! What `publish` reports: [`Ready`] once it serves, [`Summary`] when it ends.

use std::net::SocketAddr;
use std::path::PathBuf;

use swarmcast_core::StreamLink;

/// What the publisher tells its caller once it is serving.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The stream link.
    pub link: StreamLink,
    /// The bound HTTP address.
    pub http: SocketAddr,
    /// The bound BitTorrent address.
    pub peer: SocketAddr,
    /// The stream's data directory.
    pub stream_dir: PathBuf,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Segments published in this run.
    pub segments: u64,
    /// Their bytes.
    pub segment_bytes: u64,
    /// Payload bytes the swarm uploaded (the seeder's count).
    pub uploaded_bytes: u64,
    /// Segment bytes sent over HTTP.
    pub http_uploaded_bytes: u64,
    /// The last manifest sequence number served.
    pub last_seq: u64,
    /// Why new segments stopped early, if they did.
    pub degraded: Option<String>,
    /// Segments lost to I/O errors (out of files, disk full) or to a busy publisher; their
    /// input was read and dropped, and the stream went on (docs/reliability.md).
    pub dropped_segments: u64,
    /// Input bytes of those.
    pub dropped_bytes: u64,
    /// Why input was being dropped at the end, if it was.
    pub dropping: Option<String>,
    /// HTTP connections accepted, closed on arrival (their address at its cap, or every
    /// connection in a request at the cap) and closed idle to make room ([`serve`](crate::serve)).
    pub http_connections: HttpConnections,
}

impl std::fmt::Display for Summary {
    /// The summary `swarmcast publish` prints at exit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ratio = |bytes: u64| bytes as f64 / self.segment_bytes.max(1) as f64;
        write!(
            f,
            "published {} segments ({} bytes), last manifest seq {}; the swarm uploaded {} payload bytes ({:.2}x the segment bytes), HTTP {} ({:.2}x)",
            self.segments,
            self.segment_bytes,
            self.last_seq,
            self.uploaded_bytes,
            ratio(self.uploaded_bytes),
            self.http_uploaded_bytes,
            ratio(self.http_uploaded_bytes),
        )?;
        if let Some(d) = &self.degraded {
            write!(f, "; stopped taking segments early: {d}")?;
        }
        let c = self.http_connections;
        write!(
            f,
            "\nHTTP: {} connections served; closed on arrival: {} (address at --http-conns-per-address), {} (at --http-max-conns, all in a request); closed idle: {} to make room, {} sending nothing in time",
            c.accepted, c.refused_per_address, c.refused_full, c.evicted, c.header_timeouts
        )?;
        if self.dropped_segments > 0 {
            write!(
                f,
                "\ndropped {} segments ({} input bytes) that could not be written or published",
                self.dropped_segments, self.dropped_bytes
            )?;
            if let Some(d) = &self.dropping {
                write!(f, "; still failing at the end: {d}")?;
            }
        }
        Ok(())
    }
}

/// What the HTTP server did with connections, for the summary at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpConnections {
    /// Accepted and served.
    pub accepted: u64,
    /// Closed on arrival: their address held `--http-conns-per-address`.
    pub refused_per_address: u64,
    /// Closed on arrival: at `--http-max-conns`, every connection was in a request.
    pub refused_full: u64,
    /// Closed idle to make room for a new one.
    pub evicted: u64,
    /// Closed for sending no request head in time.
    pub header_timeouts: u64,
}
