//! A substream's back buffer (pure): the frames of the last few segments, read from any segment
//! still held. The publisher keeps one per substream; a node keeps one for its home substream
//! and serves its children from it. A child that comes back after a switch asks for the segment
//! it needs next (`?from=<seq>`), and the frames it already had are deduplicated by its
//! rebuilder.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Where a reader is: a segment and a frame index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The segment.
    pub seq: u64,
    /// The next frame of it.
    pub frame: usize,
}

/// What [`FrameBuffer::read`] has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// Frames, and where to read next. `skipped`: segments the reader fell behind past (no
    /// longer held), now lost to it.
    Frames {
        /// The frames.
        frames: Vec<Bytes>,
        /// The next position.
        next: Cursor,
        /// Segments passed over.
        skipped: u64,
    },
    /// Nothing new yet.
    Wait,
    /// The stream ended and everything was read.
    End,
}

/// The frames of the last `keep` segments of one substream.
#[derive(Clone, Debug)]
pub struct FrameBuffer {
    segs: BTreeMap<u64, Vec<Bytes>>,
    keep: usize,
    ended: bool,
}

impl FrameBuffer {
    /// A buffer of the last `keep` segments (at least 1).
    pub fn new(keep: usize) -> Self {
        Self {
            segs: BTreeMap::new(),
            keep: keep.max(1),
            ended: false,
        }
    }

    /// Appends a frame of segment `seq`; a segment older than the held ones is refused (false).
    pub fn push(&mut self, seq: u64, frame: Bytes) -> bool {
        if self.segs.len() >= self.keep && self.segs.keys().next().is_some_and(|&o| seq < o) {
            return false;
        }
        self.segs.entry(seq).or_default().push(frame);
        while self.segs.len() > self.keep {
            self.segs.pop_first();
        }
        true
    }

    /// The stream ended: readers end once they read everything.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether the stream ended.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The segments held, oldest first.
    pub fn held(&self) -> impl Iterator<Item = u64> + '_ {
        self.segs.keys().copied()
    }

    /// Where a reader asking for segment `from` starts: there if held, at the oldest held if
    /// it is older (the difference is lost), waiting for it if it is newer. Without `from`, at
    /// the newest segment's start (the live edge). None: nothing held yet.
    pub fn start(&self, from: Option<u64>) -> Option<Cursor> {
        let oldest = *self.segs.keys().next()?;
        let newest = *self.segs.keys().next_back()?;
        let seq = match from {
            Some(f) => f.max(oldest),
            None => newest,
        };
        Some(Cursor { seq, frame: 0 })
    }

    /// The frames from `at` on.
    pub fn read(&self, at: Cursor) -> Read {
        let mut skipped = 0;
        let mut at = at;
        loop {
            match self.segs.get(&at.seq) {
                Some(frames) if at.frame < frames.len() => {
                    return Read::Frames {
                        frames: frames[at.frame..].to_vec(),
                        next: Cursor {
                            seq: at.seq,
                            frame: frames.len(),
                        },
                        skipped,
                    };
                }
                _ => {}
            }
            // Done with this segment (or it is gone): the next one held after it.
            match self.segs.range(at.seq + 1..).next() {
                Some((&next, _)) => {
                    if !self.segs.contains_key(&at.seq) && at.frame == 0 {
                        skipped += next - at.seq;
                    } else {
                        skipped += next - at.seq - 1;
                    }
                    at = Cursor {
                        seq: next,
                        frame: 0,
                    };
                }
                None if self.ended => return Read::End,
                None => return Read::Wait,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn readers_follow_frames_across_segments_and_the_end() {
        let mut b = FrameBuffer::new(3);
        assert_eq!(b.start(None), None);
        b.push(5, f("h5"));
        b.push(5, f("s5a"));
        let at = b.start(None).unwrap();
        let Read::Frames {
            frames,
            next,
            skipped,
        } = b.read(at)
        else {
            panic!()
        };
        assert_eq!((frames, skipped), (vec![f("h5"), f("s5a")], 0));
        assert_eq!(b.read(next), Read::Wait);
        b.push(5, f("s5b"));
        b.push(6, f("h6"));
        let Read::Frames { frames, next, .. } = b.read(next) else {
            panic!()
        };
        assert_eq!(frames, vec![f("s5b")]);
        let Read::Frames {
            frames,
            next,
            skipped,
        } = b.read(next)
        else {
            panic!()
        };
        assert_eq!((frames, skipped), (vec![f("h6")], 0));
        b.end();
        assert_eq!(b.read(next), Read::End);
    }

    #[test]
    fn a_slow_reader_skips_what_left_the_buffer_and_counts_it() {
        let mut b = FrameBuffer::new(2);
        for seq in 0..5 {
            b.push(seq, f("x"));
        }
        assert_eq!(b.held().collect::<Vec<_>>(), vec![3, 4]);
        // Asking for 1: starts at the oldest held.
        assert_eq!(b.start(Some(1)), Some(Cursor { seq: 3, frame: 0 }));
        // A reader that was in segment 1 when it left: 2 is lost, it goes on at 3.
        let Read::Frames { next, skipped, .. } = b.read(Cursor { seq: 1, frame: 1 }) else {
            panic!()
        };
        assert_eq!((next, skipped), (Cursor { seq: 3, frame: 1 }, 1));
        // A segment older than everything held is refused.
        assert!(!b.push(2, f("late")));
        // A resume ahead of the buffer waits.
        assert_eq!(b.start(Some(9)), Some(Cursor { seq: 9, frame: 0 }));
        assert_eq!(b.read(Cursor { seq: 9, frame: 0 }), Read::Wait);
    }
}
