//! How long a segment stays available after it leaves the playlist (RFC 8216 §6.2.2): the
//! segment's duration plus the duration of the longest playlist that contained it. The viewer
//! deletes a segment's file when it forgets it, so each listed segment is kept as a hard link
//! (or a copy) of its own in the HLS directory until then. [`Retention`] is the rule's state,
//! pure (times passed in, in ms on any clock that only goes forward); the file work is the
//! caller's.

use std::collections::BTreeMap;

use super::playlist::Playlist;

/// A segment kept for HLS clients.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kept {
    /// Its duration, ms.
    duration_ms: u64,
    /// The longest playlist that listed it, ms.
    longest_playlist_ms: u64,
    /// When it left the playlist.
    left_ms: Option<u64>,
}

/// True once a segment that left the playlist at `left_ms` may be removed at `now_ms`: RFC
/// 8216 §6.2.2 keeps it available for its duration plus the duration of the longest playlist
/// that contained it.
pub fn expired(left_ms: u64, duration_ms: u64, longest_playlist_ms: u64, now_ms: u64) -> bool {
    now_ms >= left_ms.saturating_add(duration_ms.saturating_add(longest_playlist_ms))
}

/// The segments kept for HLS clients: those listed now, and those that left less than their
/// retention ago.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    kept: BTreeMap<u64, Kept>,
}

impl Retention {
    /// Nothing kept.
    pub fn new() -> Self {
        Self::default()
    }

    /// A playlist was built at `now_ms`: its segments are kept (returned: the numbers kept
    /// from now on, whose files the caller must keep), the longest playlist of each is updated,
    /// and the segments that were listed and are no longer have left at `now_ms`.
    pub fn listed(&mut self, playlist: &Playlist, now_ms: u64) -> Vec<u64> {
        let total = playlist.duration_ms();
        let mut new = Vec::new();
        for s in &playlist.segments {
            let k = self.kept.entry(s.number).or_insert_with(|| {
                new.push(s.number);
                Kept {
                    duration_ms: s.duration.saturating_mul(1000) / 90_000,
                    longest_playlist_ms: 0,
                    left_ms: None,
                }
            });
            k.longest_playlist_ms = k.longest_playlist_ms.max(total);
            // Back in the playlist (cannot happen with a timeline that only moves forward).
            k.left_ms = None;
        }
        for (n, k) in &mut self.kept {
            if k.left_ms.is_none() && !playlist.segments.iter().any(|s| s.number == *n) {
                k.left_ms = Some(now_ms);
            }
        }
        new
    }

    /// A segment that could not be kept (its file was gone): forgotten.
    pub fn drop_segment(&mut self, number: u64) {
        self.kept.remove(&number);
    }

    /// Whether `number` is kept (listed, or within its retention).
    pub fn contains(&self, number: u64) -> bool {
        self.kept.contains_key(&number)
    }

    /// The segments whose retention ended at `now_ms`, removed from those kept: the caller
    /// removes their files.
    pub fn expire(&mut self, now_ms: u64) -> Vec<u64> {
        let gone: Vec<u64> = self
            .kept
            .iter()
            .filter(|(_, k)| {
                k.left_ms
                    .is_some_and(|l| expired(l, k.duration_ms, k.longest_playlist_ms, now_ms))
            })
            .map(|(n, _)| *n)
            .collect();
        for n in &gone {
            self.kept.remove(n);
        }
        gone
    }

    /// How many segments are kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::playlist::PlaylistSegment;

    fn playlist(numbers: std::ops::RangeInclusive<u64>, secs: u64) -> Playlist {
        Playlist {
            target_duration: 2 * secs,
            media_sequence: *numbers.start(),
            discontinuity_sequence: 0,
            segments: numbers
                .map(|number| PlaylistSegment {
                    number,
                    duration: secs * 90_000,
                    discontinuity: false,
                    date_ms: 0,
                })
                .collect(),
            end_list: false,
        }
    }

    #[test]
    fn the_rule_is_duration_plus_longest_playlist_after_leaving() {
        assert!(!expired(10_000, 2_000, 10_000, 21_999));
        assert!(expired(10_000, 2_000, 10_000, 22_000));
        assert!(!expired(u64::MAX - 5, 2_000, 10_000, u64::MAX - 1));
    }

    #[test]
    fn a_segment_stays_until_its_retention_after_it_leaves() {
        let mut r = Retention::new();
        // 2 s segments; the playlist grows to 5 (10 s), then slides.
        assert_eq!(r.listed(&playlist(0..=2, 2), 0), [0, 1, 2]);
        assert_eq!(r.listed(&playlist(0..=4, 2), 1_000), [3, 4]);
        assert_eq!(r.listed(&playlist(1..=5, 2), 5_000), [5]);
        assert!(r.contains(0), "left at 5 s, kept");
        // 0 left at 5 s: 2 s + the 10 s playlist later.
        assert!(r.expire(16_999).is_empty());
        assert_eq!(r.expire(17_000), [0]);
        assert!(!r.contains(0));
        // Listed segments never expire, however late.
        assert!(r.expire(1_000_000).is_empty());
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn the_longest_playlist_counts_not_the_last() {
        let mut r = Retention::new();
        r.listed(&playlist(0..=5, 2), 0); // 12 s
        r.listed(&playlist(2..=5, 2), 1_000); // 0 and 1 left
        r.listed(&playlist(3..=5, 2), 2_000); // 2 left
        r.listed(&playlist(4..=5, 2), 3_000); // 3 left; the last playlist with it was 6 s
        assert!(r.expire(11_000).is_empty());
        assert_eq!(r.expire(15_000), [0, 1]);
        assert_eq!(r.expire(16_999), [2]);
        assert!(r.expire(16_999).is_empty());
        assert_eq!(r.expire(17_000), [3]);
        r.drop_segment(4);
        assert_eq!(r.len(), 1);
    }

    /// Bounded: a long stream keeps only the playlist and what left within the retention.
    #[test]
    fn memory_stays_bounded() {
        let mut r = Retention::new();
        for n in 0..10_000u64 {
            let now = n * 2_000;
            r.listed(&playlist(n.saturating_sub(4)..=n, 2), now);
            r.expire(now);
        }
        // 5 listed, and those that left within 2 s + 10 s.
        assert!(r.len() <= 5 + 7, "{}", r.len());
    }
}
