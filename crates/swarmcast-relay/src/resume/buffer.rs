//! The back buffer (pure): the verified bytes a relay holds, by segment, for B seconds of media
//! (by the manifest's segment durations), and the answers to resume requests.
//!
//! It holds whole or partly received segments, each a run of verified pieces from a start
//! offset (0 but for a segment first received mid-way). The oldest segment is dropped once the
//! complete segments after it hold at least B seconds of media, so the buffer holds at least B
//! seconds of complete segments (when it has received that much), plus the segment in progress. It also remembers what the signed manifests said of every segment it
//! learned (size, duration, piece hashes), to verify input and to count losses.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use swarmcast_core::{InfoDict, SignedManifest};

use super::position::Position;

/// How many segments' signed facts are remembered (the newest ones): 17 hours of 1-minute
/// segments, at most about 11 MB of piece hashes (573 pieces each at 5 Mbit/s).
pub const KNOWN_SEGMENTS: usize = 1024;

/// What the signed manifest says of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// Bytes in the segment file.
    pub size: u64,
    /// Media duration, 90 kHz ticks.
    pub duration: u64,
    /// Its torrent's info dictionary (piece length and hashes).
    pub info: Arc<InfoDict>,
}

/// A held segment: verified bytes from `start`, as the pieces arrived.
#[derive(Clone, Debug, Default)]
struct Held {
    start: u64,
    /// (offset, bytes), contiguous from `start`.
    chunks: Vec<(u64, Bytes)>,
    end: u64,
}

/// Where a request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Where the body starts.
    pub at: Position,
    /// Bytes skipped between the request and `at` (the request was older than the buffer).
    pub lost_bytes: u64,
    /// Whole or partial segments skipped.
    pub lost_segments: u64,
}

/// Why a request cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Nothing held yet (a plain GET waits for the first segment start).
    #[error("the relay holds no segment start yet")]
    Empty,
    /// The offset is past the segment's end.
    #[error("position {at}: segment {} has {size} bytes", at.segment)]
    PastSegmentEnd {
        /// The request.
        at: Position,
        /// The segment's size.
        size: u64,
    },
    /// The position is older than the buffer and a skipped segment's size is not known here,
    /// so the loss cannot be counted.
    #[error("position {at} is older than anything this relay knows (segment {unknown} unknown); ask for the live stream")]
    TooOld {
        /// The request.
        at: Position,
        /// A skipped segment whose size is unknown.
        unknown: u64,
    },
    /// The position is in a segment not announced yet beyond the next one.
    #[error("position {at} is ahead of the stream (newest segment known here: {newest:?})")]
    Ahead {
        /// The request.
        at: Position,
        /// The newest segment known.
        newest: Option<u64>,
    },
}

/// What a reader at a position gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// These bytes, at the position.
    Data(Bytes),
    /// Not here yet: wait for more.
    Wait,
    /// The stream ended and every byte up to its end was read.
    End,
    /// The position left the buffer (the reader fell behind it), or the relay itself has a gap
    /// there: the reader must resume elsewhere (a resume request says what was lost).
    Gone,
}

/// A piece that does not continue what is held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bytes at {at} do not continue segment {}'s held bytes (they end at offset {end})", at.segment)]
pub struct NotContiguous {
    /// Where the bytes were put.
    pub at: Position,
    /// Where the held bytes of that segment end.
    pub end: u64,
}

/// The back buffer.
#[derive(Clone, Debug)]
pub struct BackBuffer {
    back_ticks: u64,
    held: BTreeMap<u64, Held>,
    known: BTreeMap<u64, Known>,
    /// The last segment, once an end-of-stream manifest said so.
    last: Option<u64>,
}

impl BackBuffer {
    /// A buffer keeping `back_ticks` of media (90 kHz ticks).
    pub fn new(back_ticks: u64) -> Self {
        Self {
            back_ticks,
            held: BTreeMap::new(),
            known: BTreeMap::new(),
            last: None,
        }
    }

    /// Learns what a verified manifest says: each segment's size, duration and info, and the
    /// end of the stream.
    pub fn learn(&mut self, signed: &SignedManifest) {
        for e in &signed.manifest.segments {
            if self.known.contains_key(&e.number) {
                continue;
            }
            // Validated with the manifest (docs/manifest.md, check 9): cannot fail here.
            let Ok(info) = InfoDict::decode_strict(&e.info) else {
                continue;
            };
            self.learn_one(e.number, e.duration, info);
        }
        if signed.manifest.end_of_stream {
            self.last = signed.manifest.segments.last().map(|e| e.number);
        }
    }

    /// Learns one segment's facts.
    pub fn learn_one(&mut self, number: u64, duration: u64, info: InfoDict) {
        self.known.insert(
            number,
            Known {
                size: info.length,
                duration,
                info: Arc::new(info),
            },
        );
        while self.known.len() > KNOWN_SEGMENTS {
            self.known.pop_first();
        }
    }

    /// Marks `last` as the stream's last segment.
    pub fn set_last(&mut self, last: u64) {
        self.last = Some(last);
    }

    /// The stream's last segment, once known.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// What the manifests said of segment `n`.
    pub fn known(&self, n: u64) -> Option<&Known> {
        self.known.get(&n)
    }

    /// The newest segment learned.
    pub fn newest_known(&self) -> Option<u64> {
        self.known.keys().next_back().copied()
    }

    /// `at` moved past a segment's end onto the next segment's start, when the size is known.
    pub fn normalize(&self, at: Position) -> Position {
        match self.known.get(&at.segment) {
            Some(k) if at.offset >= k.size => Position::start_of(at.segment + 1),
            _ => at,
        }
    }

    /// Whether `at` is past the stream's last byte (known only after the end of stream).
    pub fn is_past_end(&self, at: Position) -> bool {
        self.last
            .is_some_and(|l| self.normalize(at) >= Position::start_of(l + 1))
    }

    /// The oldest held byte.
    pub fn oldest(&self) -> Option<Position> {
        self.held
            .iter()
            .next()
            .map(|(n, h)| Position::new(*n, h.start))
    }

    /// Where a plain GET starts: the start of the newest segment whose first byte is held.
    pub fn live_start(&self) -> Option<Position> {
        self.held
            .iter()
            .rev()
            .find(|(_, h)| h.start == 0 && h.end > 0)
            .map(|(n, _)| Position::start_of(*n))
    }

    /// Holds a verified piece at `at`: it must continue the held bytes of its segment, or start
    /// a segment not held yet. Then drops what is older than the back buffer.
    pub fn append(&mut self, at: Position, data: Bytes) -> Result<(), NotContiguous> {
        let h = self.held.entry(at.segment).or_insert_with(|| Held {
            start: at.offset,
            chunks: Vec::new(),
            end: at.offset,
        });
        if h.end != at.offset {
            return Err(NotContiguous { at, end: h.end });
        }
        h.end += data.len() as u64;
        if !data.is_empty() {
            h.chunks.push((at.offset, data));
        }
        self.evict();
        Ok(())
    }

    fn evict(&mut self) {
        while self.held.len() > 1 {
            let oldest = *self.held.keys().next().expect("not empty");
            let newer: u64 = self
                .held
                .range(oldest + 1..)
                .filter_map(|(n, h)| {
                    self.known
                        .get(n)
                        .filter(|k| h.start == 0 && h.end == k.size)
                })
                .map(|k| k.duration)
                .sum();
            if newer < self.back_ticks {
                break;
            }
            self.held.remove(&oldest);
        }
    }

    /// Where a request for `from` (None: a plain GET, live) starts, and what it loses.
    pub fn start(&self, from: Option<Position>) -> Result<Start, StartError> {
        let Some(from) = from else {
            let at = self.live_start().ok_or(StartError::Empty)?;
            return Ok(Start {
                at,
                lost_bytes: 0,
                lost_segments: 0,
            });
        };
        if let Some(k) = self.known.get(&from.segment) {
            if from.offset > k.size {
                return Err(StartError::PastSegmentEnd {
                    at: from,
                    size: k.size,
                });
            }
        }
        let from = self.normalize(from);
        let newest = self.newest_known();
        if newest.is_none_or(|n| from.segment > n + 1) {
            return Err(StartError::Ahead { at: from, newest });
        }
        let Some(oldest) = self.oldest() else {
            // Nothing held: the bytes come (a position not older than anything known).
            return Ok(Start {
                at: from,
                lost_bytes: 0,
                lost_segments: 0,
            });
        };
        if from >= oldest {
            // In a gap of the relay's own stream (it resumed past its parent's buffer): from the
            // next byte it holds, telling what lies between.
            let at = match self.next_held(from) {
                Some(next) if next > from => next,
                _ => from,
            };
            let (lost_bytes, lost_segments) = self
                .distance(from, at)
                .map_err(|unknown| StartError::TooOld { at: from, unknown })?;
            return Ok(Start {
                at,
                lost_bytes,
                lost_segments,
            });
        }
        let (lost_bytes, lost_segments) = self
            .distance(from, oldest)
            .map_err(|unknown| StartError::TooOld { at: from, unknown })?;
        Ok(Start {
            at: oldest,
            lost_bytes,
            lost_segments,
        })
    }

    /// From `from` to `to` (not before it): the stream bytes and the whole or partial segments
    /// between them, by the signed sizes; `Err(n)`: segment `n`'s size is not known here.
    pub fn distance(&self, from: Position, to: Position) -> Result<(u64, u64), u64> {
        let (from, to) = (self.normalize(from), self.normalize(to));
        if to <= from {
            return Ok((0, 0));
        }
        let size = |n: u64| self.known.get(&n).map(|k| k.size).ok_or(n);
        let bytes = if from.segment == to.segment {
            to.offset - from.offset
        } else {
            let mut bytes = size(from.segment)?.saturating_sub(from.offset);
            for n in from.segment + 1..to.segment {
                bytes += size(n)?;
            }
            bytes + to.offset
        };
        Ok((bytes, to.segment - from.segment + u64::from(to.offset > 0)))
    }

    /// The first held position at or after `from` (None: nothing held from there on).
    fn next_held(&self, from: Position) -> Option<Position> {
        self.held.range(from.segment..).find_map(|(n, h)| {
            if *n > from.segment {
                Some(Position::new(*n, h.start))
            } else if from.offset < h.end {
                Some(Position::new(*n, from.offset.max(h.start)))
            } else {
                None
            }
        })
    }

    /// Up to `max` bytes at `at`.
    pub fn read(&self, at: Position, max: usize) -> Read {
        let at = self.normalize(at);
        if self.is_past_end(at) {
            return Read::End;
        }
        let Some(h) = self.held.get(&at.segment) else {
            // Older than the buffer, or skipped by the relay itself (a newer segment held).
            let passed = self.held.range(at.segment + 1..).next().is_some();
            return if passed { Read::Gone } else { Read::Wait };
        };
        if at.offset < h.start {
            return Read::Gone;
        }
        if at.offset >= h.end {
            // The rest of this segment never came, and a newer one is here: the relay skipped
            // it (a gap in its own stream). The reader resumes, and is told what it lost.
            let passed = self.held.range(at.segment + 1..).next().is_some();
            return if passed { Read::Gone } else { Read::Wait };
        }
        let i = h.chunks.partition_point(|(o, _)| *o <= at.offset) - 1;
        let (o, bytes) = &h.chunks[i];
        let skip = (at.offset - o) as usize;
        let take = (bytes.len() - skip).min(max);
        Read::Data(bytes.slice(skip..skip + take))
    }

    /// Held bytes in all.
    pub fn held_bytes(&self) -> u64 {
        self.held.values().map(|h| h.end - h.start).sum()
    }

    /// Held segment numbers.
    pub fn held_segments(&self) -> Vec<u64> {
        self.held.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s (90,000 ticks) segments of `size` bytes in 4-byte pieces (the hashes do not matter
    /// to the buffer).
    fn buffer(back_secs: u64, sizes: &[u64]) -> BackBuffer {
        let mut b = BackBuffer::new(back_secs * 90_000);
        for (n, size) in sizes.iter().enumerate() {
            b.learn_one(
                n as u64,
                90_000,
                InfoDict {
                    length: *size,
                    name: format!("{n:08}.ts"),
                    piece_length: 16_384,
                    pieces: vec![0; 20 * size.div_ceil(16_384) as usize],
                },
            );
        }
        b
    }

    fn fill(b: &mut BackBuffer, n: u64, size: u64) {
        let mut at = 0;
        while at < size {
            let len = (size - at).min(16_384);
            b.append(
                Position::new(n, at),
                Bytes::from(vec![n as u8; len as usize]),
            )
            .unwrap();
            at += len;
        }
    }

    #[test]
    fn a_gap_in_the_relays_own_stream_ends_readers_and_a_resume_skips_it_counting_the_loss() {
        let sizes = [40_000, 50_000, 60_000, 70_000];
        let mut b = buffer(10, &sizes);
        fill(&mut b, 0, 40_000);
        // Segment 1 only in part (its parent went), then the relay resumed at 2 elsewhere.
        b.append(Position::start_of(1), Bytes::from(vec![1u8; 16_384]))
            .unwrap();
        assert!(matches!(b.read(Position::new(1, 16_384), 1000), Read::Wait));
        fill(&mut b, 2, 60_000);
        assert!(matches!(b.read(Position::new(1, 16_384), 1000), Read::Gone));
        let s = b.start(Some(Position::new(1, 16_384))).unwrap();
        assert_eq!(s.at, Position::start_of(2));
        assert_eq!((s.lost_bytes, s.lost_segments), (50_000 - 16_384, 1));
        // Held positions are not gaps; the live edge waits.
        let s = b.start(Some(Position::new(1, 100))).unwrap();
        assert_eq!((s.at, s.lost_bytes), (Position::new(1, 100), 0));
        let s = b.start(Some(Position::start_of(3))).unwrap();
        assert_eq!((s.at, s.lost_bytes), (Position::start_of(3), 0));
        assert!(matches!(b.read(Position::start_of(3), 1000), Read::Wait));
    }

    #[test]
    fn keeps_the_back_buffers_seconds_plus_the_segment_in_progress() {
        let sizes = [40_000, 50_000, 60_000, 70_000, 80_000];
        let mut b = buffer(2, &sizes);
        for n in 0..4 {
            fill(&mut b, n, sizes[n as usize]);
        }
        // 2 and 3 hold 2 s: 0 and 1 are dropped.
        assert_eq!(b.held_segments(), vec![2, 3]);
        assert_eq!(b.oldest(), Some(Position::start_of(2)));
        assert_eq!(b.live_start(), Some(Position::start_of(3)));
        // A segment in progress does not count: 2 stays until 4 is complete.
        b.append(Position::start_of(4), Bytes::from_static(b"x"))
            .unwrap();
        assert_eq!(b.held_segments(), vec![2, 3, 4]);
        assert_eq!(b.live_start(), Some(Position::start_of(4)));
        let mut at = 1;
        while at < 80_000 {
            let len = (80_000 - at).min(16_384);
            b.append(Position::new(4, at), Bytes::from(vec![4u8; len as usize]))
                .unwrap();
            at += len;
        }
        assert_eq!(b.held_segments(), vec![3, 4]);
        assert_eq!(b.held_bytes(), 150_000);
    }

    #[test]
    fn a_resume_inside_the_buffer_loses_nothing_and_one_past_it_counts_the_loss_exactly() {
        let sizes = [40_000, 50_000, 60_000, 70_000, 80_000];
        let mut b = buffer(2, &sizes);
        for n in 0..4 {
            fill(&mut b, n, sizes[n as usize]);
        }
        assert_eq!(b.oldest(), Some(Position::start_of(2)));
        let s = b.start(Some(Position::new(2, 100))).unwrap();
        assert_eq!(
            (s.at, s.lost_bytes, s.lost_segments),
            (Position::new(2, 100), 0, 0)
        );
        // From 0:1000: the rest of 0, all of 1.
        let s = b.start(Some(Position::new(0, 1000))).unwrap();
        assert_eq!(s.at, Position::start_of(2));
        assert_eq!(s.lost_bytes, 39_000 + 50_000);
        assert_eq!(s.lost_segments, 2);
        // The end of a segment is the next one's start.
        let s = b.start(Some(Position::new(1, 50_000))).unwrap();
        assert_eq!((s.at, s.lost_bytes), (Position::start_of(2), 0));
        assert!(matches!(
            b.start(Some(Position::new(1, 50_001))),
            Err(StartError::PastSegmentEnd { size: 50_000, .. })
        ));
        // The next segment (not announced yet) is fine; further is not.
        assert!(b.start(Some(Position::start_of(5))).is_ok());
        assert!(matches!(
            b.start(Some(Position::start_of(6))),
            Err(StartError::Ahead { .. })
        ));
    }

    #[test]
    fn a_loss_over_a_segment_never_learned_is_refused_not_guessed() {
        let mut b = buffer(0, &[10, 10, 10]);
        b.known.remove(&1);
        fill(&mut b, 2, 10);
        assert_eq!(
            b.start(Some(Position::start_of(0))),
            Err(StartError::TooOld {
                at: Position::start_of(0),
                unknown: 1
            })
        );
    }

    #[test]
    fn readers_get_bytes_wait_at_the_edge_end_at_the_end_and_are_told_when_left_behind() {
        let sizes = [40_000, 50_000, 60_000];
        let mut b = buffer(1, &sizes);
        assert_eq!(b.start(None), Err(StartError::Empty));
        fill(&mut b, 0, 40_000);
        assert_eq!(
            b.read(Position::new(0, 16_384 + 5), 100),
            Read::Data(Bytes::from(vec![0u8; 100]))
        );
        // A read stops at a piece's end.
        match b.read(Position::new(0, 16_384 + 5), 1 << 20) {
            Read::Data(d) => assert_eq!(d.len(), 16_384 - 5),
            r => panic!("{r:?}"),
        }
        assert_eq!(b.read(Position::new(0, 40_000), 10), Read::Wait);
        fill(&mut b, 1, 50_000);
        fill(&mut b, 2, 60_000);
        assert_eq!(b.read(Position::new(0, 0), 10), Read::Gone);
        assert_eq!(b.read(Position::new(2, 60_000), 10), Read::Wait);
        b.set_last(2);
        assert_eq!(b.read(Position::new(2, 60_000), 10), Read::End);
        assert_eq!(
            b.read(Position::new(2, 59_999), 10),
            Read::Data(Bytes::from(vec![2u8]))
        );
        assert!(b.append(Position::new(2, 10), Bytes::new()).is_err());
    }

    #[test]
    fn a_relay_with_its_own_gap_sends_readers_elsewhere() {
        let mut b = buffer(10, &[10, 10, 10, 10]);
        fill(&mut b, 0, 10);
        fill(&mut b, 2, 10);
        assert_eq!(b.read(Position::start_of(1), 10), Read::Gone);
        assert_eq!(b.read(Position::start_of(3), 10), Read::Wait);
    }
}
