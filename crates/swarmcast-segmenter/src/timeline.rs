//! A continuous 64-bit media timeline built from 33-bit, wrapping, sometimes jumping timestamps.

use crate::ts::PTS_MODULO;

/// A forward step larger than this (90 kHz ticks, 10 s) is a timestamp jump, not a gap.
pub const MAX_FORWARD_STEP: u64 = 10 * 90_000;
/// A backward step larger than this (1 s) is a jump; smaller ones are frame reordering.
pub const MAX_BACKWARD_STEP: u64 = 90_000;
/// Frame duration assumed until one is measured (40 ms: 25 fps).
pub const DEFAULT_FRAME: u64 = 3_600;

/// Unwraps timestamps onto a timeline that never wraps. After a discontinuity (flagged by the
/// stream or detected as a jump) the timeline continues one frame after the latest time seen, so
/// media times stay monotonic across encoder restarts and splices.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    last_raw: Option<u64>,
    last: u64,
    latest: u64,
    frame: Option<u64>,
    discontinuity_flagged: bool,
}

/// One timestamp placed on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Unwrapped time, 90 kHz ticks.
    pub time: u64,
    /// The timestamp did not follow from the previous one (flagged discontinuity or jump).
    pub discontinuity: bool,
}

impl Timeline {
    /// The stream says its timestamps restart (adaptation field discontinuity indicator).
    pub fn flag_discontinuity(&mut self) {
        self.discontinuity_flagged = true;
    }

    /// Places a 33-bit timestamp.
    pub fn place(&mut self, raw: u64) -> Placed {
        let raw = raw % PTS_MODULO;
        let Some(prev) = self.last_raw else {
            self.last_raw = Some(raw);
            self.last = raw;
            self.latest = raw;
            self.discontinuity_flagged = false;
            return Placed {
                time: raw,
                discontinuity: false,
            };
        };
        let forward = (raw + PTS_MODULO - prev) % PTS_MODULO;
        let (time, discontinuity) = if self.discontinuity_flagged {
            (self.latest + self.frame(), true)
        } else if forward <= MAX_FORWARD_STEP {
            (self.last + forward, false)
        } else if PTS_MODULO - forward <= MAX_BACKWARD_STEP {
            (self.last.saturating_sub(PTS_MODULO - forward), false)
        } else {
            (self.latest + self.frame(), true)
        };
        if !discontinuity && time > self.last {
            let step = time - self.last;
            self.frame = Some(self.frame.map_or(step, |f| f.min(step)));
        }
        self.discontinuity_flagged = false;
        self.last_raw = Some(raw);
        self.last = time;
        self.latest = self.latest.max(time);
        Placed {
            time,
            discontinuity,
        }
    }

    /// The shortest step between consecutive timestamps seen, or [`DEFAULT_FRAME`].
    pub fn frame(&self) -> u64 {
        self.frame.unwrap_or(DEFAULT_FRAME)
    }

    /// One frame after the latest time placed: where the media seen so far ends.
    pub fn end(&self) -> Option<u64> {
        self.last_raw.map(|_| self.latest + self.frame())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_across_the_33_bit_wrap() {
        let mut t = Timeline::default();
        let start = PTS_MODULO - 3 * 3600;
        let times: Vec<u64> = (0..6)
            .map(|i| t.place((start + i * 3600) % PTS_MODULO).time)
            .collect();
        assert_eq!(times, (0..6).map(|i| start + i * 3600).collect::<Vec<_>>());
        assert_eq!(t.frame(), 3600);
        assert_eq!(t.end(), Some(start + 6 * 3600));
    }

    #[test]
    fn reordering_is_not_a_jump_but_a_leap_is() {
        let mut t = Timeline::default();
        for raw in [9000u64, 18_000, 12_600, 15_300] {
            assert!(!t.place(raw).discontinuity);
        }
        let jump = t.place(9000 + 3_600_000);
        assert!(jump.discontinuity);
        assert_eq!(jump.time, 18_000 + t.frame());
        let back = t.place(100); // far backwards: another jump, still monotonic
        assert!(back.discontinuity);
        assert!(back.time > jump.time);
    }

    #[test]
    fn flagged_discontinuity_rebases_even_small_steps() {
        let mut t = Timeline::default();
        t.place(1000);
        t.place(4600);
        t.flag_discontinuity();
        let p = t.place(4600 + 3600);
        assert!(p.discontinuity);
        assert_eq!(p.time, 4600 + 3600);
        assert!(!t.place(4600 + 7200).discontinuity);
    }
}
