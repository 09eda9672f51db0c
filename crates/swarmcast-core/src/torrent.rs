//! BitTorrent v1 metainfo for one segment file.
//!
//! A segment torrent is single-file, and its `info` dictionary holds exactly `length`, `name`,
//! `piece length` and `pieces`, in that (sorted) order, so it is byte-identical to what mktorrent
//! writes for the same file, name and piece length, and so are the info hashes. [`InfoDict`] is that
//! dictionary; [`SegmentTorrent`] adds the info hash and trackers, and writes `.torrent` files and
//! magnet links. Hashing reads through a fixed 64 KiB buffer whatever the piece length.
//!
//! librqbit's own `create_torrent` writes an extra piece hash when the size is an exact multiple of
//! the piece length, which other clients reject; this module never does.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::bencode;
use crate::error::TorrentError;

/// Smallest piece length: 16 KiB, one BitTorrent block (libtorrent's minimum; mktorrent's is
/// 32 KiB, `-l 15`).
pub const MIN_PIECE_LENGTH: u64 = 16 * 1024;
/// Where the piece-length rule starts: 32 KiB. 16 KiB pieces cut the setup by a third on the
/// emulated network but cost copies and missed segments with 60% of viewers behind NAT
/// (docs/experiments.md, "16 KiB pieces"), so they are a choice (`--piece-length 16384`), not the
/// default.
pub const DEFAULT_MIN_PIECE_LENGTH: u64 = 32 * 1024;
/// Largest piece length: 16 MiB (`-l 24`).
pub const MAX_PIECE_LENGTH: u64 = 16 * 1024 * 1024;
/// The piece-length rule aims at no more than this many pieces.
pub const TARGET_MAX_PIECES: u64 = 1024;
/// Size of the buffer hashing reads through.
pub const HASH_BUFFER: usize = 64 * 1024;

/// The piece length for a segment of `size` bytes: the smallest power of two from 32 KiB
/// ([`DEFAULT_MIN_PIECE_LENGTH`]) up that gives at most 1,024 pieces, and 16 MiB past 16 GiB.
///
/// Why 1,024: a segment's piece hashes travel in every manifest that lists it (20 bytes a piece),
/// and each finished piece costs a Have message to every peer, so fewer pieces cost less; but a
/// viewer can only re-share whole pieces, and the first piece must arrive before any sharing starts,
/// so pieces should stay small: a viewer that does not get its first piece from the publisher waits
/// for another viewer's whole piece (at 20 viewers and RTT 150 ms, 16 KiB pieces took the setup
/// median from 6.5 round trips to 4.1; docs/experiments.md). Segments under 32 MiB use 32 KiB
/// pieces; from 32 MiB up the count lies between 513 and 1,024.
pub fn piece_length_for(size: u64) -> u64 {
    let mut piece = DEFAULT_MIN_PIECE_LENGTH;
    while piece < MAX_PIECE_LENGTH && size.div_ceil(piece) > TARGET_MAX_PIECES {
        piece *= 2;
    }
    piece
}

/// Checks a piece length given by a user: a power of two from 16 KiB to 16 MiB.
pub fn check_piece_length(piece_length: u64) -> Result<u64, TorrentError> {
    if piece_length.is_power_of_two()
        && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&piece_length)
    {
        Ok(piece_length)
    } else {
        Err(TorrentError::BadPieceLength {
            found: piece_length,
        })
    }
}

/// Reads `reader` to its end and returns the concatenated SHA-1 of each `piece_length` bytes (the
/// last piece may be shorter) and the number of bytes read. Memory use is fixed: one 64 KiB buffer.
pub fn hash_pieces<R: Read>(mut reader: R, piece_length: u64) -> io::Result<(Vec<u8>, u64)> {
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut pieces = Vec::new();
    let mut hasher = Sha1::new();
    let mut in_piece = 0u64;
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let take = chunk.len().min((piece_length - in_piece) as usize);
            hasher.update(&chunk[..take]);
            in_piece += take as u64;
            chunk = &chunk[take..];
            if in_piece == piece_length {
                pieces.extend_from_slice(&hasher.finalize_reset());
                in_piece = 0;
            }
        }
    }
    if in_piece > 0 {
        pieces.extend_from_slice(&hasher.finalize());
    }
    Ok((pieces, total))
}

/// A v1 info hash: the SHA-1 of the bencoded `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The info hash of the given info bytes.
    pub fn of(info_bytes: &[u8]) -> Self {
        Self(Sha1::digest(info_bytes).into())
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = hex::FromHexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }
}

/// The `info` dictionary of a single-file v1 torrent, with exactly the four fields mktorrent writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoDict {
    /// File size in bytes.
    pub length: u64,
    /// File name (also the suggested file name on disk).
    pub name: String,
    /// Bytes per piece.
    #[serde(rename = "piece length")]
    pub piece_length: u64,
    /// Concatenated 20-byte SHA-1 hashes of the pieces.
    #[serde(with = "serde_bytes")]
    pub pieces: Vec<u8>,
}

impl InfoDict {
    /// The canonical bencoding (what the info hash is computed over).
    pub fn encode(&self) -> Vec<u8> {
        serde_bencode::to_bytes(self).expect("an info dictionary always encodes")
    }

    /// Decodes info bytes that must be exactly the canonical encoding of a valid `InfoDict`: no
    /// extra fields, consistent piece count. Used for info dictionaries carried in manifests.
    pub fn decode_strict(bytes: &[u8]) -> Result<Self, TorrentError> {
        bencode::check_canonical(bytes)?;
        let info: Self =
            serde_bencode::from_bytes(bytes).map_err(|e| TorrentError::Malformed(e.to_string()))?;
        if info.encode() != bytes {
            return Err(TorrentError::Malformed(
                "info has fields other than length, name, piece length and pieces".into(),
            ));
        }
        info.validate()?;
        Ok(info)
    }

    /// Checks the internal consistency of the dictionary.
    pub fn validate(&self) -> Result<(), TorrentError> {
        check_name(&self.name)?;
        if self.length == 0 {
            return Err(TorrentError::EmptySegment);
        }
        check_piece_length(self.piece_length)?;
        let expected = self.length.div_ceil(self.piece_length);
        let expected_bytes = expected.checked_mul(20);
        if expected_bytes != Some(self.pieces.len() as u64) {
            return Err(TorrentError::Malformed(format!(
                "pieces holds {} bytes: expected {} pieces of 20 bytes for length {} and piece \
                 length {}",
                self.pieces.len(),
                expected,
                self.length,
                self.piece_length
            )));
        }
        Ok(())
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u64 {
        self.pieces.len() as u64 / 20
    }

    /// Whether `data` is piece `index` (right length and SHA-1).
    pub fn verify_piece(&self, index: u64, data: &[u8]) -> bool {
        let start = index.saturating_mul(self.piece_length);
        let expected_len = self.length.saturating_sub(start).min(self.piece_length);
        // Checked: an index near u64::MAX must be "no such piece", not an overflow (found by
        // fuzzing).
        let Some(hash) = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(20))
            .and_then(|at| self.pieces.get(at..at.checked_add(20)?))
        else {
            return false;
        };
        expected_len == data.len() as u64 && Sha1::digest(data).as_slice() == hash
    }
}

fn check_name(name: &str) -> Result<(), TorrentError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it is a relative path component"
    } else if name.contains(['/', '\\', '\0']) {
        "it contains a path separator or NUL"
    } else if name.len() > 255 {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(TorrentError::BadName {
        name: name.to_owned(),
        reason,
    })
}

fn check_tracker(url: &str) -> Result<(), TorrentError> {
    let parsed = url::Url::parse(url).map_err(|e| TorrentError::BadTracker {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" | "udp" => Ok(()),
        other => Err(TorrentError::BadTracker {
            url: url.to_owned(),
            reason: format!("scheme {other:?}: expected http, https or udp"),
        }),
    }
}

/// Characters escaped in magnet and stream-link parameters: all but RFC 3986 unreserved.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A segment's torrent: its info dictionary, the exact info bytes, the info hash and trackers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentTorrent {
    info: InfoDict,
    info_bytes: Vec<u8>,
    info_hash: InfoHash,
    trackers: Vec<String>,
}

impl SegmentTorrent {
    /// Hashes `size` bytes from `reader` into a torrent named `name`.
    ///
    /// `piece_length` defaults to [`piece_length_for`]`(size)`. Fails on an empty segment, a bad
    /// name, piece length or tracker URL, a read error, or a reader that yields more or fewer than
    /// `size` bytes (a file that changed while being hashed).
    pub fn build<R: Read>(
        reader: R,
        size: u64,
        name: &str,
        piece_length: Option<u64>,
        trackers: Vec<String>,
    ) -> Result<Self, TorrentError> {
        if size == 0 {
            return Err(TorrentError::EmptySegment);
        }
        check_name(name)?;
        for t in &trackers {
            check_tracker(t)?;
        }
        let piece_length = match piece_length {
            Some(p) => check_piece_length(p)?,
            None => piece_length_for(size),
        };
        // Read at most one byte more than announced: enough to see a file that grew.
        let (pieces, read) = hash_pieces(reader.take(size + 1), piece_length)?;
        if read != size {
            return Err(TorrentError::SizeChanged {
                expected: size,
                found: read,
            });
        }
        let info = InfoDict {
            length: size,
            name: name.to_owned(),
            piece_length,
            pieces,
        };
        Ok(Self::from_info(info, trackers))
    }

    /// Wraps an already valid info dictionary.
    pub fn from_info(info: InfoDict, trackers: Vec<String>) -> Self {
        let info_bytes = info.encode();
        let info_hash = InfoHash::of(&info_bytes);
        Self {
            info,
            info_bytes,
            info_hash,
            trackers,
        }
    }

    /// Reads a `.torrent` file (leniently: extra fields are shown, not refused). The info hash is
    /// the SHA-1 of the `info` value's bytes exactly as they appear in the file.
    pub fn parse(torrent: &[u8]) -> Result<Self, TorrentError> {
        #[derive(Deserialize)]
        struct Meta {
            announce: Option<String>,
            #[serde(rename = "announce-list")]
            announce_list: Option<Vec<Vec<String>>>,
        }
        let span = bencode::dict_value_span(torrent, b"info")?
            .ok_or_else(|| TorrentError::Malformed("no info dictionary".into()))?;
        let info_bytes = torrent[span].to_vec();
        let info: InfoDict = serde_bencode::from_bytes(&info_bytes)
            .map_err(|e| TorrentError::Malformed(format!("info: {e}")))?;
        info.validate()?;
        let meta: Meta = serde_bencode::from_bytes(torrent)
            .map_err(|e| TorrentError::Malformed(e.to_string()))?;
        let mut trackers: Vec<String> = meta.announce.into_iter().collect();
        for url in meta.announce_list.into_iter().flatten().flatten() {
            if !trackers.contains(&url) {
                trackers.push(url);
            }
        }
        let info_hash = InfoHash::of(&info_bytes);
        Ok(Self {
            info,
            info_bytes,
            info_hash,
            trackers,
        })
    }

    /// The info dictionary.
    pub fn info(&self) -> &InfoDict {
        &self.info
    }

    /// The exact bencoded info bytes.
    pub fn info_bytes(&self) -> &[u8] {
        &self.info_bytes
    }

    /// The v1 info hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Tracker URLs, in order.
    pub fn trackers(&self) -> &[String] {
        &self.trackers
    }

    /// The `.torrent` file: `announce` (first tracker), `announce-list` (one tier per tracker, when
    /// there are several) and `info`. No creation date, so the same input gives the same file.
    pub fn to_torrent_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.info_bytes.len() + 64);
        out.push(b'd');
        if let Some(first) = self.trackers.first() {
            out.extend_from_slice(b"8:announce");
            out.extend(serde_bencode::to_bytes(first).expect("a string encodes"));
            if self.trackers.len() > 1 {
                let tiers: Vec<Vec<&String>> = self.trackers.iter().map(|t| vec![t]).collect();
                out.extend_from_slice(b"13:announce-list");
                out.extend(serde_bencode::to_bytes(&tiers).expect("a list of strings encodes"));
            }
        }
        out.extend_from_slice(b"4:info");
        out.extend_from_slice(&self.info_bytes);
        out.push(b'e');
        out
    }

    /// A magnet link: info hash, display name, exact length and trackers.
    pub fn magnet(&self) -> String {
        let mut link = format!(
            "magnet:?xt=urn:btih:{}&dn={}&xl={}",
            self.info_hash,
            utf8_percent_encode(&self.info.name, COMPONENT),
            self.info.length
        );
        for t in &self.trackers {
            link.push_str("&tr=");
            link.extend(utf8_percent_encode(t, COMPONENT));
        }
        link
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn piece_length_rule() {
        let min = DEFAULT_MIN_PIECE_LENGTH;
        assert_eq!(piece_length_for(1), min);
        assert_eq!(piece_length_for(1024 * min), min);
        assert_eq!(piece_length_for(1024 * min + 1), 2 * min);
        assert_eq!(piece_length_for(37_500_000), 64 * 1024); // one minute at 5 Mbit/s: 573 pieces
        assert_eq!(piece_length_for(u64::MAX / 2), MAX_PIECE_LENGTH);
        for size in [1u64, 50_000, 1 << 20, 37_500_000, 3 << 30, 16 << 30] {
            let p = piece_length_for(size);
            assert!(p.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_PIECE_LENGTH).contains(&p));
            let count = size.div_ceil(p);
            assert!(count <= TARGET_MAX_PIECES, "{size}: {count} pieces");
            if p > DEFAULT_MIN_PIECE_LENGTH {
                assert!(
                    count > TARGET_MAX_PIECES / 2,
                    "{size}: only {count} pieces at {p}"
                );
            }
        }
    }

    #[test]
    fn user_piece_lengths_are_checked() {
        for ok in [16384, 32768, 65536, 1 << 24] {
            assert_eq!(check_piece_length(ok).unwrap(), ok);
        }
        for bad in [0, 8192, 40000, 1 << 25, 3 << 15] {
            assert!(
                matches!(check_piece_length(bad), Err(TorrentError::BadPieceLength { found }) if found == bad)
            );
        }
    }

    #[test]
    fn hashing_edges() {
        let p = MIN_PIECE_LENGTH as usize;
        for len in [1, p - 1, p, p + 1, 3 * p, 3 * p + 7, 100_000] {
            let bytes = data(len);
            let (pieces, total) = hash_pieces(&bytes[..], p as u64).unwrap();
            assert_eq!(total, len as u64);
            let expected: Vec<u8> = bytes
                .chunks(p)
                .flat_map(|c| Sha1::digest(c).to_vec())
                .collect();
            assert_eq!(pieces, expected, "len {len}");
        }
    }

    #[test]
    fn hashing_does_not_depend_on_read_sizes() {
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let bytes = data(200_003);
        assert_eq!(
            hash_pieces(Dribble(&bytes), 32768).unwrap(),
            hash_pieces(&bytes[..], 32768).unwrap()
        );
    }

    #[test]
    fn exact_multiple_has_no_extra_piece() {
        let bytes = data(2 * DEFAULT_MIN_PIECE_LENGTH as usize);
        let t =
            SegmentTorrent::build(&bytes[..], bytes.len() as u64, "a.ts", None, vec![]).unwrap();
        assert_eq!(t.info().piece_count(), 2);
        assert!(t
            .info()
            .verify_piece(1, &bytes[DEFAULT_MIN_PIECE_LENGTH as usize..]));
        assert!(!t.info().verify_piece(2, &[]));
    }

    #[test]
    fn empty_and_changed_segments_are_refused() {
        assert!(matches!(
            SegmentTorrent::build(&[][..], 0, "a", None, vec![]),
            Err(TorrentError::EmptySegment)
        ));
        let bytes = data(10);
        assert!(matches!(
            SegmentTorrent::build(&bytes[..], 9, "a", None, vec![]),
            Err(TorrentError::SizeChanged {
                expected: 9,
                found: 10
            })
        ));
        assert!(matches!(
            SegmentTorrent::build(&bytes[..], 11, "a", None, vec![]),
            Err(TorrentError::SizeChanged {
                expected: 11,
                found: 10
            })
        ));
        assert!(matches!(
            SegmentTorrent::build(&bytes[..], 10, "a/b", None, vec![]),
            Err(TorrentError::BadName { .. })
        ));
        assert!(matches!(
            SegmentTorrent::build(&bytes[..], 10, "a", None, vec!["ftp://x/".into()]),
            Err(TorrentError::BadTracker { .. })
        ));
    }

    #[test]
    fn info_layout_and_torrent_round_trip() {
        let bytes = data(40_000);
        let trackers = vec![
            "http://127.0.0.1:1/announce".to_string(),
            "udp://127.0.0.1:2".to_string(),
        ];
        let t = SegmentTorrent::build(&bytes[..], 40_000, "00000001.ts", None, trackers.clone())
            .unwrap();
        let info = t.info_bytes();
        assert!(info
            .starts_with(b"d6:lengthi40000e4:name11:00000001.ts12:piece lengthi32768e6:pieces40:"));
        assert_eq!(InfoDict::decode_strict(info).unwrap(), *t.info());
        let file = t.to_torrent_bytes();
        bencode::check_canonical(&file).unwrap();
        let back = SegmentTorrent::parse(&file).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.trackers(), &trackers[..]);
        let magnet = t.magnet();
        assert!(magnet.starts_with(&format!(
            "magnet:?xt=urn:btih:{}&dn=00000001.ts&xl=40000&tr=http%3A%2F%2F",
            t.info_hash()
        )));
    }

    #[test]
    fn strict_info_refuses_extra_fields_and_bad_piece_counts() {
        let good = SegmentTorrent::build(&data(10)[..], 10, "a", None, vec![]).unwrap();
        let mut extra = good.info_bytes().to_vec();
        extra.pop();
        extra.extend_from_slice(b"7:privatei1ee");
        assert!(InfoDict::decode_strict(&extra).is_err());
        let mut short = good.info().clone();
        short.pieces.truncate(19);
        assert!(InfoDict::decode_strict(&short.encode()).is_err());
    }

    /// A signed manifest (or `inspect`) can carry any info dictionary: a piece length outside
    /// the rule (a power of two other than 16 KiB to 16 MiB, which left `expected * 20` free to
    /// overflow) is refused by name, and a huge length is a clear error.
    #[test]
    fn info_piece_lengths_outside_the_rule_and_huge_lengths_are_refused() {
        let good = SegmentTorrent::build(&data(10)[..], 10, "a", None, vec![]).unwrap();
        for bad in [1u64, 2, 1024, 8192, 32 << 20, 1 << 62] {
            let mut info = good.info().clone();
            info.piece_length = bad;
            assert!(
                matches!(
                    InfoDict::decode_strict(&info.encode()),
                    Err(TorrentError::BadPieceLength { found }) if found == bad
                ),
                "piece length {bad}"
            );
        }
        // 16 KiB pieces of 2^63 - 1 bytes: 2^49 pieces, whose hashes would take 2^53 bytes.
        let mut huge = good.info().clone();
        huge.piece_length = MIN_PIECE_LENGTH;
        huge.length = i64::MAX as u64;
        let err = InfoDict::decode_strict(&huge.encode()).unwrap_err();
        assert!(err.to_string().contains("pieces holds 20 bytes"), "{err}");
        // The largest length: refused, with no overflow on the way.
        huge.length = u64::MAX;
        assert!(huge.validate().is_err());
    }

    /// Fuzzing found `verify_piece(u64::MAX, ..)` overflowing (a panic in debug builds) instead
    /// of answering that there is no such piece.
    #[test]
    fn verify_piece_with_a_huge_index_is_false_not_a_panic() {
        let bytes = data(40_000);
        let t = SegmentTorrent::build(&bytes[..], 40_000, "x.ts", Some(16_384), vec![]).unwrap();
        let info = t.info();
        assert!(info.verify_piece(0, &bytes[..16_384]));
        assert!(info.verify_piece(2, &bytes[32_768..]));
        for index in [3, u64::MAX / 20, u64::MAX / 20 + 1, u64::MAX] {
            assert!(!info.verify_piece(index, &bytes[32_768..]), "piece {index}");
        }
    }

    #[test]
    fn info_hash_text_round_trips() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(h.to_string().parse::<InfoHash>().unwrap(), h);
        assert!("zz".parse::<InfoHash>().is_err());
    }
}
