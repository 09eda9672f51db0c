//! The signed rolling manifest: its model, encoding, signing and verification.
//!
//! A manifest document is the canonical bencoding of `{body: <bytes>, sig: <64 bytes>}`; `sig` is
//! the ed25519 signature of [`SIGNING_CONTEXT`] followed by the exact `body` bytes; `body` is the
//! canonical bencoding of a [`Manifest`]. docs/manifest.md gives the format byte for byte.
//!
//! [`Manifest::sign`] produces documents; [`Verifier`] accepts them for a pinned [`StreamKey`] and
//! remembers the last sequence number, refusing stale, replayed and equivocating documents.
//! [`decode`] checks everything that does not need a pinned key or history (used by `inspect`).
//! [`delta`] sends a follower only what changed since the document it holds.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bencode;
use crate::error::ManifestError;
use crate::keys::{StreamKey, StreamSecret};
use crate::torrent::{InfoDict, InfoHash};

pub mod delta;

/// The bytes prepended to the body before signing (domain separation).
pub const SIGNING_CONTEXT: &[u8] = b"swarmcast-manifest-v1\0";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Largest manifest document, in bytes.
pub const MAX_DOCUMENT: usize = 1 << 20;
/// Most segments in a window.
pub const MAX_WINDOW: usize = 64;
/// Most peer hints.
pub const MAX_PEERS: usize = 4;
/// Most tracker URLs.
pub const MAX_TRACKERS: usize = 4;
/// Longest peer hint or tracker URL, in bytes.
pub const MAX_ADDRESS_LEN: usize = 1024;
/// Media clock rate: times and durations are in ticks of 1/90,000 s (MPEG-TS PTS units).
pub const TICKS_PER_SECOND: u64 = 90_000;

/// One segment as listed in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Segment number: 0 for the stream's first, one more for each next.
    pub number: u64,
    /// Media time of the segment's start, in 90 kHz ticks, on the stream's unwrapped timeline.
    pub media_start: u64,
    /// Media duration in 90 kHz ticks.
    pub duration: u64,
    /// Size of the segment file in bytes (equal to the info's `length`).
    pub size: u64,
    /// The segment starts a discontinuity (publisher restart, timestamp jump): players reset.
    pub discontinuity: bool,
    /// When the publisher first listed the segment, ms since the Unix epoch.
    pub published_ms: u64,
    /// The info hash: SHA-1 of `info`.
    pub info_hash: InfoHash,
    /// The segment torrent's `info` dictionary, exactly as bencoded.
    pub info: Vec<u8>,
}

/// The signed content of a manifest document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The stream's public key.
    pub key: StreamKey,
    /// Sequence number: every new document of a stream has a larger one.
    pub seq: u64,
    /// When the document was signed, ms since the Unix epoch.
    pub issued_ms: u64,
    /// Target segment duration in 90 kHz ticks.
    pub target_duration: u64,
    /// Publisher peer addresses (`host:port`), at most [`MAX_PEERS`].
    pub peers: Vec<String>,
    /// Tracker URLs, at most [`MAX_TRACKERS`].
    pub trackers: Vec<String>,
    /// No segments will follow the last one listed.
    pub end_of_stream: bool,
    /// The window, oldest first, consecutive numbers, at most [`MAX_WINDOW`].
    pub segments: Vec<SegmentEntry>,
}

/// A verified (or freshly signed) document together with its exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedManifest {
    /// The decoded body.
    pub manifest: Manifest,
    /// The document bytes, as served and mirrored.
    pub bytes: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct EnvelopeWire {
    body: ByteBuf,
    sig: ByteBuf,
}

#[derive(Serialize, Deserialize)]
struct BodyWire {
    version: u64,
    key: ByteBuf,
    seq: u64,
    issued_ms: u64,
    target_duration: u64,
    peers: Vec<String>,
    trackers: Vec<String>,
    end_of_stream: u8,
    window: Vec<SegmentWire>,
}

#[derive(Serialize, Deserialize)]
struct SegmentWire {
    number: u64,
    media_start: u64,
    duration: u64,
    size: u64,
    discontinuity: u8,
    published_ms: u64,
    info_hash: ByteBuf,
    info: ByteBuf,
}

fn bad_field(
    field: &'static str,
    expected: impl Into<String>,
    found: impl ToString,
) -> ManifestError {
    ManifestError::BadField {
        field,
        expected: expected.into(),
        found: found.to_string(),
    }
}

fn flag(field: &'static str, value: u8) -> Result<bool, ManifestError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(bad_field(field, "0 or 1", other)),
    }
}

fn check_limit(field: &'static str, found: usize, max: usize) -> Result<(), ManifestError> {
    if found > max {
        return Err(ManifestError::LimitExceeded { field, max, found });
    }
    Ok(())
}

impl Manifest {
    /// Checks the rules that make a body valid on its own: limits, address syntax, consecutive
    /// segment numbers, and each info dictionary valid, matching its hash and its entry's size.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_limit("peers", self.peers.len(), MAX_PEERS)?;
        check_limit("trackers", self.trackers.len(), MAX_TRACKERS)?;
        check_limit("window", self.segments.len(), MAX_WINDOW)?;
        for peer in &self.peers {
            check_peer(peer)?;
        }
        for tracker in &self.trackers {
            if tracker.len() > MAX_ADDRESS_LEN || url::Url::parse(tracker).is_err() {
                return Err(bad_field("trackers", "absolute urls", tracker));
            }
        }
        if self.target_duration == 0 {
            return Err(bad_field(
                "target_duration",
                "a positive number of 90 kHz ticks",
                0,
            ));
        }
        let mut expected = self.segments.first().map(|s| s.number);
        for (index, seg) in self.segments.iter().enumerate() {
            if let Some(expected) = expected {
                if seg.number != expected {
                    return Err(ManifestError::NotContiguous {
                        index,
                        expected,
                        found: seg.number,
                    });
                }
            }
            expected = seg.number.checked_add(1);
            check_segment(seg)?;
        }
        Ok(())
    }

    /// The canonical body bytes.
    pub fn encode_body(&self) -> Vec<u8> {
        let wire = BodyWire {
            version: FORMAT_VERSION,
            key: ByteBuf::from(self.key.as_bytes().to_vec()),
            seq: self.seq,
            issued_ms: self.issued_ms,
            target_duration: self.target_duration,
            peers: self.peers.clone(),
            trackers: self.trackers.clone(),
            end_of_stream: self.end_of_stream as u8,
            window: self
                .segments
                .iter()
                .map(|s| SegmentWire {
                    number: s.number,
                    media_start: s.media_start,
                    duration: s.duration,
                    size: s.size,
                    discontinuity: s.discontinuity as u8,
                    published_ms: s.published_ms,
                    info_hash: ByteBuf::from(s.info_hash.0.to_vec()),
                    info: ByteBuf::from(s.info.clone()),
                })
                .collect(),
        };
        serde_bencode::to_bytes(&wire).expect("a manifest body always encodes")
    }

    /// Validates, encodes and signs the manifest. `secret` must be the key the body names.
    pub fn sign(&self, secret: &StreamSecret) -> Result<SignedManifest, ManifestError> {
        if secret.public() != self.key {
            return Err(ManifestError::WrongStream {
                expected: self.key,
                found: secret.public(),
            });
        }
        self.validate()?;
        let body = self.encode_body();
        let sig = secret.sign(&signed_message(&body));
        let envelope = EnvelopeWire {
            body: ByteBuf::from(body),
            sig: ByteBuf::from(sig.to_vec()),
        };
        let bytes = serde_bencode::to_bytes(&envelope).expect("an envelope always encodes");
        if bytes.len() > MAX_DOCUMENT {
            return Err(ManifestError::TooLarge {
                found: bytes.len(),
                max: MAX_DOCUMENT,
            });
        }
        Ok(SignedManifest {
            manifest: self.clone(),
            bytes,
        })
    }
}

fn check_peer(peer: &str) -> Result<(), ManifestError> {
    let bad = || bad_field("peers", "host:port addresses", peer);
    if peer.len() > MAX_ADDRESS_LEN {
        return Err(bad());
    }
    if peer.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = peer.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// Checks one entry: info hash, strict info dictionary, size, duration.
pub(crate) fn check_segment(seg: &SegmentEntry) -> Result<(), ManifestError> {
    let computed = InfoHash::of(&seg.info);
    if computed != seg.info_hash {
        return Err(ManifestError::InfoHashMismatch {
            segment: seg.number,
            stated: seg.info_hash.to_string(),
            computed: computed.to_string(),
        });
    }
    let info = InfoDict::decode_strict(&seg.info).map_err(|e| ManifestError::BadInfo {
        segment: seg.number,
        reason: e.to_string(),
    })?;
    if info.length != seg.size {
        return Err(ManifestError::BadInfo {
            segment: seg.number,
            reason: format!(
                "info length is {} bytes, the entry says size {}",
                info.length, seg.size
            ),
        });
    }
    if seg.duration == 0 {
        return Err(bad_field(
            "window.duration",
            "a positive number of 90 kHz ticks",
            0,
        ));
    }
    Ok(())
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.extend_from_slice(body);
    msg
}

/// A document decoded and checked as far as possible without a pinned key or history.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The body.
    pub manifest: Manifest,
    /// Whether the signature verifies under the key the body itself names.
    pub self_signed: bool,
}

/// Refuses bytes that are not canonical bencode; `part` names them in the error.
fn canonical(bytes: &[u8], part: &'static str) -> Result<(), ManifestError> {
    bencode::check_canonical(bytes).map_err(|source| ManifestError::Bencode { part, source })
}

/// Refuses a received document (or delta) over [`MAX_DOCUMENT`] or not canonical bencode.
fn check_received(doc: &[u8], part: &'static str) -> Result<(), ManifestError> {
    if doc.len() > MAX_DOCUMENT {
        return Err(ManifestError::TooLarge {
            found: doc.len(),
            max: MAX_DOCUMENT,
        });
    }
    canonical(doc, part)
}

fn decode_parts(doc: &[u8]) -> Result<(Manifest, Vec<u8>, [u8; 64]), ManifestError> {
    check_received(doc, "envelope")?;
    let envelope: EnvelopeWire =
        serde_bencode::from_bytes(doc).map_err(|e| ManifestError::Malformed {
            part: "envelope",
            reason: e.to_string(),
        })?;
    let sig: [u8; 64] = envelope
        .sig
        .as_slice()
        .try_into()
        .map_err(|_| bad_field("sig", "64 bytes", format!("{} bytes", envelope.sig.len())))?;
    let body = envelope.body.into_vec();
    canonical(&body, "body")?;
    let wire: BodyWire =
        serde_bencode::from_bytes(&body).map_err(|e| ManifestError::Malformed {
            part: "body",
            reason: e.to_string(),
        })?;
    if wire.version != FORMAT_VERSION {
        return Err(ManifestError::UnsupportedVersion {
            found: wire.version,
            supported: FORMAT_VERSION,
        });
    }
    let key: [u8; 32] = wire
        .key
        .as_slice()
        .try_into()
        .map_err(|_| bad_field("key", "32 bytes", format!("{} bytes", wire.key.len())))?;
    let key = StreamKey::from_bytes(&key)
        .map_err(|_| bad_field("key", "an ed25519 public key", hex::encode(key)))?;
    let mut segments = Vec::with_capacity(wire.window.len());
    for s in wire.window {
        let info_hash: [u8; 20] = s.info_hash.as_slice().try_into().map_err(|_| {
            bad_field(
                "window.info_hash",
                "20 bytes",
                format!("{} bytes", s.info_hash.len()),
            )
        })?;
        segments.push(SegmentEntry {
            number: s.number,
            media_start: s.media_start,
            duration: s.duration,
            size: s.size,
            discontinuity: flag("window.discontinuity", s.discontinuity)?,
            published_ms: s.published_ms,
            info_hash: InfoHash(info_hash),
            info: s.info.into_vec(),
        });
    }
    let manifest = Manifest {
        key,
        seq: wire.seq,
        issued_ms: wire.issued_ms,
        target_duration: wire.target_duration,
        peers: wire.peers,
        trackers: wire.trackers,
        end_of_stream: flag("end_of_stream", wire.end_of_stream)?,
        segments,
    };
    Ok((manifest, body, sig))
}

/// Decodes a document and checks everything but the pinned key and the sequence history: size,
/// canonical bencode, fields, limits, contiguity and info hashes. The signature is checked against
/// the key the body names and reported in [`Decoded::self_signed`]; only a [`Verifier`] with a
/// pinned key makes a document trustworthy.
pub fn decode(doc: &[u8]) -> Result<Decoded, ManifestError> {
    let (manifest, body, sig) = decode_parts(doc)?;
    manifest.validate()?;
    let self_signed = manifest.key.verify(&signed_message(&body), &sig);
    Ok(Decoded {
        manifest,
        self_signed,
    })
}

/// Verifies one document against a pinned key, without history: every check but the sequence.
pub fn verify(doc: &[u8], pinned: &StreamKey) -> Result<SignedManifest, ManifestError> {
    let (manifest, body, sig) = decode_parts(doc)?;
    if manifest.key != *pinned {
        return Err(ManifestError::WrongStream {
            expected: *pinned,
            found: manifest.key,
        });
    }
    if !pinned.verify(&signed_message(&body), &sig) {
        return Err(ManifestError::BadSignature);
    }
    manifest.validate()?;
    Ok(SignedManifest {
        manifest,
        bytes: doc.to_vec(),
    })
}

/// What [`Verifier::accept`] concluded about a valid document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A newer manifest, now the last accepted.
    New(SignedManifest),
    /// Byte for byte the last accepted document again.
    Unchanged,
}

/// Accepts the manifests of one stream in order: pinned key, growing sequence numbers, and no two
/// different documents with the same sequence number.
#[derive(Clone, Debug)]
pub struct Verifier {
    key: StreamKey,
    /// The last accepted sequence number and document (kept whole, so "unchanged" means identical
    /// bytes, not merely an equal digest).
    last: Option<(u64, Vec<u8>)>,
}

impl Verifier {
    /// A verifier for the stream with public key `key`, having accepted nothing yet.
    pub fn new(key: StreamKey) -> Self {
        Self { key, last: None }
    }

    /// The pinned key.
    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    /// The sequence number last accepted.
    pub fn last_seq(&self) -> Option<u64> {
        self.last.as_ref().map(|(seq, _)| *seq)
    }

    /// Checks a delta ([`delta`]) against the last accepted document: rebuilds the full document
    /// it describes, then checks that as [`Verifier::accept`] does. On success the rebuilt
    /// document becomes the last accepted (and is what [`Verdict::New`] carries).
    pub fn accept_delta(&mut self, delta_doc: &[u8]) -> Result<Verdict, ManifestError> {
        let Some((seq, last_doc)) = &self.last else {
            return Err(ManifestError::DeltaBase {
                stated: delta::stated_base(delta_doc)?,
                have: None,
            });
        };
        let doc = delta::apply(delta_doc, *seq, last_doc)?;
        self.accept(&doc)
    }

    /// [`Verifier::accept_delta`] for a delta, [`Verifier::accept`] for a full document.
    pub fn accept_any(&mut self, doc: &[u8]) -> Result<Verdict, ManifestError> {
        if delta::is_delta(doc) {
            self.accept_delta(doc)
        } else {
            self.accept(doc)
        }
    }

    /// Checks a document; on success it becomes the last accepted.
    pub fn accept(&mut self, doc: &[u8]) -> Result<Verdict, ManifestError> {
        if let Some((seq, last_doc)) = &self.last {
            if last_doc == doc {
                return Ok(Verdict::Unchanged);
            }
            let signed = verify(doc, &self.key)?;
            let found = signed.manifest.seq;
            if found < *seq {
                return Err(ManifestError::StaleSequence { last: *seq, found });
            }
            if found == *seq {
                return Err(ManifestError::Equivocation { seq: found });
            }
            self.last = Some((found, doc.to_vec()));
            return Ok(Verdict::New(signed));
        }
        let signed = verify(doc, &self.key)?;
        self.last = Some((signed.manifest.seq, doc.to_vec()));
        Ok(Verdict::New(signed))
    }
}

#[cfg(test)]
mod tests;
