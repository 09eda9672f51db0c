//! The viewer's edges, behind small traits so that its loop runs against fakes on a paused clock
//! in the unit tests: the swarm ([`SegmentSwarm`]), the publisher's HTTP side ([`ManifestFetch`]
//! for the poller, [`SegmentFetch`] for the fallback) and the playback sink ([`PlaybackSink`]).
//! The real implementations are today's code: [`Swarm`], [`HttpClients`] (reqwest) and [`Sink`].
//!
//! Generic, not `dyn`: the swarm's torrent handle is an associated type (a fake cannot build a
//! `swarmcast_swarm::Torrent`, and the viewer stores handles per segment); async methods are not
//! dyn-compatible without boxing every future; and the futures the viewer spawns must be `Send`,
//! which `-> impl Future + Send` proves at compile time. [`crate::watch()`] instantiates the real
//! types, so the crate's public API is unchanged and the real path costs nothing.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::InfoDict;
use swarmcast_swarm::ratelimit::ByteLimiter;
use swarmcast_swarm::{Download, PeerBytes, Swarm, SwarmError, Torrent, TorrentStats};
use url::Url;

use crate::fallback::{self, FetchError, Milestone};
use crate::sink::Sink;

/// What the viewer asks of its BitTorrent session.
pub(crate) trait SegmentSwarm: Send + Sync + 'static {
    /// A torrent in the session.
    type Torrent: Clone + Send + Sync + 'static;

    /// Starts downloading a segment into `folder` (see [`Swarm::download_with`]).
    fn download(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        how: Download,
    ) -> impl Future<Output = Result<Self::Torrent, SwarmError>> + Send;

    /// Seeds a segment whose file is already in `folder` (see [`Swarm::seed`]).
    fn seed(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        timeout: Duration,
    ) -> impl Future<Output = Result<Self::Torrent, SwarmError>> + Send;

    /// Looks a key up on the session's DHT, announcing there (see [`Swarm::dht_lookup`]).
    fn dht_lookup(
        &self,
        info_hash: [u8; 20],
        within: Duration,
        max: usize,
        on_peer: impl FnMut(std::net::SocketAddr) + Send,
    ) -> impl Future<Output = usize> + Send;

    /// Dials `peers` for a torrent already added (see [`Swarm::add_peers`]).
    fn add_peers(&self, t: &Self::Torrent, peers: &[std::net::SocketAddr]) -> usize;

    /// A torrent's current figures.
    fn stats(&self, t: &Self::Torrent) -> TorrentStats;

    /// Bytes exchanged with each peer of a torrent.
    fn peer_bytes(&self, t: &Self::Torrent) -> Vec<PeerBytes>;

    /// Drops a torrent from the session, keeping its file.
    fn forget(&self, t: &Self::Torrent) -> impl Future<Output = ()> + Send;

    /// Stops the session.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}

impl SegmentSwarm for Swarm {
    type Torrent = Torrent;

    fn download(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        how: Download,
    ) -> impl Future<Output = Result<Torrent, SwarmError>> + Send {
        self.download_with(torrent, name, folder, how)
    }

    fn seed(
        &self,
        torrent: &[u8],
        name: &str,
        folder: &Path,
        timeout: Duration,
    ) -> impl Future<Output = Result<Torrent, SwarmError>> + Send {
        Swarm::seed(self, torrent, name, folder, timeout)
    }

    fn dht_lookup(
        &self,
        info_hash: [u8; 20],
        within: Duration,
        max: usize,
        on_peer: impl FnMut(std::net::SocketAddr) + Send,
    ) -> impl Future<Output = usize> + Send {
        Swarm::dht_lookup(self, info_hash, within, max, on_peer)
    }

    fn add_peers(&self, t: &Torrent, peers: &[std::net::SocketAddr]) -> usize {
        Swarm::add_peers(self, t, peers)
    }

    fn stats(&self, t: &Torrent) -> TorrentStats {
        Swarm::stats(self, t)
    }

    fn peer_bytes(&self, t: &Torrent) -> Vec<PeerBytes> {
        Swarm::peer_bytes(self, t)
    }

    fn forget(&self, t: &Torrent) -> impl Future<Output = ()> + Send {
        Swarm::forget(self, t)
    }

    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        Swarm::shutdown(self)
    }
}

/// How the manifest poller fetches a document.
pub(crate) trait ManifestFetch: Send + Sync + 'static {
    /// Fetches the document at `url` within `timeout` (connect, headers and body); an error
    /// status or a body over the document cap is an error.
    fn manifest(
        &self,
        url: &Url,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

impl ManifestFetch for reqwest::Client {
    fn manifest(
        &self,
        url: &Url,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        crate::poller::fetch_capped(self, url, timeout, swarmcast_core::manifest::MAX_DOCUMENT)
    }
}

/// How a segment is fetched over HTTP (fallback, and the HTTP baseline).
pub(crate) trait SegmentFetch: Clone + Send + Sync + 'static {
    /// Fetches `url` into `dest` and verifies every piece against `info`, as
    /// [`fallback::fetch_verified`] does: the bytes fetched, or why not (no file left behind).
    fn segment(
        &self,
        url: &Url,
        info: &InfoDict,
        dest: &Path,
        limiter: Option<&ByteLimiter>,
        progress: &(dyn Fn(Milestone) + Send + Sync),
    ) -> impl Future<Output = Result<u64, FetchError>> + Send;
}

impl SegmentFetch for reqwest::Client {
    fn segment(
        &self,
        url: &Url,
        info: &InfoDict,
        dest: &Path,
        limiter: Option<&ByteLimiter>,
        progress: &(dyn Fn(Milestone) + Send + Sync),
    ) -> impl Future<Output = Result<u64, FetchError>> + Send {
        fallback::fetch_verified(self, url, info, dest, limiter, progress)
    }
}

/// The viewer's two HTTP clients: the poller's (with a connect timeout) and the segments'.
#[derive(Clone, Debug)]
pub(crate) struct HttpClients {
    manifests: reqwest::Client,
    segments: reqwest::Client,
}

impl HttpClients {
    /// Both clients, as the viewer always built them.
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            manifests: crate::poller::manifest_client()?,
            segments: reqwest::Client::builder().build()?,
        })
    }
}

impl ManifestFetch for HttpClients {
    fn manifest(
        &self,
        url: &Url,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        self.manifests.manifest(url, timeout)
    }
}

impl SegmentFetch for HttpClients {
    fn segment(
        &self,
        url: &Url,
        info: &InfoDict,
        dest: &Path,
        limiter: Option<&ByteLimiter>,
        progress: &(dyn Fn(Milestone) + Send + Sync),
    ) -> impl Future<Output = Result<u64, FetchError>> + Send {
        self.segments.segment(url, info, dest, limiter, progress)
    }
}

/// Where played segments go.
pub(crate) trait PlaybackSink: Send + 'static {
    /// Writes one segment.
    fn write(&mut self, data: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;

    /// Flushes what is buffered.
    fn close(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl PlaybackSink for Sink {
    fn write(&mut self, data: Bytes) -> impl Future<Output = std::io::Result<()>> + Send {
        Sink::write(self, data)
    }

    fn close(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        Sink::close(self)
    }
}
