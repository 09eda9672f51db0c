//! The same playout for every transport (pure): an arrival curve (when each stretch of media was
//! there to play), and a simulated player over it that counts stalls, stall time, startup and
//! glass to glass.
//!
//! The player's rules:
//! - it starts once `buffer` of media from its first stretch on is there (every stretch up to that
//!   point arrived);
//! - it plays in real time, stretch after stretch in media order, on the media's clock: media that
//!   never arrives (lost) takes its own duration (a frozen picture, as a player that presents by
//!   timestamp shows a gap), and counts as loss, not as a stall;
//! - when the next stretch is not there when it is due, it stalls, and waits until `buffer` of
//!   media from that stretch on is there again (or the stream's end), as a player with a network
//!   cache of `buffer` does; each wait is one stall, its length the stall time.
//!
//! Glass to glass is sampled once per second of media played: from the instant the publisher's
//! input had that media ([`Published::input_us`]) to the instant the player shows it.

use serde::{Deserialize, Serialize};

/// 90 kHz ticks per second.
pub const TICKS: u64 = 90_000;

/// One published segment, from the publisher's `cut` events.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its number.
    pub n: u64,
    /// Where it starts in the published stream (the segments' concatenation), bytes.
    pub offset: u64,
    /// Its size, bytes.
    pub size: u64,
    /// Media start, 90 kHz ticks.
    pub media_start: u64,
    /// Media duration, 90 kHz ticks.
    pub duration: u64,
    /// When it was cut (the publisher's wall clock, µs).
    pub cut_us: u64,
}

/// The published stream: its segments in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Segments, by number (and so by offset).
    pub segments: Vec<Segment>,
}

impl Published {
    /// From `(n, size, media_start, duration, cut_us)` in any order; offsets follow the numbers.
    pub fn new(mut cuts: Vec<(u64, u64, u64, u64, u64)>) -> Self {
        cuts.sort_unstable();
        cuts.dedup_by_key(|c| c.0);
        let mut offset = 0;
        let segments = cuts
            .into_iter()
            .map(|(n, size, media_start, duration, cut_us)| {
                let s = Segment {
                    n,
                    offset,
                    size,
                    media_start,
                    duration,
                    cut_us,
                };
                offset += size;
                s
            })
            .collect();
        Self { segments }
    }

    /// The stream's size, bytes.
    pub fn bytes(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.offset + s.size)
    }

    /// Segment `n`.
    pub fn segment(&self, n: u64) -> Option<&Segment> {
        let i = self.segments.binary_search_by_key(&n, |s| s.n).ok()?;
        self.segments.get(i)
    }

    /// The media time of published byte `pos` (ticks): its segment's start plus the segment's
    /// duration in proportion to the bytes before it (the stream's end for `pos` past it).
    pub fn media_at(&self, pos: u64) -> u64 {
        let i = self.segments.partition_point(|s| s.offset + s.size <= pos);
        match self.segments.get(i) {
            Some(s) => {
                let into = pos.saturating_sub(s.offset);
                s.media_start + (s.duration as u128 * into as u128 / s.size.max(1) as u128) as u64
            }
            None => self
                .segments
                .last()
                .map_or(0, |s| s.media_start + s.duration),
        }
    }

    /// When the publisher's input had media time `m` (µs, its wall clock): the feed is paced in
    /// real time and a segment is cut when the first frame after it arrives, so media `m` of a
    /// segment cut at `cut_us` came in `(media end - m)` before the cut.
    pub fn input_us(&self, m: u64) -> Option<u64> {
        let i = self
            .segments
            .partition_point(|s| s.media_start + s.duration <= m);
        let s = self.segments.get(i).or(self.segments.last())?;
        let before = (s.media_start + s.duration).saturating_sub(m) * 1_000_000 / TICKS;
        Some(s.cut_us.saturating_sub(before))
    }
}

/// A stretch of media that arrived at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Media start, ticks.
    pub start: u64,
    /// Media end, ticks (exclusive).
    pub end: u64,
    /// When it was there to play (wall clock, µs).
    pub at_us: u64,
}

/// What the simulated player did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Playout {
    /// When it started playing (wall clock, µs); None if the buffer never filled.
    pub start_us: Option<u64>,
    /// Stalls after the start.
    pub stalls: u64,
    /// Their total length, µs.
    pub stall_us: u64,
    /// Media played, ticks.
    pub played_ticks: u64,
    /// Media that never arrived between the first and last stretch played (frozen), ticks.
    pub skipped_ticks: u64,
    /// Glass to glass, one sample per second of media played, ms.
    pub glass_ms: Vec<f64>,
}

/// The chunks in media order, overlaps trimmed (a stretch that arrived twice counts at its first
/// arrival in media order), empty ones dropped.
fn normalise(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut v: Vec<Chunk> = chunks.iter().copied().filter(|c| c.end > c.start).collect();
    v.sort_by_key(|c| (c.start, c.at_us));
    let mut out: Vec<Chunk> = Vec::with_capacity(v.len());
    let mut reach = 0;
    for mut c in v {
        if !out.is_empty() {
            c.start = c.start.max(reach);
        }
        if c.end > c.start {
            reach = c.end;
            out.push(c);
        }
    }
    out
}

/// When `buffer` ticks of media from chunk `i` on are there: the latest arrival among the chunks
/// that make up that much (or all the rest).
fn filled(chunks: &[Chunk], i: usize, buffer: u64) -> u64 {
    let mut have = 0;
    let mut at = 0;
    for c in &chunks[i..] {
        at = at.max(c.at_us);
        have += c.end - c.start;
        if have >= buffer {
            break;
        }
    }
    at
}

/// Plays `chunks` with a buffer of `buffer` ticks (see the module documentation); `published`
/// gives each media time its input time.
pub fn simulate(chunks: &[Chunk], buffer: u64, published: &Published) -> Playout {
    let chunks = normalise(chunks);
    let mut out = Playout::default();
    if chunks.is_empty() {
        return out;
    }
    let start = filled(&chunks, 0, buffer);
    out.start_us = Some(start);
    let mut clock = start;
    let mut prev_end = chunks[0].start;
    for i in 0..chunks.len() {
        let c = chunks[i];
        // A gap plays as a frozen picture for its duration.
        let gap = c.start.saturating_sub(prev_end);
        out.skipped_ticks += gap;
        clock += gap * 1_000_000 / TICKS;
        if c.at_us > clock {
            let resume = filled(&chunks, i, buffer);
            out.stalls += 1;
            out.stall_us += resume - clock;
            clock = resume;
        }
        prev_end = c.end;
        // One glass-to-glass sample per whole second of media in the chunk.
        let first = c.start.div_ceil(TICKS) * TICKS;
        let mut m = first;
        while m < c.end {
            let shown = clock + (m - c.start) * 1_000_000 / TICKS;
            if let Some(input) = published.input_us(m) {
                out.glass_ms.push((shown as f64 - input as f64) / 1000.0);
            }
            m += TICKS;
        }
        out.played_ticks += c.end - c.start;
        clock += (c.end - c.start) * 1_000_000 / TICKS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    /// Ten 2 s segments of 1000 bytes, cut at the end of their media (a publisher whose clock
    /// starts at 100 s).
    fn published() -> Published {
        Published::new(
            (0..10)
                .map(|n| (n, 1000, n * 2 * TICKS, 2 * TICKS, 100 * S + (n + 1) * 2 * S))
                .collect(),
        )
    }

    fn seg_chunk(n: u64, at_us: u64) -> Chunk {
        Chunk {
            start: n * 2 * TICKS,
            end: (n + 1) * 2 * TICKS,
            at_us,
        }
    }

    #[test]
    fn media_and_input_times_follow_the_cuts() {
        let p = published();
        assert_eq!(p.bytes(), 10_000);
        assert_eq!(p.media_at(0), 0);
        assert_eq!(p.media_at(1500), 3 * TICKS);
        assert_eq!(p.media_at(99_999), 20 * TICKS);
        // Media 3 s is in segment 1, cut at 104 s with media to 4 s: input at 103 s.
        assert_eq!(p.input_us(3 * TICKS), Some(103 * S));
        assert_eq!(p.input_us(0), Some(100 * S));
    }

    #[test]
    fn on_time_arrivals_never_stall_and_glass_to_glass_is_the_wait() {
        let p = published();
        // Each segment there 1 s after its cut.
        let chunks: Vec<Chunk> = (0..10)
            .map(|n| seg_chunk(n, 100 * S + (n + 1) * 2 * S + S))
            .collect();
        let out = simulate(&chunks, 2 * TICKS, &p);
        assert_eq!(out.start_us, Some(103 * S));
        assert_eq!(out.stalls, 0);
        assert_eq!(out.played_ticks, 20 * TICKS);
        assert_eq!(out.glass_ms.len(), 20);
        // Media 0 came in at 100 s and shows at 103 s.
        assert!(
            out.glass_ms.iter().all(|&g| (g - 3000.0).abs() < 1e-6),
            "{:?}",
            out.glass_ms
        );
    }

    #[test]
    fn a_late_segment_stalls_until_the_buffer_refills() {
        let p = published();
        let mut chunks: Vec<Chunk> = (0..10)
            .map(|n| seg_chunk(n, 100 * S + (n + 1) * 2 * S + S))
            .collect();
        // Segment 4 (due at 111 s) arrives at 115 s; segment 5 at 113 s.
        chunks[4].at_us = 115 * S;
        let out = simulate(&chunks, 4 * TICKS, &p);
        // Start: segments 0 and 1 there at 105 s. Segment 4 due at 105 + 8 = 113 s; the buffer
        // (4 s: segments 4 and 5) is there at 115 s.
        assert_eq!(out.start_us, Some(105 * S));
        assert_eq!(out.stalls, 1);
        assert_eq!(out.stall_us, 2 * S);
    }

    #[test]
    fn lost_media_freezes_for_its_duration_and_is_no_stall() {
        let p = published();
        let chunks: Vec<Chunk> = (0..10)
            .filter(|&n| n != 3)
            .map(|n| seg_chunk(n, 100 * S + (n + 1) * 2 * S + S))
            .collect();
        let out = simulate(&chunks, 2 * TICKS, &p);
        assert_eq!(out.skipped_ticks, 2 * TICKS);
        assert_eq!(out.played_ticks, 18 * TICKS);
        // Segment 4 is due at 103 + 8 = 111 s (segment 3's 2 s frozen) and there then.
        assert_eq!(out.stalls, 0);
        // Media 8 s (segment 4) came in at 108 s and shows at 111 s.
        assert!(out.glass_ms.iter().all(|&g| (g - 3000.0).abs() < 1e-6));
    }

    #[test]
    fn overlapping_and_fine_chunks_play_once() {
        let p = published();
        // A continuous stream: 100 ms chunks, each there 500 ms after its input, one repeated.
        let mut chunks: Vec<Chunk> = (0..200)
            .map(|k| Chunk {
                start: k * TICKS / 10,
                end: (k + 1) * TICKS / 10,
                at_us: 100 * S + (k + 1) * S / 10 + S / 2,
            })
            .collect();
        chunks.push(chunks[50]);
        let out = simulate(&chunks, TICKS, &p);
        assert_eq!(out.played_ticks, 20 * TICKS);
        assert_eq!(out.stalls, 0);
        assert_eq!(out.start_us, Some(100 * S + S + S / 2));
        assert!(simulate(&[], TICKS, &p).start_us.is_none());
    }
}
