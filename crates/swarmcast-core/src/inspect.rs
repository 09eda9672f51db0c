//! Telling a manifest from a `.torrent`, and describing either for people (`swarmcast inspect`).

use std::fmt::{self, Write as _};

use crate::bencode;
use crate::error::{ManifestError, TorrentError};
use crate::manifest::{self, Decoded, Manifest, TICKS_PER_SECOND};
use crate::torrent::{InfoDict, SegmentTorrent};

/// A document `inspect` understands.
#[derive(Clone, Debug)]
pub enum Document {
    /// A manifest, decoded but not checked against a pinned key.
    Manifest(Decoded),
    /// A `.torrent` file.
    Torrent(SegmentTorrent),
}

/// Why a document could not be inspected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// It looks like a manifest but is not a valid one.
    #[error("invalid manifest")]
    Manifest(#[from] ManifestError),
    /// It looks like a torrent but is not a valid one.
    #[error("invalid torrent")]
    Torrent(#[from] TorrentError),
    /// Neither.
    #[error("not a swarmcast manifest or a .torrent file (expected a bencoded dictionary with sig and body, or with info)")]
    Unknown,
}

impl Document {
    /// Recognises and decodes `bytes`: a dictionary with `info` is a torrent, one with `sig` and
    /// `body` a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Self, InspectError> {
        if let Ok(Some(_)) = bencode::dict_value_span(bytes, b"info") {
            return Ok(Self::Torrent(SegmentTorrent::parse(bytes)?));
        }
        match (
            bencode::dict_value_span(bytes, b"body"),
            bencode::dict_value_span(bytes, b"sig"),
        ) {
            (Ok(Some(_)), Ok(Some(_))) => Ok(Self::Manifest(manifest::decode(bytes)?)),
            _ => Err(InspectError::Unknown),
        }
    }
}

fn seconds(ticks: u64) -> String {
    format!("{:.3} s", ticks as f64 / TICKS_PER_SECOND as f64)
}

/// A multi-line description of a manifest body.
pub fn describe_manifest(m: &Manifest) -> String {
    let mut out = String::new();
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let _ = writeln!(out, "manifest");
    let _ = writeln!(out, "  stream key     {}", m.key);
    let _ = writeln!(out, "  seq            {}", m.seq);
    let _ = writeln!(
        out,
        "  issued         {} ms since the Unix epoch",
        m.issued_ms
    );
    let _ = writeln!(
        out,
        "  target         {} ({} ticks)",
        seconds(m.target_duration),
        m.target_duration
    );
    let _ = writeln!(
        out,
        "  end of stream  {}",
        if m.end_of_stream { "yes" } else { "no" }
    );
    let _ = writeln!(out, "  peers          {}", list(&m.peers));
    let _ = writeln!(out, "  trackers       {}", list(&m.trackers));
    match (m.segments.first(), m.segments.last()) {
        (Some(first), Some(last)) => {
            let _ = writeln!(
                out,
                "  window         {} segments, {} to {}",
                m.segments.len(),
                first.number,
                last.number
            );
        }
        _ => {
            let _ = writeln!(out, "  window         empty");
        }
    }
    for s in &m.segments {
        let pieces = InfoDict::decode_strict(&s.info)
            .map(|i| format!("{} x {}", i.piece_count(), i.piece_length))
            .unwrap_or_else(|e| e.to_string());
        let _ = writeln!(
            out,
            "    #{:<8} start {:>12}  duration {}  size {:>10}  {}published {} ms  info hash {}  pieces {}",
            s.number,
            seconds(s.media_start),
            seconds(s.duration),
            s.size,
            if s.discontinuity { "discontinuity  " } else { "" },
            s.published_ms,
            s.info_hash,
            pieces
        );
    }
    out
}

/// A multi-line description of a torrent.
pub fn describe_torrent(t: &SegmentTorrent) -> String {
    let mut out = String::new();
    let info = t.info();
    let _ = writeln!(out, "torrent");
    let _ = writeln!(out, "  name           {}", info.name);
    let _ = writeln!(out, "  length         {}", info.length);
    let _ = writeln!(out, "  piece length   {}", info.piece_length);
    let _ = writeln!(out, "  pieces         {}", info.piece_count());
    let _ = writeln!(out, "  info hash      {}", t.info_hash());
    for tr in t.trackers() {
        let _ = writeln!(out, "  tracker        {tr}");
    }
    let _ = writeln!(out, "  magnet         {}", t.magnet());
    out
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Manifest(d) => f.write_str(&describe_manifest(&d.manifest)),
            Self::Torrent(t) => f.write_str(&describe_torrent(t)),
        }
    }
}
