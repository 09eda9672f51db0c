//! The stream's pointer on the mainline DHT: a BEP 44 mutable item, the BEP 46 way
//! (docs/manifest.md, "The DHT item").
//!
//! The publisher puts one item, signed with the stream key, under the target
//! `SHA-1(public key ‖ salt)` with salt [`SALT`]: its value is a bencoded dictionary
//! `{"ih": <info hash of a segment of the window>, "mh": <SHA-1 of the newest manifest document>,
//! "seq": <that manifest's sequence number>}`, and the item's own BEP 44 sequence number is the
//! manifest's. It is a pointer, not the manifest (items hold at most 1,000 bytes): a viewer that
//! has only the stream key gets it, finds the segment's peers on the DHT by its info hash, and
//! asks them for the manifest (docs/manifest.md, "Manifests carried by the swarm"). The segment
//! is the newest one whose peers the publisher has announced ([`segment_to_name`]).
//!
//! [`ItemVerifier`] checks items as [`crate::Verifier`] checks manifests, with the same typed
//! errors: the signature over BEP 44's signed encoding with the pinned key
//! ([`ManifestError::BadSignature`]), a value that is canonical bencode of the right shape whose
//! `seq` is the item's ([`ManifestError::Bencode`], [`ManifestError::Malformed`],
//! [`ManifestError::BadField`]), and sequence numbers that never go back
//! ([`ManifestError::StaleSequence`]: a replayed older item). This module does no I/O.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

use crate::keys::{StreamKey, StreamSecret};
use crate::ManifestError;

/// The item's salt: the same key may sign other items under other salts.
pub const SALT: &[u8] = b"swarmcast/1";

/// BEP 44's limit on a value's bencoded size.
pub const MAX_VALUE: usize = 1000;

/// A viewer holding a manifest asks the DHT again when no newer one came for this long, or for
/// three segment durations if that is longer ([`recheck_after`]): the swarm carries manifests,
/// the DHT is the backup (a missed end-of-stream manifest is found this way).
pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a viewer holding a manifest waits for a newer one before it asks the DHT: the
/// longer of [`RECHECK`] and three segment durations (`target`).
pub fn recheck_after(target: std::time::Duration) -> std::time::Duration {
    RECHECK.max(target.saturating_mul(3))
}

/// The segment a pointer to `manifest` names (by number): the newest of the window whose peers
/// the publisher has announced on the DHT, `announced` being the newest such segment's number;
/// the newest of the window when none of the window's is (a stream's first segment, or
/// announces failing). A put lands in one round trip to nodes the publisher already knows, an
/// announce of a new segment only after a lookup of its own (2 s and more), so a pointer naming
/// the newest segment at once would send viewers, in between, to a segment nobody is listed
/// under yet. `None`: the window is empty.
pub fn segment_to_name(
    manifest: &crate::Manifest,
    announced: Option<u64>,
) -> Option<&crate::SegmentEntry> {
    let newest = manifest.segments.last()?;
    Some(
        announced
            .and_then(|n| manifest.segments.iter().rev().find(|s| s.number <= n))
            .unwrap_or(newest),
    )
}

/// What the item says: where the stream is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pointer {
    /// The newest manifest's sequence number (also the item's BEP 44 `seq`).
    pub seq: u64,
    /// SHA-1 of the newest manifest document (its bytes as signed and served).
    pub manifest_sha1: [u8; 20],
    /// The info hash of the torrent whose peers a viewer asks for the manifest: a segment of the
    /// manifest's window, the newest whose peers are announced ([`segment_to_name`]).
    pub segment: [u8; 20],
}

#[derive(Serialize, Deserialize)]
struct ValueWire {
    ih: ByteBuf,
    mh: ByteBuf,
    seq: u64,
}

/// A signed item, as put on and got from the DHT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedItem {
    /// The BEP 44 sequence number.
    pub seq: i64,
    /// The bencoded value.
    pub value: Vec<u8>,
    /// The ed25519 signature over [`signable`]`(SALT, seq, value)`.
    pub signature: [u8; 64],
}

impl Pointer {
    /// The pointer to `manifest_doc` (the signed document), whose sequence number is `seq`,
    /// sending viewers to the peers of the segment with info hash `segment`.
    pub fn to_manifest(seq: u64, manifest_doc: &[u8], segment: [u8; 20]) -> Self {
        Self {
            seq,
            manifest_sha1: Sha1::digest(manifest_doc).into(),
            segment,
        }
    }

    /// The bencoded value (under [`MAX_VALUE`] bytes: about 70).
    pub fn encode(&self) -> Vec<u8> {
        serde_bencode::to_bytes(&ValueWire {
            ih: ByteBuf::from(self.segment.to_vec()),
            mh: ByteBuf::from(self.manifest_sha1.to_vec()),
            seq: self.seq,
        })
        .expect("a pointer always encodes")
    }

    /// Decodes a value: canonical bencode of the documented dictionary.
    pub fn decode(value: &[u8]) -> Result<Self, ManifestError> {
        const PART: &str = "dht item value";
        if value.len() > MAX_VALUE {
            return Err(ManifestError::TooLarge {
                found: value.len(),
                max: MAX_VALUE,
            });
        }
        crate::bencode::check_canonical(value)
            .map_err(|source| ManifestError::Bencode { part: PART, source })?;
        let wire: ValueWire =
            serde_bencode::from_bytes(value).map_err(|e| ManifestError::Malformed {
                part: PART,
                reason: e.to_string(),
            })?;
        let hash20 = |field: &'static str, b: &ByteBuf| -> Result<[u8; 20], ManifestError> {
            b.as_slice()
                .try_into()
                .map_err(|_| ManifestError::BadField {
                    field,
                    expected: "20 bytes".into(),
                    found: format!("{} bytes", b.len()),
                })
        };
        Ok(Self {
            segment: hash20("ih", &wire.ih)?,
            manifest_sha1: hash20("mh", &wire.mh)?,
            seq: wire.seq,
        })
    }

    /// Whether `manifest_doc` is the document this pointer names.
    pub fn names(&self, manifest_doc: &[u8]) -> bool {
        <[u8; 20]>::from(Sha1::digest(manifest_doc)) == self.manifest_sha1
    }

    /// The item carrying this pointer, signed with the stream's secret.
    pub fn sign(&self, secret: &StreamSecret) -> Result<SignedItem, ManifestError> {
        let seq = i64::try_from(self.seq).map_err(|_| ManifestError::BadField {
            field: "seq",
            expected: "at most 2^63 - 1 (a BEP 44 sequence number)".into(),
            found: self.seq.to_string(),
        })?;
        let value = self.encode();
        let signature = secret.sign(&signable(SALT, seq, &value));
        Ok(SignedItem {
            seq,
            value,
            signature,
        })
    }
}

/// BEP 44's signed encoding: `4:salt<len>:<salt>3:seqi<seq>e1:v<len>:<value>` (the salt part
/// only with a salt). ed25519 signs exactly these bytes; swarmcast's manifests sign bytes that
/// begin with their own context string instead, so neither signature can pass for the other.
pub fn signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(salt.len() + value.len() + 40);
    if !salt.is_empty() {
        out.extend_from_slice(format!("4:salt{}:", salt.len()).as_bytes());
        out.extend_from_slice(salt);
    }
    out.extend_from_slice(format!("3:seqi{seq}e1:v{}:", value.len()).as_bytes());
    out.extend_from_slice(value);
    out
}

/// Accepts the items of one stream in order: pinned key, valid value, sequence numbers that do
/// not go back.
#[derive(Clone, Debug)]
pub struct ItemVerifier {
    key: StreamKey,
    last: Option<u64>,
}

impl ItemVerifier {
    /// A verifier for the stream with public key `key`; `last`: the newest manifest sequence
    /// number already held (an item older than that is a replay).
    pub fn new(key: StreamKey, last: Option<u64>) -> Self {
        Self { key, last }
    }

    /// The newest sequence number accepted.
    pub fn last_seq(&self) -> Option<u64> {
        self.last
    }

    /// Checks an item that claims to be the stream's: `key` is the public key it was found
    /// under. An item equal in sequence to the last accepted is accepted again (a DHT returns
    /// the same item from several nodes).
    pub fn accept(&mut self, key: &[u8; 32], item: &SignedItem) -> Result<Pointer, ManifestError> {
        if key != self.key.as_bytes() {
            return Err(ManifestError::WrongStream {
                expected: self.key,
                found: StreamKey::from_bytes(key).map_err(|e| ManifestError::BadField {
                    field: "k",
                    expected: "an ed25519 public key".into(),
                    found: e.to_string(),
                })?,
            });
        }
        if !self
            .key
            .verify(&signable(SALT, item.seq, &item.value), &item.signature)
        {
            return Err(ManifestError::BadSignature);
        }
        let pointer = Pointer::decode(&item.value)?;
        if i64::try_from(pointer.seq).ok() != Some(item.seq) {
            return Err(ManifestError::BadField {
                field: "seq",
                expected: format!("the item's sequence number {}", item.seq),
                found: pointer.seq.to_string(),
            });
        }
        if let Some(last) = self.last {
            if pointer.seq < last {
                return Err(ManifestError::StaleSequence {
                    last,
                    found: pointer.seq,
                });
            }
        }
        self.last = Some(pointer.seq);
        Ok(pointer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> StreamSecret {
        StreamSecret::from_seed(&[7; 32])
    }

    fn pointer(seq: u64) -> Pointer {
        Pointer::to_manifest(seq, format!("manifest {seq}").as_bytes(), [seq as u8; 20])
    }

    #[test]
    fn a_pointer_round_trips_and_fits_an_item() {
        let p = pointer(42);
        let value = p.encode();
        assert!(value.len() < 100, "{} bytes", value.len());
        assert_eq!(Pointer::decode(&value).unwrap(), p);
        assert!(p.names(b"manifest 42"));
        assert!(!p.names(b"manifest 43"));
    }

    #[test]
    fn the_signed_encoding_is_bep44s() {
        // BEP 44's example: salt "foobar", seq 4, v "Hello World!" (as a bencoded string).
        assert_eq!(
            signable(b"foobar", 4, b"12:Hello World!"),
            b"4:salt6:foobar3:seqi4e1:v15:12:Hello World!".to_vec()
        );
        assert_eq!(signable(b"", 1, b"i1e"), b"3:seqi1e1:v3:i1e".to_vec());
    }

    #[test]
    fn items_are_accepted_in_order_and_a_replayed_older_one_is_stale() {
        let s = secret();
        let mut v = ItemVerifier::new(s.public(), None);
        let key = *s.public().as_bytes();
        assert_eq!(
            v.accept(&key, &pointer(5).sign(&s).unwrap()).unwrap(),
            pointer(5)
        );
        // The same item again (several DHT nodes hold it): fine.
        assert!(v.accept(&key, &pointer(5).sign(&s).unwrap()).is_ok());
        assert!(v.accept(&key, &pointer(6).sign(&s).unwrap()).is_ok());
        let err = v.accept(&key, &pointer(5).sign(&s).unwrap()).unwrap_err();
        assert!(
            matches!(err, ManifestError::StaleSequence { last: 6, found: 5 }),
            "{err}"
        );
        // A verifier that already holds manifest 9 refuses an item for 8.
        let mut held = ItemVerifier::new(s.public(), Some(9));
        assert!(matches!(
            held.accept(&key, &pointer(8).sign(&s).unwrap()),
            Err(ManifestError::StaleSequence { last: 9, found: 8 })
        ));
    }

    #[test]
    fn forged_items_are_refused_with_the_manifest_errors() {
        let s = secret();
        let key = *s.public().as_bytes();
        let mut v = ItemVerifier::new(s.public(), None);
        // Signed by another key.
        let other = StreamSecret::from_seed(&[8; 32]);
        let forged = pointer(3).sign(&other).unwrap();
        assert!(matches!(
            v.accept(&key, &forged),
            Err(ManifestError::BadSignature)
        ));
        // Found under another key.
        assert!(matches!(
            v.accept(other.public().as_bytes(), &forged),
            Err(ManifestError::WrongStream { .. })
        ));
        // A value changed after signing.
        let mut tampered = pointer(3).sign(&s).unwrap();
        let last = tampered.value.len() - 2;
        tampered.value[last] ^= 1;
        assert!(matches!(
            v.accept(&key, &tampered),
            Err(ManifestError::BadSignature)
        ));
        // The item's sequence raised without re-signing.
        let mut bumped = pointer(3).sign(&s).unwrap();
        bumped.seq = 4;
        assert!(matches!(
            v.accept(&key, &bumped),
            Err(ManifestError::BadSignature)
        ));
        // Signed, but the value's seq is not the item's.
        let value = pointer(3).encode();
        let lying = SignedItem {
            seq: 10,
            signature: s.sign(&signable(SALT, 10, &value)),
            value,
        };
        assert!(matches!(
            v.accept(&key, &lying),
            Err(ManifestError::BadField { field: "seq", .. })
        ));
        // Signed, but not our value at all.
        let junk = b"d2:ih3:abce".to_vec();
        let signed_junk = SignedItem {
            seq: 1,
            signature: s.sign(&signable(SALT, 1, &junk)),
            value: junk,
        };
        assert!(matches!(
            v.accept(&key, &signed_junk),
            Err(ManifestError::Malformed { .. })
        ));
        // Signed under another salt: not this item.
        let value = pointer(3).encode();
        let salted = SignedItem {
            seq: 3,
            signature: s.sign(&signable(b"other", 3, &value)),
            value,
        };
        assert!(matches!(
            v.accept(&key, &salted),
            Err(ManifestError::BadSignature)
        ));
        assert_eq!(v.last_seq(), None, "nothing forged was accepted");
    }

    #[test]
    fn non_canonical_and_wrong_sized_values_are_refused() {
        assert!(matches!(
            Pointer::decode(b"d3:seqi1e2:ih0:e"),
            Err(ManifestError::Bencode { .. })
        ));
        let short = b"d2:ih3:abc2:mh20:aaaaaaaaaaaaaaaaaaaa3:seqi1ee";
        assert!(matches!(
            Pointer::decode(short),
            Err(ManifestError::BadField { field: "ih", .. })
        ));
        assert!(matches!(
            Pointer::decode(&[b'x'; 1001]),
            Err(ManifestError::TooLarge { .. })
        ));
    }

    fn window(numbers: std::ops::RangeInclusive<u64>) -> crate::Manifest {
        crate::Manifest {
            key: secret().public(),
            seq: 9,
            issued_ms: 0,
            target_duration: 180_000,
            peers: vec![],
            trackers: vec![],
            end_of_stream: false,
            segments: numbers
                .map(|number| crate::SegmentEntry {
                    number,
                    media_start: number * 180_000,
                    duration: 180_000,
                    size: 1,
                    discontinuity: false,
                    published_ms: 0,
                    info_hash: crate::InfoHash([number as u8; 20]),
                    info: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn the_pointer_names_the_newest_segment_whose_peers_are_announced() {
        let m = window(3..=7);
        let named = |announced| segment_to_name(&m, announced).map(|s| s.number);
        // Segment 7 is being announced, 6 was: viewers are sent to 6's peers.
        assert_eq!(named(Some(6)), Some(6));
        assert_eq!(named(Some(7)), Some(7));
        // None announced yet (the stream's first segment), or every announce of the window
        // failed (the last one landed before it): the newest.
        assert_eq!(named(None), Some(7));
        assert_eq!(named(Some(2)), Some(7));
        // An announce newer than the manifest (a manifest handed over late): its newest.
        assert_eq!(named(Some(8)), Some(7));
        let mut empty = window(0..=0);
        empty.segments.clear();
        assert_eq!(segment_to_name(&empty, Some(1)).map(|s| s.number), None);
        // The pointer carries that segment's info hash.
        let p = Pointer::to_manifest(9, b"doc", segment_to_name(&m, Some(6)).unwrap().info_hash.0);
        assert_eq!(Pointer::decode(&p.encode()).unwrap().segment, [6; 20]);
    }
}
