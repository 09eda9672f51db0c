//! Where played segments go: stdout (a pipe to mpv, VLC, ffplay), a file, a local HTTP stream,
//! or nowhere (the lab).

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use swarmcast_tasks::Tasks;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

/// Which sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkConfig {
    /// Standard output.
    Stdout,
    /// A file, created. An existing recording in it (a regular file, not empty) is refused
    /// unless `overwrite`, when it is truncated ([`watch`](crate::watch()) checks before anything
    /// starts).
    File {
        /// The file.
        path: PathBuf,
        /// Replace an earlier recording.
        overwrite: bool,
    },
    /// `http://ADDR/`: every client gets the stream from the next segment on.
    Http(SocketAddr),
    /// Played segments are only counted.
    Discard,
}

/// An open sink.
pub(crate) enum Sink {
    Stdout(tokio::io::Stdout),
    File(tokio::fs::File),
    Http(broadcast::Sender<Bytes>),
    Discard,
}

/// Segments a slow HTTP client may fall behind before it misses some.
const HTTP_BACKLOG: usize = 16;

impl Sink {
    /// Opens the sink; for HTTP, starts the server (a task of `tasks`, which runs until they are
    /// cancelled) and returns its bound address.
    pub(crate) async fn open(
        config: &SinkConfig,
        tasks: &Tasks,
    ) -> std::io::Result<(Self, Option<SocketAddr>)> {
        match config {
            SinkConfig::Stdout => Ok((Self::Stdout(tokio::io::stdout()), None)),
            SinkConfig::File { path, .. } => {
                Ok((Self::File(tokio::fs::File::create(path).await?), None))
            }
            SinkConfig::Discard => Ok((Self::Discard, None)),
            SinkConfig::Http(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                let (tx, _) = broadcast::channel(HTTP_BACKLOG);
                let app = http_app(tx.clone());
                tasks.spawn("playback-http-server", async move {
                    if let Err(e) = axum_serve(listener, app).await {
                        tracing::error!(error = %e, "playback HTTP server failed");
                    }
                });
                Ok((Self::Http(tx), Some(bound)))
            }
        }
    }

    /// Writes one segment.
    pub(crate) async fn write(&mut self, data: Bytes) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => {
                out.write_all(&data).await?;
                out.flush().await
            }
            // Flushed: tokio's file reports a write's error (a full disk) only at the next
            // operation, which would blame the next segment, or none after the last.
            Self::File(f) => {
                f.write_all(&data).await?;
                f.flush().await
            }
            Self::Http(tx) => {
                // No client yet is not an error: the stream plays on.
                let _ = tx.send(data);
                Ok(())
            }
            Self::Discard => Ok(()),
        }
    }

    /// Flushes what is buffered.
    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush().await,
            Self::File(f) => f.sync_all().await,
            Self::Http(_) | Self::Discard => Ok(()),
        }
    }
}

/// Resolves when standard output is a pipe (or socket) whose reader has gone: the kernel flags
/// an error on the writing end at once, so a viewer stops then rather than at its next write (a
/// segment later, up to a minute). Never resolves for a file or `/dev/null` (which cannot be
/// watched, and do not close).
pub(crate) async fn stdout_closed() {
    use std::os::fd::AsFd;
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    // A duplicate of the descriptor, owned by the `AsyncFd`: it stays open exactly as long as
    // it is registered, which is what the deprecation of `with_interest` is about (tokio
    // #8587: a borrowed descriptor could be closed and reused while registered).
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return std::future::pending().await;
    };
    #[allow(deprecated)]
    let watched = AsyncFd::with_interest(fd, Interest::ERROR);
    match watched {
        Ok(fd) => {
            let _ = fd.ready(Interest::ERROR).await;
        }
        Err(_) => std::future::pending().await,
    }
}

fn http_app(tx: broadcast::Sender<Bytes>) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let rx = tx.subscribe();
            async move {
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(b) => return Some((Ok::<Bytes, std::io::Error>(b), rx)),
                            // A client too slow for the stream misses segments, not the stream.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                });
                (
                    [(axum::http::header::CONTENT_TYPE, "video/mp2t")],
                    axum::body::Body::from_stream(stream),
                )
                    .into_response()
            }
        }),
    )
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}
