//! The live HLS media playlist (`/live.m3u8`, RFC 8216), built from the segments the viewer
//! has verified and not yet forgotten: pure, no I/O, every input passed in.
//!
//! - [`HlsTimeline`] turns the viewer's verified segments (any order, maybe with holes) into
//!   the segments listed, the media sequence and the discontinuity sequence, remembering what
//!   it listed before: it lists the run of consecutive numbers from the oldest verified segment
//!   (a segment verified before the one ahead of it waits for it: media sequence numbers are
//!   positions), and counts the discontinuities of the segments that leave the playlist.
//! - [`render`] writes the playlist text.
//! - [`target_duration_secs`] the constant `EXT-X-TARGETDURATION` of a stream.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Ticks per second of the manifest's durations (90 kHz).
const TICKS: u64 = 90_000;

/// One segment of the playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistSegment {
    /// The segment's number (its media sequence number).
    pub number: u64,
    /// Its media duration in 90 kHz ticks.
    pub duration: u64,
    /// An `EXT-X-DISCONTINUITY` goes before it.
    pub discontinuity: bool,
    /// The wall-clock time of its first sample, ms since the Unix epoch (its
    /// `EXT-X-PROGRAM-DATE-TIME`): the publisher's publication time less its duration (a
    /// segment is published once cut, at its end, plus the milliseconds of hashing and seeding).
    pub date_ms: u64,
}

/// A playlist to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playlist {
    /// `EXT-X-TARGETDURATION`, seconds (see [`target_duration_secs`]).
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`: the first segment's number; with no segment, the number the next
    /// one will have (never less than an earlier playlist's).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`: the discontinuities before the first listed segment.
    pub discontinuity_sequence: u64,
    /// The segments, consecutive numbers, oldest first.
    pub segments: Vec<PlaylistSegment>,
    /// No segment will follow the last one: `EXT-X-ENDLIST`.
    pub end_list: bool,
}

impl Playlist {
    /// The sum of the listed segments' durations, ms.
    pub fn duration_ms(&self) -> u64 {
        let ticks = self
            .segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.duration));
        ticks.saturating_mul(1000) / TICKS
    }
}

/// The stream's `EXT-X-TARGETDURATION` in seconds, from the manifest's target segment duration
/// (90 kHz ticks): `ceil(2 × target)`, at least 1. The segmenter cuts at the first keyframe at
/// or after the target, and forces a cut at the first frame at or after twice the target (see
/// `swarmcast-segmenter`'s cutter), so a segment lasts less than twice the target plus one
/// frame: rounded to the nearest second, at most `ceil(2 × target)` for any frame rate above
/// 2 fps (RFC 8216 §4.3.3.1). It never changes for a stream (§6.2.1 forbids it), so it is taken
/// from the first manifest.
pub fn target_duration_secs(target_ticks: u64) -> u64 {
    target_ticks.saturating_mul(2).div_ceil(TICKS).max(1)
}

/// The playlist's text. Tags in this order: `#EXTM3U`, `#EXT-X-VERSION:3`,
/// `#EXT-X-TARGETDURATION`, `#EXT-X-MEDIA-SEQUENCE` ([`Playlist::media_sequence`]),
/// `#EXT-X-DISCONTINUITY-SEQUENCE`, then per segment `#EXT-X-DISCONTINUITY` (when
/// flagged), `#EXT-X-PROGRAM-DATE-TIME` and `#EXTINF:<seconds, 3 decimals>,` before its URI
/// (`segment_uri(number)`), and `#EXT-X-ENDLIST` last at the end of the stream.
pub fn render(playlist: &Playlist, segment_uri: impl Fn(u64) -> String) -> String {
    let mut out = String::with_capacity(128 + 120 * playlist.segments.len());
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{}\n",
        playlist.target_duration, playlist.media_sequence, playlist.discontinuity_sequence
    );
    for s in &playlist.segments {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{},\n{}\n",
            rfc3339_ms(s.date_ms),
            seconds_3(s.duration),
            segment_uri(s.number)
        );
    }
    if playlist.end_list {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// 90 kHz ticks as seconds with 3 decimals (rounded to the nearest ms).
fn seconds_3(ticks: u64) -> String {
    let ms = ticks.saturating_mul(1000).saturating_add(TICKS / 2) / TICKS;
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC with milliseconds
/// (`2026-12-02T08:28:25.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let (secs, milli) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// What the playlist listed, so that the next one keeps the sequence numbers (RFC 8216 §6.2.2):
/// the discontinuities of segments that left are counted into the discontinuity sequence.
#[derive(Clone, Debug, Default)]
pub struct HlsTimeline {
    /// The segments listed last time, by number, with their discontinuity as listed.
    listed: BTreeMap<u64, bool>,
    /// The newest number ever listed.
    newest: Option<u64>,
    /// The first number of the last playlist: no segment before it is listed again, so the
    /// media sequence never goes back (a segment verified after the one behind it, as at a
    /// join when several download at once, is not put in front of what was listed).
    floor: u64,
    /// Discontinuities of the segments that left the playlist.
    discontinuity_sequence: u64,
}

impl HlsTimeline {
    /// A timeline that has listed nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The playlist for the viewer's verified segments now (any order; numbers that left are
    /// not there): the run of consecutive numbers from the oldest. A segment listed after a
    /// hole in the numbers (one the viewer skipped) is a discontinuity too, its timestamps
    /// jump. `end_of_stream`: no segment will be verified after the last of `verified`; the
    /// list ends (`EXT-X-ENDLIST`) if the run reaches it.
    pub fn update(
        &mut self,
        target_duration: u64,
        verified: &[PlaylistSegment],
        end_of_stream: bool,
    ) -> Playlist {
        let mut sorted: Vec<&PlaylistSegment> =
            verified.iter().filter(|s| s.number >= self.floor).collect();
        sorted.sort_by_key(|s| s.number);
        sorted.dedup_by_key(|s| s.number);
        let mut run: Vec<PlaylistSegment> = Vec::with_capacity(sorted.len());
        for s in &sorted {
            if run.last().is_some_and(|l| l.number + 1 != s.number) {
                break;
            }
            run.push((*s).clone());
        }
        // Segments that left the front: their discontinuities are counted.
        let first = run.first().map_or(u64::MAX, |s| s.number);
        let left: Vec<u64> = self.listed.range(..first).map(|(n, _)| *n).collect();
        for n in left {
            if self.listed.remove(&n) == Some(true) {
                self.discontinuity_sequence += 1;
            }
        }
        for s in &mut run {
            match self.listed.get(&s.number) {
                // Listed before: as listed then.
                Some(d) => s.discontinuity = *d,
                None => {
                    let after_hole = self.newest.is_some_and(|n| s.number > n + 1);
                    s.discontinuity |= after_hole;
                    self.listed.insert(s.number, s.discontinuity);
                }
            }
            self.newest = Some(self.newest.map_or(s.number, |n| n.max(s.number)));
        }
        // Listed before, beyond the run now (forgotten out of order): no longer remembered.
        let last = run.last().map_or(0, |s| s.number);
        self.listed.retain(|n, _| *n >= first && *n <= last);
        let end_list = end_of_stream && run.len() == sorted.len();
        let media_sequence = run
            .first()
            .map_or_else(|| self.newest.map_or(self.floor, |n| n + 1), |s| s.number);
        self.floor = self.floor.max(media_sequence);
        Playlist {
            target_duration,
            media_sequence,
            discontinuity_sequence: self.discontinuity_sequence,
            segments: run,
            end_list,
        }
    }
}

#[cfg(test)]
mod tests;
