//! A relay node (`swarmcast relay`): pulls the stream from its parent, verifies it piece by
//! piece, holds it in the back buffer, serves it, plays it, and changes parent when the parent
//! goes silent, ends its connection or sends a piece that fails its check (docs/relay.md).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swarmcast_core::{StreamLink, Verifier};
use swarmcast_metrics::Kind;
use swarmcast_tasks::Tasks;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::position::Position;
use super::server::{self, Shared};
use super::upstream::Upstream;
use crate::directory::{self, Announce, ANNOUNCE_EVERY};

/// How long a relay waits for its children to finish after the end of the stream (children
/// two hops down under a 2.2x cap were measured 3-4 s behind their parent; 5 s cut some short).
pub const END_GRACE: Duration = Duration::from_secs(15);
/// How often the arrival curve (`StreamBytes`) is sampled while bytes flow.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Where a relay takes the stream from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parent {
    /// The publisher: its signed manifests and `GET /segments/<n>.ts` (the root relay).
    Publisher(StreamLink),
    /// Another relay's `/stream` URL.
    Relay(Url),
}

impl Parent {
    /// The URL named in events and announces (the manifest URL for the publisher).
    pub fn url(&self) -> String {
        match self {
            Self::Publisher(link) => link.sources[0].to_string(),
            Self::Relay(url) => url.to_string(),
        }
    }
}

impl FromStr for Parent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with(swarmcast_core::link::LINK_PREFIX) {
            return s
                .parse()
                .map(Self::Publisher)
                .map_err(|e| format!("parent {s:?}: {e}"));
        }
        let url = Url::parse(s).map_err(|e| format!("parent {s:?}: {e}"))?;
        match url.scheme() {
            "http" | "https" if url.has_host() => Ok(Self::Relay(url)),
            _ => Err(format!(
                "parent {s:?}: expected a stream link (swarmcast:?...) or a relay's http URL (http://host:port/stream)"
            )),
        }
    }
}

/// The relay directory a node announces itself to and picks parents from.
#[derive(Clone, Debug)]
pub struct DirectoryConfig {
    /// The directory's `/relays` URL.
    pub url: String,
    /// Children served at most (announced as the capacity).
    pub fanout: u32,
}

/// What `swarmcast relay` runs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The stream link (pins the key every manifest is verified against).
    pub link: StreamLink,
    /// Where `/stream` and `/manifest` are served.
    pub listen: SocketAddr,
    /// The back buffer's length (media time).
    pub back_buffer: Duration,
    /// The first parent (None: from the directory).
    pub parent: Option<Parent>,
    /// The directory (parents after the first, announces).
    pub directory: Option<DirectoryConfig>,
    /// Node name (metrics, directory).
    pub node: String,
    /// Where the verified stream is played (written), in stream order.
    pub out: Option<PathBuf>,
    /// Metrics JSON lines.
    pub metrics_out: Option<PathBuf>,
    /// How long to wait for children after the end of the stream.
    pub end_grace: Duration,
    /// Children served at once at most (`/stream` bodies; more are answered 503); 0: no limit.
    pub max_children: usize,
}

impl RelayConfig {
    /// A relay of `link` at `listen` with the default back buffer (30 s) and grace.
    pub fn new(link: StreamLink, listen: SocketAddr) -> Self {
        Self {
            link,
            listen,
            back_buffer: Duration::from_secs(30),
            parent: None,
            directory: None,
            node: "relay".into(),
            out: None,
            metrics_out: None,
            end_grace: END_GRACE,
            max_children: 0,
        }
    }
}

/// Why a relay could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Neither a parent nor a directory.
    #[error("a relay needs --parent or --directory (with --node)")]
    NoParent,
    /// The stream link has no `xs`: a relay takes the publisher's manifests over HTTP.
    #[error("a relay takes the publisher's manifests over HTTP: its stream link needs an xs (manifest URL)")]
    NoManifestSource,
    /// The fixed parent sent a piece that failed its check against the signed manifest, and
    /// without a directory there is no other parent to take.
    #[error("parent {parent} sent a piece that failed its check against the signed manifest, and there is no --directory to take another parent from")]
    NoTrustedParent {
        /// The parent.
        parent: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the output {}: {source}", path.display())]
    Out {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The metrics file could not be created.
    #[error(transparent)]
    Metrics(#[from] swarmcast_metrics::MetricsError),
}

/// What a relay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelaySummary {
    /// Where it served.
    pub url: String,
    /// Where its output starts.
    pub first: Option<Position>,
    /// Verified bytes played (written to the output).
    pub played: u64,
    /// Connections to a parent that answered.
    pub connections: u32,
    /// Pieces rejected.
    pub rejected: u32,
    /// Bytes lost (resumes older than a parent's back buffer).
    pub lost_bytes: u64,
    /// Stream bytes sent to children.
    pub sent: u64,
    /// The stream ended (false: stopped).
    pub ended: bool,
}

impl fmt::Display for RelaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "relayed at {}: played {} bytes from {}, {} connection(s) to parents, {} piece(s) rejected, {} bytes lost, {} bytes sent to children; {}",
            self.url,
            self.played,
            self.first.map_or("-".into(), |p| p.to_string()),
            self.connections,
            self.rejected,
            self.lost_bytes,
            self.sent,
            if self.ended { "the stream ended" } else { "stopped" }
        )
    }
}

/// Runs a relay until the end of the stream (then its children get [`RelayConfig::end_grace`]
/// to finish) or `cancel`.
pub async fn run(
    config: RelayConfig,
    cancel: CancellationToken,
) -> Result<RelaySummary, RelayError> {
    if config.parent.is_none() && config.directory.is_none() {
        return Err(RelayError::NoParent);
    }
    // A relay pulls the publisher's manifests over HTTP: its link needs a source (`Parent::url`
    // and the upstream take the first).
    let links = [
        Some(&config.link),
        match &config.parent {
            Some(Parent::Publisher(l)) => Some(l),
            _ => None,
        },
    ];
    if links.into_iter().flatten().any(|l| l.sources.is_empty()) {
        return Err(RelayError::NoManifestSource);
    }
    let crate::host::Opened {
        listener,
        local,
        rec,
        out,
    } = crate::host::open(
        config.listen,
        &config.node,
        config.metrics_out.as_deref(),
        config.out.as_ref(),
    )
    .await?;
    let my_url = format!("http://{local}/stream");
    let back_ticks = (config.back_buffer.as_secs_f64() * 90_000.0) as u64;
    let shared = Arc::new(Shared::new(back_ticks));
    shared
        .max_streams
        .store(config.max_children, std::sync::atomic::Ordering::SeqCst);
    let tasks = Tasks::with_token("relay", cancel.child_token());
    let (drain, served) =
        crate::host::serve(&tasks, listener, server::router(shared.clone()), "relay");
    tracing::info!("relay {}: serving at {my_url}", config.node);
    let client = crate::host::parent_client();
    let current = Arc::new(Mutex::new(None::<String>));
    if let Some(dir) = &config.directory {
        let (client, dir, current) = (client.clone(), dir.clone(), current.clone());
        let (node, url, token) = (config.node.clone(), my_url.clone(), tasks.token().clone());
        tasks.spawn("announce", async move {
            loop {
                let a = Announce {
                    node: node.clone(),
                    url: url.clone(),
                    parent: current.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    capacity: dir.fanout,
                };
                if let Err(e) = directory::announce(&client, &dir.url, &a).await {
                    tracing::debug!("announce: {e}");
                }
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
                }
            }
        });
    }
    let written = Arc::new(AtomicU64::new(0));
    {
        let (rec, written, token) = (rec.clone(), written.clone(), tasks.token().clone());
        tasks.spawn("arrival-curve", async move {
            let mut last = 0;
            loop {
                tokio::select! {
                    () = token.cancelled() => return,
                    () = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
                let total = written.load(Ordering::Relaxed);
                if total != last {
                    rec.record(None, Kind::StreamBytes { total });
                    last = total;
                }
            }
        });
    }
    let mut up = Upstream {
        shared: shared.clone(),
        client,
        verifier: Arc::new(Mutex::new(Verifier::new(config.link.key))),
        rec: rec.clone(),
        out: config.out.clone().zip(out),
        pos: None,
        written,
        last_byte: None,
        heard: Arc::new(Mutex::new(Instant::now())),
        node: config.node.clone(),
        directory: config.directory.clone(),
        current,
        summary: RelaySummary {
            url: my_url,
            ..RelaySummary::default()
        },
        tasks: tasks.child("upstream"),
        connected: false,
    };
    let result = up.run(config.parent.clone(), &cancel).await;
    let total = up.written.load(Ordering::Relaxed);
    rec.record(None, Kind::StreamBytes { total });
    if let Some((_, f)) = &mut up.out {
        let _ = f.flush().await;
    }
    let ended = match result {
        Ok(ended) => ended,
        Err(e) => {
            tasks.shutdown().await;
            return Err(e);
        }
    };
    if ended {
        // Children get a grace period to read to the end: first their bodies, then the
        // connections' buffers (the server drains).
        let start = Instant::now();
        while shared.streams.load(Ordering::SeqCst) > 0
            && start.elapsed() < config.end_grace
            && !cancel.is_cancelled()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drain.cancel();
        let left = config.end_grace.saturating_sub(start.elapsed());
        tokio::select! {
            _ = served => {}
            () = tokio::time::sleep(left) => {}
            () = cancel.cancelled() => {}
        }
    }
    tasks.shutdown().await;
    rec.flush();
    let mut summary = up.summary;
    summary.played = total;
    summary.ended = ended;
    summary.sent = shared.sent.load(Ordering::Relaxed);
    Ok(summary)
}
