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
) -> Result<u64, String> {
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
) -> Result<u64, String> {
    let mut response = client
        .get(url.clone())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        // Read the (one-line) body: a response read to its end leaves the connection open for
        // the next request, so a refusal costs the publisher two packets, not a new connection.
        let text = response.text().await.unwrap_or_default();
        let text = text.trim();
        let error = format!("GET {url}: {status}: {text}");
        return Err(match status.as_u16() {
            s if is_gone(s) => format!("{GONE}{error}"),
            503 => format!("{BUSY}{error}"),
            _ => error,
        });
    }
    progress(Milestone::Response);
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut piece = Vec::with_capacity(info.piece_length as usize);
    let mut index = 0u64;
    let mut total = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
    {
        if let Some(limiter) = limiter {
            limiter.take(chunk.len()).await;
        }
        total += chunk.len() as u64;
        progress(Milestone::Received(total));
        if total > info.length {
            return Err(format!(
                "GET {url}: more than the {} bytes the manifest states",
                info.length
            ));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
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
        return Err(format!(
            "GET {url}: {total} bytes, the manifest states {}",
            info.length
        ));
    }
    if !piece.is_empty() {
        check(info, index, &piece, url)?;
        if index == 0 {
            progress(Milestone::FirstPiece);
        }
    }
    file.sync_all()
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(total)
}

fn check(info: &InfoDict, index: u64, piece: &[u8], url: &Url) -> Result<(), String> {
    if info.verify_piece(index, piece) {
        Ok(())
    } else {
        Err(format!(
            "GET {url}: piece {index} does not match the signed info: rejected"
        ))
    }
}

/// Marks an error whose segment the server no longer has.
const GONE: &str = "gone: ";

/// Marks the publisher's refusal.
const BUSY: &str = "busy: ";

/// 404 or 410: the publisher dropped the segment (it left the window and its grace period).
fn is_gone(status: u16) -> bool {
    matches!(status, 404 | 410)
}

/// Why the fetch that returned `error` (from [`fetch_verified`]) failed: the server no longer
/// has the segment (asking again cannot help), the publisher refused (503: its fallback slots
/// were taken while the swarm carries the stream; expected under load), or anything else.
pub(crate) fn failure(error: &str) -> FetchFailure {
    if error.starts_with(GONE) {
        FetchFailure::Gone
    } else if error.starts_with(BUSY) {
        FetchFailure::Busy
    } else {
        FetchFailure::Failed
    }
}

/// True when `error` (from [`fetch_verified`]) says the server no longer has the segment.
pub(crate) fn gone(error: &str) -> bool {
    failure(error) == FetchFailure::Gone
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
        assert!(is_gone(404) && is_gone(410) && !is_gone(500) && !is_gone(503));
        let gone_error = format!("{GONE}GET http://x/segments/00000001.ts: 404 Not Found");
        assert_eq!(failure(&gone_error), FetchFailure::Gone);
        assert!(gone(&gone_error));
        assert_eq!(
            failure("GET http://x/segments/00000001.ts: error decoding response body"),
            FetchFailure::Failed
        );
        assert_eq!(
            failure("piece 3 does not match the signed info: rejected"),
            FetchFailure::Failed
        );
        let busy_error = format!("{BUSY}GET http://x/segments/00000001.ts: 503");
        assert_eq!(failure(&busy_error), FetchFailure::Busy);
        assert!(!gone(&busy_error));
    }
}
