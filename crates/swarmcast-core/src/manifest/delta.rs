//! Manifest deltas: a newer document sent as what changed since one the reader holds.
//!
//! A follower that already holds document `base` needs only the window entries it has not seen.
//! A delta is the canonical bencoding of
//! `{base: <seq>, from: <number>, keep: <count>, part: <bytes>, sig: <64 bytes>}`: `part` is the new
//! document's body with its first `keep` window entries left out, and those entries are the base's
//! entries numbered `from` to `from + keep - 1`, byte for byte. `sig` is the new document's own
//! signature. The reader rebuilds the body (the base's entries, then `part`'s), re-encodes it
//! canonically and verifies `sig` on it as on any document: a delta needs no signature of its own,
//! and a forged or damaged one fails exactly as a forged document does. docs/manifest.md
//! ("Deltas") specifies it.
//!
//! The rebuilding works on bencode values, not on [`super::Manifest`], so body and entry keys this
//! build does not know survive it (the signature covers them).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;

use super::{bad_field, canonical, check_received, EnvelopeWire, Manifest, SignedManifest};
use crate::error::ManifestError;

/// The HTTP content type of a delta answer.
pub const DELTA_CONTENT_TYPE: &str = "application/x-bittorrent-swarmcast-manifest-delta";

/// Every canonical delta starts with these bytes (its first key is `base`); a full document starts
/// with `d4:body`.
const DELTA_PREFIX: &[u8] = b"d4:base";

#[derive(Serialize, Deserialize)]
struct DeltaWire {
    base: u64,
    from: u64,
    keep: u64,
    part: ByteBuf,
    sig: ByteBuf,
}

/// Whether `doc` is a delta rather than a full document (by its first key; nothing else is
/// checked).
pub fn is_delta(doc: &[u8]) -> bool {
    doc.starts_with(DELTA_PREFIX)
}

/// The delta that turns `base` into `new`, or None when it would save nothing: `new` is not newer
/// or of another stream, or it shares no leading window entry with `base`.
pub fn encode(base: &Manifest, new: &SignedManifest) -> Option<Vec<u8>> {
    let m = &new.manifest;
    if base.key != m.key || base.seq >= m.seq {
        return None;
    }
    // The leading entries of the new window that the base lists identically.
    let keep = m
        .segments
        .iter()
        .take_while(|e| base.segments.iter().any(|b| b == *e))
        .count();
    if keep == 0 {
        return None;
    }
    let envelope: EnvelopeWire = serde_bencode::from_bytes(&new.bytes).ok()?;
    let mut part = m.clone();
    part.segments.drain(..keep);
    let wire = DeltaWire {
        base: base.seq,
        from: m.segments[0].number,
        keep: keep as u64,
        part: ByteBuf::from(part.encode_body()),
        sig: envelope.sig,
    };
    Some(serde_bencode::to_bytes(&wire).expect("a delta always encodes"))
}

fn malformed(reason: impl ToString) -> ManifestError {
    ManifestError::Malformed {
        part: "delta",
        reason: reason.to_string(),
    }
}

fn dict(value: Value, what: &str) -> Result<HashMap<Vec<u8>, Value>, ManifestError> {
    match value {
        Value::Dict(d) => Ok(d),
        _ => Err(malformed(format!("{what} is not a dictionary"))),
    }
}

fn window(body: &mut HashMap<Vec<u8>, Value>, what: &str) -> Result<Vec<Value>, ManifestError> {
    match body.remove(b"window".as_slice()) {
        Some(Value::List(l)) => Ok(l),
        _ => Err(malformed(format!("{what} has no window list"))),
    }
}

/// The `base` a delta names (checked as far as decoding it takes).
pub fn stated_base(delta: &[u8]) -> Result<u64, ManifestError> {
    let wire: DeltaWire = serde_bencode::from_bytes(delta).map_err(malformed)?;
    Ok(wire.base)
}

/// Rebuilds the full document a delta describes from the document it applies to (`base_doc`,
/// accepted with sequence number `base_seq`). The result is *not* verified: pass it to
/// [`super::Verifier::accept`] or [`super::verify`], which check its signature and everything else.
///
/// Errors: [`ManifestError::DeltaBase`] when the delta applies to another document; `Bencode` or
/// `Malformed` (part `delta`) when it is not a canonical delta; `BadField` (`keep`) when the kept
/// entries are not all in the base.
pub fn apply(delta: &[u8], base_seq: u64, base_doc: &[u8]) -> Result<Vec<u8>, ManifestError> {
    check_received(delta, "delta")?;
    let wire: DeltaWire = serde_bencode::from_bytes(delta).map_err(malformed)?;
    if wire.base != base_seq {
        return Err(ManifestError::DeltaBase {
            stated: wire.base,
            have: Some(base_seq),
        });
    }
    canonical(&wire.part, "delta")?;
    let mut part = dict(
        serde_bencode::from_bytes(&wire.part).map_err(malformed)?,
        "part",
    )?;
    let added = window(&mut part, "part")?;

    // The base's entries, as the base document carries them.
    let envelope: EnvelopeWire = serde_bencode::from_bytes(base_doc).map_err(malformed)?;
    let mut base_body = dict(
        serde_bencode::from_bytes(&envelope.body).map_err(malformed)?,
        "the base's body",
    )?;
    let base_window = window(&mut base_body, "the base's body")?;
    let number = |v: &Value| match v {
        Value::Dict(d) => match d.get(b"number".as_slice()) {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        },
        _ => None,
    };
    let first = base_window.first().and_then(number);
    let skip = first.and_then(|f| wire.from.checked_sub(f));
    let kept = match skip {
        Some(skip)
            if skip
                .checked_add(wire.keep)
                .is_some_and(|end| end <= base_window.len() as u64) =>
        {
            &base_window[skip as usize..(skip + wire.keep) as usize]
        }
        _ => {
            let held = match (first, base_window.len() as u64) {
                (Some(f), n) if n > 0 => format!("segments {f} to {}", f + n - 1),
                _ => "no segment".to_owned(),
            };
            return Err(bad_field(
                "keep",
                format!("segments the base holds ({held})"),
                format!("{} segments from {}", wire.keep, wire.from),
            ));
        }
    };
    let mut rebuilt: Vec<Value> = kept.to_vec();
    rebuilt.extend(added);
    part.insert(b"window".to_vec(), Value::List(rebuilt));
    let body = serde_bencode::to_bytes(&Value::Dict(part)).map_err(malformed)?;
    let doc = serde_bencode::to_bytes(&EnvelopeWire {
        body: ByteBuf::from(body),
        sig: wire.sig,
    })
    .map_err(malformed)?;
    Ok(doc)
}
