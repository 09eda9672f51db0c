//! The piece verifier (pure): stream bytes in at a position, whole verified pieces out
//! (store-and-forward). Each piece is checked against the SHA-1 in its segment's signed `info`
//! (docs/manifest.md); a mismatch is an error naming the segment and the piece, and nothing of
//! that piece is given out.

use bytes::{Bytes, BytesMut};
use swarmcast_core::InfoDict;

use super::position::Position;

/// A verified piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts.
    pub at: Position,
    /// Its index in its segment.
    pub index: u64,
    /// Its bytes.
    pub data: Bytes,
}

impl Piece {
    /// The position after its last byte (the next segment's start after a segment's last piece).
    pub fn end(&self, segment_size: u64) -> Position {
        let end = self.at.offset + self.data.len() as u64;
        if end >= segment_size {
            Position::start_of(self.at.segment + 1)
        } else {
            Position::new(self.at.segment, end)
        }
    }
}

/// What [`PieceVerifier::next`] has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A verified piece.
    Piece(Piece),
    /// Feed more bytes.
    More,
    /// The signed info of this segment is needed first (a newer manifest).
    Info(u64),
}

/// Input that fails verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A piece's bytes do not hash to the signed hash.
    #[error("segment {segment}, piece {piece}: does not match the signed manifest's hash")]
    Mismatch {
        /// The segment.
        segment: u64,
        /// The piece's index.
        piece: u64,
    },
    /// The stream does not start on a piece boundary, so its first piece cannot be checked.
    #[error("position {at} is not on a piece boundary (pieces of {piece_length} bytes)")]
    NotPieceBoundary {
        /// The position.
        at: Position,
        /// The segment's piece length.
        piece_length: u64,
    },
    /// Bytes past the stream's last segment.
    #[error("{bytes} bytes past the end of the stream (after segment {last})")]
    PastEnd {
        /// The last segment.
        last: u64,
        /// Bytes after it.
        bytes: usize,
    },
}

/// Turns the stream's bytes into verified pieces.
#[derive(Debug)]
pub struct PieceVerifier {
    at: Position,
    pending: BytesMut,
    checked_start: bool,
}

impl PieceVerifier {
    /// A verifier of a stream whose next byte is at `at`.
    pub fn new(at: Position) -> Self {
        Self {
            at,
            pending: BytesMut::new(),
            checked_start: false,
        }
    }

    /// The position of the next byte to verify (after every piece given out).
    pub fn position(&self) -> Position {
        self.at
    }

    /// Bytes fed but not yet given out (at most about a piece).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// The next verified piece, if its bytes are all in. `info` gives a segment's signed info
    /// (None: not known yet); `last` is the stream's last segment, once known.
    pub fn next(
        &mut self,
        info: impl Fn(u64) -> Option<std::sync::Arc<InfoDict>>,
        last: Option<u64>,
    ) -> Result<Step, VerifyError> {
        if self.pending.is_empty() {
            return Ok(Step::More);
        }
        if let Some(last) = last.filter(|l| self.at.segment > *l) {
            return Err(VerifyError::PastEnd {
                last,
                bytes: self.pending.len(),
            });
        }
        let Some(info) = info(self.at.segment) else {
            return Ok(Step::Info(self.at.segment));
        };
        if !self.checked_start {
            if !self.at.offset.is_multiple_of(info.piece_length) || self.at.offset >= info.length {
                return Err(VerifyError::NotPieceBoundary {
                    at: self.at,
                    piece_length: info.piece_length,
                });
            }
            self.checked_start = true;
        }
        let index = self.at.offset / info.piece_length;
        let len = (info.length - self.at.offset).min(info.piece_length) as usize;
        if self.pending.len() < len {
            return Ok(Step::More);
        }
        let data = self.pending.split_to(len).freeze();
        if !info.verify_piece(index, &data) {
            // Nothing of it is given out; the rest is dropped with the source.
            self.pending.clear();
            return Err(VerifyError::Mismatch {
                segment: self.at.segment,
                piece: index,
            });
        }
        let piece = Piece {
            at: self.at,
            index,
            data,
        };
        self.at = piece.end(info.length);
        Ok(Step::Piece(piece))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use swarmcast_core::SegmentTorrent;

    use super::*;

    fn segment(n: u64, size: usize) -> (Vec<u8>, Arc<InfoDict>) {
        let data = swarmcast_core::testdata::pseudo_random(size, n);
        let t = SegmentTorrent::build(
            &data[..],
            size as u64,
            &format!("{n:08}.ts"),
            Some(16_384),
            vec![],
        )
        .unwrap();
        (data, Arc::new(t.info().clone()))
    }

    fn drain(
        v: &mut PieceVerifier,
        infos: &HashMap<u64, Arc<InfoDict>>,
        last: Option<u64>,
    ) -> Result<(Vec<Piece>, Step), VerifyError> {
        let mut out = Vec::new();
        loop {
            match v.next(|n| infos.get(&n).cloned(), last)? {
                Step::Piece(p) => out.push(p),
                other => return Ok((out, other)),
            }
        }
    }

    #[test]
    fn pieces_come_out_whole_verified_and_across_segments_in_any_chunking() {
        let (a, ia) = segment(3, 40_000);
        let (b, ib) = segment(4, 16_384);
        let infos: HashMap<_, _> = [(3, ia), (4, ib)].into();
        let stream = [&a[16_384..], &b[..]].concat();
        for chunk in [1, 1000, 16_384, 100_000] {
            let mut v = PieceVerifier::new(Position::new(3, 16_384));
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                v.push(c);
                let (pieces, step) = drain(&mut v, &infos, Some(4)).unwrap();
                assert_eq!(step, Step::More);
                got.extend(pieces);
            }
            let at: Vec<_> = got.iter().map(|p| (p.at, p.index)).collect();
            assert_eq!(
                at,
                vec![
                    (Position::new(3, 16_384), 1),
                    (Position::new(3, 32_768), 2),
                    (Position::start_of(4), 0)
                ]
            );
            assert_eq!(
                got.iter().flat_map(|p| p.data.to_vec()).collect::<Vec<_>>(),
                stream
            );
            assert_eq!(v.position(), Position::start_of(5));
            assert_eq!(v.pending(), 0);
        }
    }

    #[test]
    fn a_flipped_byte_is_caught_naming_segment_and_piece_and_nothing_of_it_comes_out() {
        let (a, ia) = segment(7, 50_000);
        let infos: HashMap<_, _> = [(7, ia)].into();
        let mut bad = a.clone();
        bad[2 * 16_384 + 5] ^= 0x01;
        let mut v = PieceVerifier::new(Position::start_of(7));
        v.push(&bad);
        let mut good = Vec::new();
        let err = loop {
            match v.next(|n| infos.get(&n).cloned(), None) {
                Ok(Step::Piece(p)) => good.push(p.index),
                Ok(s) => panic!("{s:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(good, vec![0, 1]);
        assert_eq!(
            err,
            VerifyError::Mismatch {
                segment: 7,
                piece: 2
            }
        );
        assert!(err.to_string().contains("segment 7, piece 2"));
        assert_eq!(v.position(), Position::new(7, 32_768));
    }

    #[test]
    fn unknown_segments_wait_for_their_info_and_bad_starts_and_tails_are_refused() {
        let (a, ia) = segment(1, 20_000);
        let mut infos = HashMap::new();
        let mut v = PieceVerifier::new(Position::start_of(1));
        v.push(&a);
        assert_eq!(drain(&mut v, &infos, None).unwrap().1, Step::Info(1));
        infos.insert(1, ia.clone());
        let (pieces, step) = drain(&mut v, &infos, None).unwrap();
        assert_eq!((pieces.len(), step), (2, Step::More));
        v.push(b"extra");
        assert_eq!(drain(&mut v, &infos, None).unwrap().1, Step::Info(2));
        assert_eq!(
            drain(&mut v, &infos, Some(1)).unwrap_err(),
            VerifyError::PastEnd { last: 1, bytes: 5 }
        );
        let mut v = PieceVerifier::new(Position::new(1, 100));
        v.push(&a[100..]);
        assert!(matches!(
            drain(&mut v, &infos, None),
            Err(VerifyError::NotPieceBoundary { .. })
        ));
    }
}
