//! Where played segments go: stdout (a pipe to mpv, VLC, ffplay), a file, a local HTTP stream,
//! or nowhere (the lab).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use crate::http::Hls;

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
    /// `http://ADDR/`: the playback server ([`crate::http`]): every stream client gets the
    /// stream from the next segment on; HLS clients, the page and `/metrics` are served too.
    Http(SocketAddr),
    /// Played segments are only counted.
    Discard,
}

/// An open sink.
pub(crate) enum Sink {
    Stdout(tokio::io::Stdout),
    File(tokio::fs::File),
    /// The playback server's stream, and its HLS (frozen when playback ends).
    Http(broadcast::Sender<Bytes>, Arc<Hls>),
    Discard,
}

impl Sink {
    /// Opens the sink; for HTTP, the playback server's stream sender and HLS (the server is
    /// started by the caller: see [`crate::http`]), which must be given.
    pub(crate) async fn open(
        config: &SinkConfig,
        server: Option<(broadcast::Sender<Bytes>, Arc<Hls>)>,
    ) -> std::io::Result<Self> {
        match config {
            SinkConfig::Stdout => Ok(Self::Stdout(tokio::io::stdout())),
            SinkConfig::File { path, .. } => Ok(Self::File(tokio::fs::File::create(path).await?)),
            SinkConfig::Discard => Ok(Self::Discard),
            SinkConfig::Http(_) => match server {
                Some((tx, hls)) => Ok(Self::Http(tx, hls)),
                None => Err(std::io::Error::other("no playback server")),
            },
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
            Self::Http(tx, _) => {
                // No client yet is not an error: the stream plays on.
                let _ = tx.send(data);
                Ok(())
            }
            Self::Discard => Ok(()),
        }
    }

    /// Flushes what is buffered. For HTTP, playback is over: the HLS playlist stops following
    /// the viewer (whose segments are forgotten next) and ends if the stream did.
    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(out) => out.flush().await,
            Self::File(f) => f.sync_all().await,
            Self::Http(_, hls) => {
                hls.finish();
                Ok(())
            }
            Self::Discard => Ok(()),
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
