//! HTTP fallback: a segment the swarm has not delivered in time is fetched from the publisher's
//! `/segments/<n>.ts`, and every piece is checked against the SHA-1s of the signed `info` before
//! the file is used. A mismatch rejects the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmcast_core::InfoDict;
use swarmcast_swarm::ratelimit::ByteLimiter;
use tokio::io::AsyncWriteExt;
use url::Url;

use crate::schedule::FetchFailure;

/// Progress of an HTTP fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Milestone {
    /// The response headers arrived.
    Response,
    /// The first piece arrived and verified.
    FirstPiece,
    /// This many body bytes have arrived so far.
    Received(u64),
}

/// Fetches `url` into `dest` (a temporary name) and verifies it against `info`; returns the bytes
/// fetched. On any failure the temporary file is removed. `limiter` holds the download to the
/// viewer's limit; `progress` hears of each [`Milestone`].
pub(crate) async fn fetch_verified(
    client: &reqwest::Client,
    url: &Url,
    info: &InfoDict,
    dest: &Path,
    limiter: Option<&ByteLimiter>,
    progress: &(dyn Fn(Milestone) + Send + Sync),
) -> Result<u64, FetchError> {
    let result = fetch(client, url, info, dest, limiter, progress).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    result
}

async fn fetch(
    client: &reqwest::Client,
    url: &Url,
    info: &InfoDict,
    dest: &Path,
    limiter: Option<&ByteLimiter>,
    progress: &(dyn Fn(Milestone) + Send + Sync),
) -> Result<u64, FetchError> {
    let http = |source| FetchError::Http {
        url: url.clone(),
        source,
    };
    let file_error = |source| FetchError::File {
        path: dest.to_owned(),
        source,
    };
    let mut response = client
        .get(url.clone())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        // Read the (one-line) body: a response read to its end leaves the connection open for
        // the next request, so a refusal costs the publisher two packets, not a new connection.
        let text = response.text().await.unwrap_or_default();
        return Err(FetchError::Status {
            url: url.clone(),
            status: status.as_u16(),
            body: text.trim().chars().take(200).collect(),
        });
    }
    progress(Milestone::Response);
    let mut file = tokio::fs::File::create(dest).await.map_err(file_error)?;
    let mut piece = Vec::with_capacity(info.piece_length as usize);
    let mut index = 0u64;
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(http)? {
        if let Some(limiter) = limiter {
            limiter.take(chunk.len()).await;
        }
        total += chunk.len() as u64;
        progress(Milestone::Received(total));
        if total > info.length {
            return Err(FetchError::Length {
                url: url.clone(),
                got: total,
                stated: info.length,
            });
        }
        file.write_all(&chunk).await.map_err(file_error)?;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = rest.len().min(info.piece_length as usize - piece.len());
            piece.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if piece.len() as u64 == info.piece_length {
                check(info, index, &piece, url)?;
                if index == 0 {
                    progress(Milestone::FirstPiece);
                }
                index += 1;
                piece.clear();
            }
        }
    }
    if total != info.length {
        return Err(FetchError::Length {
            url: url.clone(),
            got: total,
            stated: info.length,
        });
    }
    if !piece.is_empty() {
        check(info, index, &piece, url)?;
        if index == 0 {
            progress(Milestone::FirstPiece);
        }
    }
    file.sync_all().await.map_err(file_error)?;
    Ok(total)
}

fn check(info: &InfoDict, index: u64, piece: &[u8], url: &Url) -> Result<(), FetchError> {
    if info.verify_piece(index, piece) {
        Ok(())
    } else {
        Err(FetchError::Piece {
            url: url.clone(),
            index,
        })
    }
}

/// Why a fallback fetch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The request or the body's transfer failed.
    #[error("GET {url}: {source}")]
    Http {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status (its one-line body, cut at 200 characters).
    #[error("GET {url}: {status}: {body}")]
    Status { url: Url, status: u16, body: String },
    /// The body was not as long as the signed info states.
    #[error("GET {url}: {got} bytes or more, the manifest states {stated}")]
    Length { url: Url, got: u64, stated: u64 },
    /// A piece did not match its hash in the signed info.
    #[error("GET {url}: piece {index} does not match the signed info: rejected")]
    Piece { url: Url, index: u64 },
    /// The temporary file could not be written.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// Whether asking again can help: the server no longer has the segment (404 or 410: it
    /// left the window and its grace period), the publisher refused (503: its fallback slots
    /// were taken while the swarm carries the stream; expected under load), or anything else.
    pub(crate) fn failure(&self) -> FetchFailure {
        match self {
            Self::Status { status, .. } if is_gone(*status) => FetchFailure::Gone,
            Self::Status { status: 503, .. } => FetchFailure::Busy,
            _ => FetchFailure::Failed,
        }
    }
}

/// 404 or 410: the publisher dropped the segment (it left the window and its grace period).
fn is_gone(status: u16) -> bool {
    matches!(status, 404 | 410)
}

/// The temporary name a fallback download uses beside the segment.
pub(crate) fn temp_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!(".{number:08}.ts.http"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_whether_asking_again_can_help() {
        let url: Url = "http://x/segments/00000001.ts".parse().unwrap();
        let status = |status| FetchError::Status {
            url: url.clone(),
            status,
            body: String::new(),
        };
        assert_eq!(status(404).failure(), FetchFailure::Gone);
        assert_eq!(status(410).failure(), FetchFailure::Gone);
        assert_eq!(status(503).failure(), FetchFailure::Busy);
        assert_eq!(status(500).failure(), FetchFailure::Failed);
        let piece = FetchError::Piece {
            url: url.clone(),
            index: 3,
        };
        assert_eq!(piece.failure(), FetchFailure::Failed);
        assert_eq!(
            piece.to_string(),
            "GET http://x/segments/00000001.ts: piece 3 does not match the signed info: rejected"
        );
    }
}
