//! What a relaying node (`swarmcast relay`, `swarmcast stripe-node`) opens and runs the same
//! way: its listener and the address it tells others, its counters and output, its HTTP server
//! that drains at the end, and its client for parents.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use swarmcast_metrics::{Recorder, Role};
use swarmcast_tasks::Tasks;
use tokio_util::sync::CancellationToken;

use crate::directory::PARENT_TIMEOUT;
use crate::resume::RelayError;

/// A node's listener, the address children reach it at, its counters and its output.
pub(crate) struct Opened {
    pub(crate) listener: tokio::net::TcpListener,
    /// The bound address; an unspecified IP is given as 127.0.0.1 (others are told it).
    pub(crate) local: SocketAddr,
    pub(crate) rec: Arc<Recorder>,
    pub(crate) out: Option<tokio::fs::File>,
}

/// Binds `listen`, creates the counters file and the output.
pub(crate) async fn open(
    listen: SocketAddr,
    node: &str,
    metrics_out: Option<&std::path::Path>,
    out: Option<&PathBuf>,
) -> Result<Opened, RelayError> {
    let listen_error = |source| RelayError::Listen {
        addr: listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(listen_error)?;
    let mut local = listener.local_addr().map_err(listen_error)?;
    if local.ip().is_unspecified() {
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let rec = Arc::new(Recorder::new(node.to_owned(), Role::Relay, metrics_out)?);
    let out = match out {
        Some(path) => {
            Some(
                tokio::fs::File::create(path)
                    .await
                    .map_err(|source| RelayError::Out {
                        path: path.clone(),
                        source,
                    })?,
            )
        }
        None => None,
    };
    Ok(Opened {
        listener,
        local,
        rec,
        out,
    })
}

/// Serves `app` on `listener` as a task of `tasks` until the returned token is cancelled; then
/// the server drains: no new connection, and the open ones finish writing what they were given
/// (a body's last bytes may still sit in the server's buffers behind a slow link when the body
/// ends: aborting the server then cut children short). Sockets get no Nagle delay: data goes
/// out as it is verified.
pub(crate) fn serve(
    tasks: &Tasks,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    what: &'static str,
) -> (CancellationToken, tokio::task::JoinHandle<Option<()>>) {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let drain = CancellationToken::new();
    let served = {
        let drain = drain.clone();
        tasks.spawn("http", async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(drain.cancelled_owned())
                .await
            {
                tracing::warn!("{what} HTTP server: {e}");
            }
        })
    };
    (drain, served)
}

/// The client a node pulls from its parents with.
pub(crate) fn parent_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(PARENT_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .expect("a client without custom TLS builds")
}
