//! The scheduler on a virtual clock: every time is a number passed in. (The manifest helpers
//! are shared with the watch loop's tests.)

use swarmcast_core::{Manifest, SegmentEntry, SegmentTorrent, StreamSecret};

use super::*;

/// Segment duration, ms.
pub(crate) const D: u64 = 2_000;

fn entry(n: u64) -> SegmentEntry {
    let data = [n as u8; 100];
    let t = SegmentTorrent::build(&data[..], 100, &format!("{n:08}.ts"), None, vec![]).unwrap();
    SegmentEntry {
        number: n,
        media_start: n * D * 90,
        duration: D * 90,
        size: 100,
        discontinuity: false,
        published_ms: 0,
        info_hash: t.info_hash(),
        info: t.info_bytes().to_vec(),
    }
}

/// A manifest listing `numbers`, each segment `D` long.
pub(crate) fn manifest(numbers: std::ops::RangeInclusive<u64>, end: bool) -> Manifest {
    Manifest {
        key: StreamSecret::from_seed(&[1; 32]).public(),
        seq: 1,
        issued_ms: 0,
        target_duration: D * 90,
        peers: vec![],
        trackers: vec![],
        end_of_stream: end,
        segments: numbers.map(entry).collect(),
    }
}

fn sched(from_start: bool, prefetch: usize, delay: Option<u64>) -> Scheduler {
    Scheduler::new(ScheduleConfig {
        from_start,
        prefetch,
        delay_ms: delay,
        fallback_margin_ms: 500,
        http_fallback: true,
    })
}

fn plays(actions: &[Action]) -> Vec<(u64, u64, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play {
                number,
                deadline_ms,
                stall_ms,
            } => Some((*number, *deadline_ms, *stall_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_at_the_live_edge_or_from_the_start() {
    let mut s = sched(false, 3, None);
    assert_eq!(s.on_manifest(&manifest(0..=4, false)), vec![4]);
    assert_eq!(s.poll(0), vec![Action::Add(4)]);
    assert_eq!(s.joined_at(), Some(4));
    // The next manifest's new segment is prefetched at once.
    assert_eq!(s.on_manifest(&manifest(1..=5, false)), vec![5]);
    assert_eq!(s.poll(10), vec![Action::Add(5)]);

    let mut s = sched(true, 3, None);
    s.on_manifest(&manifest(0..=4, false));
    assert_eq!(
        s.poll(0),
        vec![Action::Add(0), Action::Add(1), Action::Add(2)]
    );
}

#[test]
fn by_default_a_viewer_behind_live_adds_the_whole_window() {
    // A viewer playing the oldest of five listed segments (as one that fell behind does) has all
    // five in the swarm, so the publisher is asked for each as soon as it is listed.
    let mut s = Scheduler::new(ScheduleConfig {
        from_start: true,
        ..ScheduleConfig::default()
    });
    s.on_manifest(&manifest(0..=4, false));
    assert_eq!(s.poll(0), (0..=4).map(Action::Add).collect::<Vec<_>>());
}

#[test]
fn a_viewer_playing_behind_the_window_adds_each_new_segment_when_it_is_listed() {
    // Window of 5; the viewer joins from the start and has played only segment 0 when segment 8
    // is listed: its next, 1, and 2-3 have left the window (complete, being re-seeded).
    let mut s = sched(true, 5, Some(0));
    s.on_manifest(&manifest(0..=4, false));
    assert_eq!(s.poll(0), (0..=4).map(Action::Add).collect::<Vec<_>>());
    for n in 0..=4 {
        s.on_complete(n, 10 + n);
    }
    assert_eq!(plays(&s.poll(20)), vec![(0, 10, 0)]);
    s.on_manifest(&manifest(4..=8, false));
    // 5-8 are listed: all four are added at once, though 8 is 7 numbers ahead of the next to
    // play (counting numbers, five from 1 ended at 5).
    let adds: Vec<Action> = s
        .poll(30)
        .into_iter()
        .filter(|a| matches!(a, Action::Add(_)))
        .collect();
    assert_eq!(adds, (5..=8).map(Action::Add).collect::<Vec<_>>());
}

#[test]
fn plays_back_to_back_after_the_automatic_delay() {
    let mut s = sched(true, 3, None);
    s.on_manifest(&manifest(0..=2, false));
    s.poll(0);
    s.on_complete(0, 300);
    s.on_complete(1, 900);
    // Auto delay: twice the first fetch (300 ms) plus the 500 ms fallback margin: it plays at 1400.
    assert!(plays(&s.poll(1399)).is_empty());
    assert_eq!(s.stats().delay_ms, Some(1100));
    assert_eq!(plays(&s.poll(1400)), vec![(0, 1400, 0)]);
    // Segment 1 is complete already: the next thing to happen is its deadline.
    assert_eq!(s.next_wakeup(1400), Some(1400 + D));
    assert!(plays(&s.poll(1400 + D - 1)).is_empty());
    assert_eq!(plays(&s.poll(1400 + D)), vec![(1, 1400 + D, 0)]);
    assert_eq!(s.stats().stalls, 0);
}

#[test]
fn the_automatic_delay_is_bounded() {
    let mut fast = Scheduler::new(ScheduleConfig {
        from_start: true,
        prefetch: 1,
        delay_ms: None,
        fallback_margin_ms: 500,
        http_fallback: false,
    });
    fast.on_manifest(&manifest(0..=0, false));
    fast.poll(0);
    fast.on_complete(0, 10);
    fast.poll(10);
    assert_eq!(
        fast.stats().delay_ms,
        Some(MIN_AUTO_DELAY_MS),
        "without fallback: 2 x 10 ms, raised to the floor"
    );
    let mut slow = sched(true, 1, None);
    slow.on_manifest(&manifest(0..=0, false));
    slow.poll(0);
    slow.on_complete(0, 9_000);
    slow.poll(9_000);
    assert_eq!(
        slow.stats().delay_ms,
        Some(MAX_AUTO_ALLOWANCE_MS + 500),
        "2 x 9 s, cut to the allowance's cap, + the 500 ms margin: more than one segment (2 s)"
    );
    assert!(slow.stats().delay_ms > Some(D), "more than one segment");
    assert_eq!(
        slow.auto_delay(100),
        750,
        "max(2 x 100 ms, 250 ms) + the 500 ms margin"
    );
    assert_eq!(slow.auto_delay(400), 1300, "2 x 400 ms + the 500 ms margin");
    // Long segments: the allowance stops at 2 s, not at the segment (10 s).
    let mut long = sched(true, 1, None);
    let mut m = manifest(0..=0, false);
    m.target_duration = 10_000 * 90;
    m.segments[0].duration = 10_000 * 90;
    long.on_manifest(&m);
    long.poll(0);
    long.on_complete(0, 11_000);
    long.poll(11_000);
    assert_eq!(
        long.stats().delay_ms,
        Some(MAX_AUTO_ALLOWANCE_MS + 500),
        "2 x 11 s, cut to 2.5 s, + the 500 ms margin"
    );
    assert_eq!(
        long.auto_delay(600),
        1700,
        "under the cap: 2 x 600 ms + 500 ms"
    );
    let mut fixed = sched(true, 1, Some(1234));
    fixed.on_manifest(&manifest(0..=0, false));
    fixed.poll(0);
    fixed.on_complete(0, 10);
    fixed.poll(10);
    assert_eq!(fixed.stats().delay_ms, Some(1234));
}

#[test]
fn a_late_segment_is_a_stall_and_the_clock_slips_by_it() {
    let mut s = Scheduler::new(ScheduleConfig {
        from_start: true,
        prefetch: 3,
        delay_ms: Some(500),
        fallback_margin_ms: 500,
        http_fallback: false,
    });
    s.on_manifest(&manifest(0..=3, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(plays(&s.poll(600)), vec![(0, 600, 0)]);
    // Segment 1 is due at 2600 but completes at 3300: a 700 ms stall.
    assert!(plays(&s.poll(2600)).is_empty());
    s.on_complete(1, 3300);
    assert_eq!(plays(&s.poll(3300)), vec![(1, 2600, 700)]);
    // The clock slipped: segment 2 is due a duration after 3300, not after 2600.
    s.on_complete(2, 3400);
    assert!(plays(&s.poll(3300 + D - 1)).is_empty());
    assert_eq!(plays(&s.poll(3300 + D)), vec![(2, 3300 + D, 0)]);
    let st = s.stats();
    assert_eq!((st.stalls, st.stall_ms, st.played), (1, 700, 3));
    // Slip = sum of stalls: segment 2 played at 600 + 2D + 700.
    assert_eq!(3300 + D, 600 + 2 * D + st.stall_ms);
}

#[test]
fn a_segment_that_left_the_window_unfetched_is_skipped_and_counted() {
    let mut s = sched(true, 1, Some(0));
    s.on_manifest(&manifest(0..=3, false));
    assert_eq!(s.poll(0), vec![Action::Add(0)]);
    // Before 0 completes, the window moves past 1 (never added: prefetch 1).
    s.on_manifest(&manifest(2..=5, false));
    s.on_complete(0, 100);
    let actions = s.poll(100);
    assert_eq!(plays(&actions), vec![(0, 100, 0)]);
    assert!(actions.contains(&Action::Skip(1)), "{actions:?}");
    assert!(actions.contains(&Action::Add(2)), "{actions:?}");
    assert_eq!(s.stats().skipped, 1);
    // A skip takes no time: segment 2 is due when 1 was.
    assert_eq!(s.deadline(2), Some(100 + D));
    // Played segment 0 left the window: it is forgotten.
    assert!(actions.contains(&Action::Forget(0)) || s.state(0) == Some(SegState::Forgotten));
}

#[test]
fn http_fallback_starts_a_margin_before_the_deadline_and_saves_the_deadline() {
    let mut s = sched(true, 2, Some(200));
    s.on_manifest(&manifest(0..=1, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(plays(&s.poll(300)), vec![(0, 300, 0)]);
    // Segment 1 is due at 2300; at 1800 (500 ms before) it is still downloading.
    assert!(!s.poll(1799).contains(&Action::FetchHttp(1)));
    assert_eq!(s.poll(1800), vec![Action::FetchHttp(1)]);
    assert_eq!(s.stats().fallbacks, 1);
    s.on_complete(1, 2000);
    assert_eq!(plays(&s.poll(2300)), vec![(1, 2300, 0)]);
    // A failed fetch goes back to waiting for the swarm and may be retried.
    let mut f = sched(true, 2, Some(200));
    f.on_manifest(&manifest(0..=1, false));
    f.poll(0);
    f.on_complete(0, 100);
    f.poll(300);
    f.poll(1800);
    f.on_fetch_failed(1, 1850, FetchFailure::Failed);
    assert_eq!(f.state(1), Some(SegState::Added));
    // It waits its pause, then runs again.
    assert!(!f
        .poll(1850 + FALLBACK_RETRY_MS - 1)
        .contains(&Action::FetchHttp(1)));
    assert_eq!(
        f.next_wakeup(1850 + FALLBACK_RETRY_MS - 1),
        Some(1850 + FALLBACK_RETRY_MS)
    );
    assert_eq!(f.poll(1850 + FALLBACK_RETRY_MS), vec![Action::FetchHttp(1)]);
    // A segment the publisher no longer has is left to the swarm: no fallback again, no wakeup
    // for one.
    f.on_fetch_failed(1, 3000, FetchFailure::Gone);
    assert_eq!(f.state(1), Some(SegState::Added));
    assert!(f.poll(60_000).iter().all(|a| *a != Action::FetchHttp(1)));
    assert_eq!(f.stats().fallbacks, 2);
    f.on_complete(1, 60_001);
    assert_eq!(plays(&f.poll(60_001)), vec![(1, 2300, 60_001 - 2300)]);
}

/// Segment `k` of `sched(true, 5, Some(200))` after `manifest(0..=last)`, segment 0 complete at
/// 100 and played at 300, is due at 300 + 2000k; its fallback at 2000k - 200.
fn playing(last: u64) -> Scheduler {
    let mut s = sched(true, 5, Some(200));
    s.on_manifest(&manifest(0..=last, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(plays(&s.poll(300)), vec![(0, 300, 0)]);
    s
}

#[test]
fn fallbacks_run_one_at_a_time_the_earliest_first() {
    let mut s = playing(4);
    // At 4000 segments 1 (due 1800) and 2 (due 3800) are both late: only 1 is fetched.
    assert_eq!(s.poll(4000), vec![Action::FetchHttp(1)]);
    // While it runs, no other starts, and no wakeup is asked for one.
    assert!(s.poll(6000).is_empty());
    assert_eq!(s.next_wakeup(6000), None);
    // It ends (failed): the next earliest goes, then no other.
    s.on_fetch_failed(1, 6000, FetchFailure::Failed);
    assert_eq!(s.poll(6000), vec![Action::FetchHttp(2)]);
    s.on_complete(2, 6100);
    // Segment 1 waits out its pause; 3 (due 5800) is the earliest that may go.
    assert_eq!(s.poll(6100), vec![Action::FetchHttp(3)]);
    assert_eq!(s.stats().fallbacks, 3);
}

#[test]
fn refusals_hold_every_fallback_back_longer_each_time_until_one_is_served() {
    let mut s = playing(9);
    assert_eq!(s.poll(1800), vec![Action::FetchHttp(1)]);
    let mut at = 1850;
    for hold in [
        FALLBACK_HOLD_MS,
        2 * FALLBACK_HOLD_MS,
        4 * FALLBACK_HOLD_MS,
        MAX_FALLBACK_HOLD_MS,
        MAX_FALLBACK_HOLD_MS,
    ] {
        s.on_fetch_failed(1, at, FetchFailure::Busy);
        let until = at + hold;
        // Nothing starts before the hold ends, not even a later segment that became due.
        assert!(s
            .poll(until - 1)
            .iter()
            .all(|a| !matches!(a, Action::FetchHttp(_))));
        assert_eq!(s.next_wakeup(until - 1), Some(until));
        assert_eq!(s.poll(until), vec![Action::FetchHttp(1)]);
        at = until;
    }
    assert_eq!(s.stats().fallbacks_refused, 5);
    // This one is served (it plays at once, a stall, and the clock slips by it): the next
    // refusal, segment 2's, holds for the first length again.
    let done = at + 500;
    s.on_complete(1, done);
    assert_eq!(plays(&s.poll(done)), vec![(1, 2300, done - 2300)]);
    assert_eq!(s.poll(done + D - 500), vec![Action::FetchHttp(2)]);
    s.on_fetch_failed(2, done + D, FetchFailure::Busy);
    assert_eq!(s.next_wakeup(done + D), Some(done + D + FALLBACK_HOLD_MS));
}

#[test]
fn the_first_segment_falls_back_after_one_target_duration() {
    let mut s = sched(false, 1, None);
    s.on_manifest(&manifest(0..=2, false));
    s.poll(1000);
    assert!(s.poll(1000 + D - 1).is_empty());
    assert_eq!(s.poll(1000 + D), vec![Action::FetchHttp(2)]);
}

#[test]
fn the_stream_ends_after_its_last_segment() {
    let mut s = sched(true, 3, Some(0));
    s.on_manifest(&manifest(0..=1, false));
    s.poll(0);
    s.on_manifest(&manifest(0..=1, true));
    s.on_complete(0, 10);
    s.on_complete(1, 20);
    assert_eq!(plays(&s.poll(10)), vec![(0, 10, 0)]);
    let last = s.poll(10 + D);
    assert_eq!(plays(&last), vec![(1, 10 + D, 0)]);
    assert!(last.contains(&Action::End));
    assert!(s.ended());
    assert!(s.poll(100_000).is_empty());
    assert_eq!(s.next_wakeup(100_000), None);
}

#[test]
fn a_segment_stalled_long_after_leaving_the_window_is_given_up() {
    let mut s = Scheduler::new(ScheduleConfig {
        from_start: true,
        prefetch: 2,
        delay_ms: Some(0),
        fallback_margin_ms: 500,
        http_fallback: false,
    });
    s.on_manifest(&manifest(0..=1, false));
    s.poll(0);
    s.on_complete(0, 0);
    s.poll(0);
    s.on_manifest(&manifest(5..=6, false)); // 1 is gone and never completed
    assert!(!s.poll(D + 2 * D).contains(&Action::Skip(1)));
    // Its give-up time is a real future wake-up, though its deadline (D) is long past.
    assert_eq!(s.next_wakeup(D + 2 * D), Some(D + 2 * D + 1));
    assert!(s.poll(D + 2 * D + 1).contains(&Action::Skip(1)));
}

/// Before playback starts there is no deadline to give up by: a first segment that never
/// completes would be waited on for ever (this hung a viewer of the capped-publisher demo, with
/// HTTP fallback off). Once it leaves the window it is skipped, and the next one starts playback.
#[test]
fn a_first_segment_that_left_the_window_incomplete_is_skipped_and_the_next_starts() {
    let mut s = Scheduler::new(ScheduleConfig {
        from_start: false,
        prefetch: 3,
        delay_ms: Some(100),
        fallback_margin_ms: 500,
        http_fallback: false,
    });
    s.on_manifest(&manifest(0..=1, false));
    assert_eq!(s.poll(0), vec![Action::Add(1)]);
    s.on_manifest(&manifest(0..=2, false));
    assert_eq!(s.poll(D), vec![Action::Add(2)]);
    // Still in the window: waited on, however long it takes.
    assert!(s.poll(10 * D).is_empty());
    s.on_complete(2, 10 * D);
    assert!(s.poll(10 * D).is_empty(), "2 must wait for 1");
    // The window moves past 1 before it completes.
    s.on_manifest(&manifest(2..=4, false));
    let actions = s.poll(10 * D + 1);
    assert_eq!(actions[0], Action::Skip(1), "{actions:?}");
    assert_eq!(s.stats().skipped, 1);
    assert_eq!(s.stats().delay_ms, Some(100));
    // 2 completed at 10 D and starts playback `delay` later.
    assert_eq!(plays(&s.poll(10 * D + 100)), vec![(2, 10 * D + 100, 0)]);
    // A completed first segment that leaves the window still plays.
    let mut c = sched(false, 1, Some(100));
    c.on_manifest(&manifest(0..=1, false));
    c.poll(0);
    c.on_complete(1, 50);
    c.on_manifest(&manifest(2..=4, false));
    assert_eq!(plays(&c.poll(150)), vec![(1, 150, 0)]);
    assert_eq!(c.stats().skipped, 0);
}

/// Asserts that the wake-up after `poll(now)` is not in the past (nor now).
fn assert_no_past_wakeup(s: &Scheduler, now: u64) {
    let wake = s.next_wakeup(now);
    assert!(
        wake.is_none_or(|w| w > now),
        "next_wakeup({now}) = {wake:?}: a wake-up in the past makes the watch loop spin"
    );
}

#[test]
fn a_stalled_segment_gives_no_wakeup_in_the_past() {
    // Without fallback: segment 1 is due at 2600 and never completes.
    let mut s = Scheduler::new(ScheduleConfig {
        from_start: true,
        prefetch: 3,
        delay_ms: Some(500),
        fallback_margin_ms: 500,
        http_fallback: false,
    });
    s.on_manifest(&manifest(0..=3, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(plays(&s.poll(600)), vec![(0, 600, 0)]);
    assert_eq!(s.next_wakeup(600), Some(600 + D), "its deadline, ahead");
    for now in [600 + D, 600 + D + 1, 5_000, 60_000] {
        assert!(plays(&s.poll(now)).is_empty());
        assert_eq!(
            s.next_wakeup(now),
            None,
            "only its completion can move playback"
        );
    }
    // The completion does, at once.
    s.on_complete(1, 60_000);
    assert_eq!(plays(&s.poll(60_000)), vec![(1, 600 + D, 60_000 - 600 - D)]);
    assert_eq!(s.next_wakeup(60_000), Some(60_000 + D));

    // With fallback: the stalled segment's fallback is under way, and fallbacks run one at a
    // time, so no wake-up is due until it ends; then the next segment's fallback due time,
    // counted from the stalled deadline, is a real wake-up.
    let mut s = sched(true, 3, Some(500));
    s.on_manifest(&manifest(0..=3, false));
    s.poll(0);
    s.on_complete(0, 100);
    s.poll(600);
    assert_eq!(
        s.next_wakeup(600),
        Some(600 + D - 500),
        "segment 1's fallback"
    );
    assert_eq!(s.poll(600 + D - 500), vec![Action::FetchHttp(1)]);
    assert_eq!(s.next_wakeup(600 + D - 500), Some(600 + D), "its deadline");
    assert!(s.poll(600 + D).is_empty());
    assert_no_past_wakeup(&s, 600 + D);
    assert_eq!(
        s.next_wakeup(600 + D),
        None,
        "segment 1's fetch is under way"
    );
    // It ends: the publisher no longer has it. Segment 2's fallback is due a duration after
    // segment 1's passed deadline, ahead.
    s.on_fetch_failed(1, 600 + D + 10, FetchFailure::Gone);
    assert!(s.poll(600 + D + 10).is_empty());
    assert_eq!(s.next_wakeup(600 + D + 10), Some(600 + 2 * D - 500));
    assert_eq!(s.poll(600 + 2 * D - 500), vec![Action::FetchHttp(2)]);
    for now in [600 + 2 * D - 500, 600 + 3 * D, 100_000] {
        s.poll(now);
        assert_eq!(s.next_wakeup(now), None, "segment 2's fetch is under way");
    }
}

#[test]
fn a_segment_not_yet_listed_gives_no_wakeup_in_the_past() {
    let mut s = sched(true, 3, Some(500));
    s.on_manifest(&manifest(0..=0, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(plays(&s.poll(600)), vec![(0, 600, 0)]);
    // Segment 1 is due at 600 + D but not listed yet (the publisher is late).
    assert_eq!(s.next_wakeup(600), Some(600 + D));
    for now in [600 + D, 600 + D + 1, 10_000] {
        assert!(s.poll(now).is_empty());
        assert_eq!(
            s.next_wakeup(now),
            None,
            "only a manifest can move playback"
        );
    }
    // A manifest lists it: it is added, and its fallback (its deadline passed) starts at once.
    s.on_manifest(&manifest(0..=1, false));
    assert_eq!(s.poll(10_000), vec![Action::Add(1), Action::FetchHttp(1)]);
    assert_no_past_wakeup(&s, 10_000);
    s.on_complete(1, 10_200);
    // Published late, it plays the delay after it was added (rebuffering), at 10,500.
    assert!(plays(&s.poll(10_200)).is_empty());
    assert_eq!(s.next_wakeup(10_200), Some(10_500));
    assert_eq!(plays(&s.poll(10_500)), vec![(1, 600 + D, 10_500 - 600 - D)]);
    assert_eq!(s.next_wakeup(10_500), Some(10_500 + D));
}

#[test]
fn future_wakeups_remain() {
    // The next segment's deadline, not yet due.
    let mut s = sched(true, 1, Some(500));
    s.on_manifest(&manifest(0..=1, false));
    s.poll(0);
    s.on_complete(0, 100);
    assert_eq!(s.poll(100), vec![]);
    assert_eq!(
        s.next_wakeup(100),
        Some(600),
        "segment 0 plays 500 ms after it completed"
    );
    // The first segment's fallback, one target duration after it was added.
    let mut s = sched(false, 1, None);
    s.on_manifest(&manifest(0..=2, false));
    s.poll(1000);
    assert_eq!(s.next_wakeup(1000), Some(1000 + D));
    assert_eq!(s.next_wakeup(1000 + D - 1), Some(1000 + D));
    // A later segment's fallback, a margin before its deadline.
    let mut s = sched(true, 2, Some(200));
    s.on_manifest(&manifest(0..=1, false));
    s.poll(0);
    s.on_complete(0, 100);
    s.poll(300);
    assert_eq!(s.next_wakeup(300), Some(300 + D - 500));
}

#[test]
fn a_manifest_that_jumps_far_ahead_is_skipped_in_one_step() {
    let mut s = sched(true, 3, Some(0));
    s.on_manifest(&manifest(0..=1, false));
    assert_eq!(s.poll(0), vec![Action::Add(0), Action::Add(1)]);
    s.on_complete(0, 10);
    s.on_complete(1, 20);
    // A signed manifest whose numbers jump 2^40 ahead (e.g. a publisher restarted with another
    // numbering): one skip for the whole gap, not one per number (which would never end).
    let far = 1u64 << 40;
    s.on_manifest(&manifest(far..=far + 2, false));
    let actions = s.poll(10 + 2 * D);
    assert_eq!(plays(&actions), vec![(0, 10, 0), (1, 10 + D, 0)]);
    assert!(
        actions.contains(&Action::SkipUnlisted {
            first: 2,
            count: far - 2
        }),
        "{actions:?}"
    );
    for n in far..=far + 2 {
        assert!(actions.contains(&Action::Add(n)), "{actions:?}");
    }
    assert_eq!(s.stats().skipped, far - 2);
    // The skipped numbers take no time: the far segment is due when 2 would have been.
    assert_eq!(s.deadline(far), Some(10 + 2 * D));
    assert_eq!(s.deadline(far + 2), Some(10 + 4 * D));
    // Answers at once too (it walks the listed segments, not the numbers).
    let _ = s.next_wakeup(10 + 2 * D);
}

/// A segment published late (the publisher restarted): it plays the playout delay after it was
/// added, not the moment it completes, so the next segments are due the delay after they are
/// listed again and the swarm has its allowance; its fallback waits for the same. Without this,
/// every segment after a restart was due when listed and went to HTTP at once.
#[test]
fn a_segment_published_late_rebuilds_the_playout_buffer() {
    const DELAY: u64 = 1000;
    let mut s = sched(true, 3, Some(DELAY));
    s.on_manifest(&manifest(0..=1, false));
    assert_eq!(s.poll(0), vec![Action::Add(0), Action::Add(1)]);
    s.on_complete(0, 100);
    s.on_complete(1, 200);
    assert_eq!(plays(&s.poll(100 + DELAY)), vec![(0, 1100, 0)]);
    assert_eq!(plays(&s.poll(1100 + D)), vec![(1, 1100 + D, 0)]);
    // Segment 2 was due at 1100 + 2D; the publisher was down, and it is listed 5 s after that.
    let due2 = 1100 + 2 * D;
    let t2 = due2 + 5000;
    s.on_manifest(&manifest(0..=2, false));
    let actions = s.poll(t2);
    assert_eq!(actions, vec![Action::Add(2)], "no fallback at once");
    // Its fallback is due a margin before it plays: the delay after it was added.
    assert_eq!(s.next_wakeup(t2), Some(t2 + DELAY - 500));
    s.on_complete(2, t2 + 100);
    assert!(plays(&s.poll(t2 + 100)).is_empty(), "rebuffering");
    assert_eq!(s.next_wakeup(t2 + 100), Some(t2 + DELAY));
    assert_eq!(
        plays(&s.poll(t2 + DELAY)),
        vec![(2, due2, t2 + DELAY - due2)]
    );
    assert_eq!(
        (s.stats().stalls, s.stats().stall_ms),
        (1, t2 + DELAY - due2)
    );
    // Segment 3, listed one segment later, is due the delay after it is listed: no fallback
    // before a margin ahead of that.
    s.on_manifest(&manifest(0..=3, false));
    assert_eq!(s.poll(t2 + D), vec![Action::Add(3)]);
    assert_eq!(s.deadline(3), Some(t2 + DELAY + D));
    assert_eq!(s.next_wakeup(t2 + D), Some(t2 + D + DELAY - 500));
    // A segment added in time and late only in completing plays when it completes, as before.
    s.on_complete(3, t2 + DELAY + D + 300);
    assert_eq!(
        plays(&s.poll(t2 + DELAY + D + 300)),
        vec![(3, t2 + DELAY + D, 300)]
    );
}
