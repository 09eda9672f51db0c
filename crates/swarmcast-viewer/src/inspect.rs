//! `swarmcast inspect`: fetches a manifest or a `.torrent` (by stream link, URL or file path),
//! decodes it and checks a manifest's signature. The binary prints what this finds.

use std::time::Duration;

use swarmcast_core::inspect::{Document, InspectError as DecodeError};
use swarmcast_core::{manifest, KeyError, LinkError, ManifestError, StreamKey, StreamLink};
use tokio_util::sync::CancellationToken;

/// Largest document `inspect` downloads: a manifest is at most 1 MiB; a .torrent of 16 GiB at
/// 32 KiB pieces holds 10 MiB of hashes (the piece-length rule picks 16 MiB pieces there: 20 KiB).
pub const MAX_FETCH: usize = 16 << 20;

/// How long one fetch may take (connect, headers and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a document could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// `--key` is not a stream key.
    #[error("--key")]
    Key(#[source] KeyError),
    /// The target starts like a stream link but is not one.
    #[error("invalid stream link")]
    Link(#[source] LinkError),
    /// `--key` and the link's key differ.
    #[error("--key {given} differs from the link's key {link}")]
    KeyMismatch {
        /// The key given.
        given: StreamKey,
        /// The link's.
        link: StreamKey,
    },
    /// No source of the link answered.
    #[error("no manifest source answered: {0}")]
    Sources(String),
    /// The URL could not be fetched.
    #[error("GET {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid manifest or `.torrent`.
    #[error("{target}")]
    Decode {
        /// What was inspected.
        target: String,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// What a manifest's signature says.
#[derive(Debug)]
pub enum Signature {
    /// A `.torrent`: there is no signature (`pinned`: a key was given to check it against).
    None {
        /// A key was given (`--key`, or the link's).
        pinned: bool,
    },
    /// Checked against the pinned key (`--key`, or the link's): valid, or why not.
    Pinned(StreamKey, Result<(), ManifestError>),
    /// Valid for the key the manifest names, which nobody pinned.
    SelfSigned,
    /// Invalid even for the key the manifest names.
    Invalid(StreamKey),
}

/// A decoded document and its signature check.
#[derive(Debug)]
pub struct Inspection {
    /// The document.
    pub document: Document,
    /// The key it was checked against, if any, and the verdict.
    pub signature: Signature,
}

/// Fetches `target` (a `swarmcast:` link, an http(s) URL or a file path), decodes it and, for
/// a manifest, checks its signature against `key` (or the link's key).
pub async fn inspect(
    target: &str,
    key: Option<&str>,
    cancel: &CancellationToken,
) -> Result<Inspection, InspectError> {
    let mut pinned = key
        .map(str::parse::<StreamKey>)
        .transpose()
        .map_err(InspectError::Key)?;
    let bytes = if target.starts_with("swarmcast:") {
        let link: StreamLink = target.parse().map_err(InspectError::Link)?;
        if let Some(given) = pinned.filter(|k| *k != link.key) {
            return Err(InspectError::KeyMismatch {
                given,
                link: link.key,
            });
        }
        pinned = Some(link.key);
        until_cancelled(cancel, fetch_first(&link)).await?
    } else if target.starts_with("http://") || target.starts_with("https://") {
        until_cancelled(cancel, fetch(target)).await?
    } else {
        tokio::fs::read(target)
            .await
            .map_err(|source| InspectError::Read {
                path: target.to_string(),
                source,
            })?
    };
    let document = Document::parse(&bytes).map_err(|source| InspectError::Decode {
        target: target.to_string(),
        source,
    })?;
    let signature = match (&document, pinned) {
        (Document::Torrent(_), key) => Signature::None {
            pinned: key.is_some(),
        },
        (Document::Manifest(_), Some(key)) => {
            Signature::Pinned(key, manifest::verify(&bytes, &key).map(|_| ()))
        }
        (Document::Manifest(d), None) if d.self_signed => Signature::SelfSigned,
        (Document::Manifest(d), None) => Signature::Invalid(d.manifest.key),
    };
    Ok(Inspection {
        document,
        signature,
    })
}

async fn until_cancelled<T>(
    cancel: &CancellationToken,
    f: impl std::future::Future<Output = Result<T, InspectError>>,
) -> Result<T, InspectError> {
    cancel
        .run_until_cancelled(f)
        .await
        .unwrap_or(Err(InspectError::Interrupted))
}

/// The first of the link's sources that answers.
async fn fetch_first(link: &StreamLink) -> Result<Vec<u8>, InspectError> {
    let mut errors = Vec::new();
    for source in &link.sources {
        match fetch(source.as_str()).await {
            Ok(bytes) => return Ok(bytes),
            Err(e) => {
                tracing::warn!(%source, error = %e, "manifest source failed, trying the next");
                errors.push(format!("{source}: {e}"));
            }
        }
    }
    Err(InspectError::Sources(errors.join("; ")))
}

async fn fetch(url: &str) -> Result<Vec<u8>, InspectError> {
    let failed = |reason: String| InspectError::Fetch {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| failed(format!("cannot build an HTTP client: {e}")))?;
    let parsed = url::Url::parse(url).map_err(|e| failed(format!("not a URL: {e}")))?;
    crate::poller::fetch_capped(&client, &parsed, FETCH_TIMEOUT, MAX_FETCH)
        .await
        .map_err(failed)
}
