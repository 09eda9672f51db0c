//! The viewer's prefetch and playback scheduler, sans-IO: manifests, completions and the time
//! (ms, any epoch) go in; [`Action`]s come out. The async viewer only carries them out.
//!
//! - **Join**: the first manifest fixes the first segment to play: the newest in its window (the
//!   live edge), or the oldest with `from_start`.
//! - **Prefetch**: every segment from the next to play on is added to the swarm as soon as a
//!   manifest lists it, up to `prefetch` of those the window lists: segments that left the
//!   window, still being finished, do not count, so a viewer playing behind the window still adds
//!   every segment the window lists (the scheduler's `ahead`).
//! - **Playback clock**: the first segment plays `delay` after it completes (startup); each next
//!   segment at the previous one's start plus its duration. The default delay is twice the first
//!   segment's fetch time (added → complete), at least 250 ms and at most 2.5 s, plus the HTTP
//!   fallback margin (see [`Scheduler::auto_delay`]).
//! - **Stall**: a segment not complete at its deadline is a stall: playback waits, and when the
//!   segment completes it plays at once and the clock slips by the stall's length; a segment that
//!   was added less than the playout delay before it completes (published late: a publisher's
//!   restart) plays the delay after it was added instead, which rebuilds the playout buffer.
//! - **Skip**: a segment that left the window without having been added (or that stalls for longer
//!   than twice its duration after leaving the window, or, before playback starts, that left the
//!   window incomplete) is skipped and counted; it takes no time.
//! - **HTTP fallback**: a segment still incomplete `fallback_margin` before its deadline is fetched
//!   over HTTP (for the first segment: once it has been added for one target duration), one
//!   segment at a time, the earliest first. A failed fetch may run again after
//!   [`FALLBACK_RETRY_MS`]; a refused one (the publisher's 503) holds every fallback back, for
//!   [`FALLBACK_HOLD_MS`] doubled at each refusal in a row up to [`MAX_FALLBACK_HOLD_MS`]; a
//!   segment the publisher no longer has is left to the swarm (see [`FetchFailure`]).
//! - **Forget**: played or skipped segments that left the window are dropped from the swarm.

use std::collections::BTreeMap;

use swarmcast_core::Manifest;

/// Default of [`ScheduleConfig::prefetch`]: the publisher's default window (5 segments). A viewer
/// that fell behind adds every segment the window still holds, not only the next few after the
/// one it plays: with 3, viewers behind live asked the publisher for nothing for seconds, then for
/// three segments at once, and its capped uplink idled, then queued (docs/experiments.md, "Where
/// the capped swarm loses its time"). At the live edge it changes nothing: nothing newer is listed.
pub const DEFAULT_PREFETCH: usize = 5;

/// Shortest automatic playout delay.
pub const MIN_AUTO_DELAY_MS: u64 = 250;

/// Most the swarm's allowance in the automatic playout delay may be (the fallback margin comes
/// on top). The allowance covers how much later than the first segment a next one may complete,
/// which is seconds of queueing and a piece tail, not a share of the segment: at the emulated
/// base point with 10 s segments the p99 of completion came 0.8-1.9 s after each viewer's first
/// fetch, and with twice the first fetch every viewer waited a whole segment and played 21.8 s
/// behind live (docs/experiments.md, "Behind live, and NAT"). With viewers joining over two
/// segments (first fetches of 4.3-14 s) there was no stall either. At 2 s segments, 150 ms RTT
/// and capped uplinks, a delay of 2 s (this allowance, cut to one segment) left 1-10 stalls of
/// 400 at 20 viewers, 2.5 s 1-7, and 3 s none (docs/experiments.md, "The playout delay at 2 s
/// segments"): 2.5 s, plus the fallback margin, and no cut at one segment.
pub const MAX_AUTO_ALLOWANCE_MS: u64 = 2_500;

/// How long after a failed HTTP fallback the same segment may be fetched again. Without a pause
/// a failed fetch re-armed at once: the lab once measured 27,706 refused fetches in one 100 s
/// run of 20 viewers.
pub const FALLBACK_RETRY_MS: u64 = 1_000;

/// How long the first refusal (the publisher's 503: its fallback slots are taken while the swarm
/// carries the stream) holds back every HTTP fallback of the viewer; each refusal in a row doubles
/// it, up to [`MAX_FALLBACK_HOLD_MS`]. A fallback that is served resets it. Before the hold each
/// viewer asked again a second after each refusal, for each late segment at once: at 35 capped
/// viewers the publisher answered about 1,370 refusals in one 60 s run, every one of them
/// packets on the uplink the swarm needed (docs/experiments.md, "Fallbacks held back").
pub const FALLBACK_HOLD_MS: u64 = 1_000;

/// Longest hold after refusals in a row.
pub const MAX_FALLBACK_HOLD_MS: u64 = 8_000;

/// Why an HTTP fallback ended without the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchFailure {
    /// The publisher no longer has the segment (404 or 410): only the swarm can deliver it.
    Gone,
    /// The publisher refused (503): its fallback slots are taken. Every fallback waits.
    Busy,
    /// Anything else (a broken connection, a piece that did not verify): this segment waits
    /// [`FALLBACK_RETRY_MS`].
    Failed,
}

/// How to schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Start at the oldest segment of the first window instead of the newest.
    pub from_start: bool,
    /// Segments fetched ahead: from the next to play on, up to this many of those the window lists
    /// (at least 1; the scheduler's `ahead`).
    pub prefetch: usize,
    /// Playout delay; `None` chooses it from the first segment's fetch time.
    pub delay_ms: Option<u64>,
    /// Fetch over HTTP when a segment is still incomplete this long before its deadline.
    pub fallback_margin_ms: u64,
    /// Whether HTTP fallback is on.
    pub http_fallback: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            from_start: false,
            prefetch: DEFAULT_PREFETCH,
            delay_ms: None,
            fallback_margin_ms: 500,
            http_fallback: true,
        }
    }
}

/// Where a segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegState {
    /// Listed by a manifest, not yet added.
    Known,
    /// Added to the swarm, downloading.
    Added,
    /// Being fetched over HTTP (the swarm download goes on too).
    Fetching,
    /// Complete and verified.
    Complete,
    /// Written to the sink.
    Played,
    /// Skipped.
    Skipped,
    /// Dropped from the swarm.
    Forgotten,
}

/// What the viewer must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Add the segment to the swarm (from the manifest's info).
    Add(u64),
    /// Fetch the segment over HTTP, verify it against its info, hand it to the swarm.
    FetchHttp(u64),
    /// Write the segment to the sink now.
    Play {
        /// Segment.
        number: u64,
        /// When it was due (ms).
        deadline_ms: u64,
        /// How long playback waited for it (0: on time).
        stall_ms: u64,
    },
    /// The segment will not be played.
    Skip(u64),
    /// `count` numbers from `first` on will not be played: playback moved past them and no
    /// manifest ever listed them (they left the window unseen, or a manifest jumped ahead). One
    /// action however many, so a manifest that jumps far ahead costs nothing per number.
    SkipUnlisted {
        /// The first number.
        first: u64,
        /// How many.
        count: u64,
    },
    /// Drop the segment from the swarm (it left the window and is played or skipped).
    Forget(u64),
    /// The stream ended and its last segment was played (or skipped).
    End,
}

#[derive(Clone, Debug)]
struct ScheduledSegment {
    duration_ms: u64,
    added_ms: Option<u64>,
    complete_ms: Option<u64>,
    state: SegState,
    in_window: bool,
    /// No HTTP fallback before this time (a failed one's pause).
    retry_at_ms: u64,
    /// The publisher no longer has it: no HTTP fallback again.
    http_gone: bool,
}

/// Counters the scheduler keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleStats {
    /// Segments played.
    pub played: u64,
    /// Segments skipped.
    pub skipped: u64,
    /// Segments that were late.
    pub stalls: u64,
    /// Total time playback waited, ms.
    pub stall_ms: u64,
    /// HTTP fallbacks started.
    pub fallbacks: u64,
    /// HTTP fallbacks the publisher refused (503).
    pub fallbacks_refused: u64,
    /// The playout delay chosen, ms.
    pub delay_ms: Option<u64>,
}

/// The scheduler; see the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    config: ScheduleConfig,
    target_ms: u64,
    segs: BTreeMap<u64, ScheduledSegment>,
    next_play: Option<u64>,
    /// Deadline of `next_play`, once playback has started.
    anchor_ms: Option<u64>,
    eos_last: Option<Option<u64>>,
    ended: bool,
    stats: ScheduleStats,
    /// No HTTP fallback starts before this time (refusals in a row hold them back).
    hold_until_ms: u64,
    /// The hold the next refusal sets.
    next_hold_ms: u64,
}

fn ticks_to_ms(ticks: u64) -> u64 {
    ticks / 90
}

impl Scheduler {
    /// A scheduler that has seen nothing.
    pub fn new(config: ScheduleConfig) -> Self {
        Self {
            config: ScheduleConfig {
                prefetch: config.prefetch.max(1),
                ..config
            },
            target_ms: 0,
            segs: BTreeMap::new(),
            next_play: None,
            anchor_ms: None,
            eos_last: None,
            ended: false,
            stats: ScheduleStats::default(),
            hold_until_ms: 0,
            next_hold_ms: FALLBACK_HOLD_MS,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &ScheduleStats {
        &self.stats
    }

    /// The first segment to play, once joined.
    pub fn joined_at(&self) -> Option<u64> {
        self.segs.keys().next().copied()
    }

    /// The next segment to play.
    pub fn next_play(&self) -> Option<u64> {
        self.next_play
    }

    /// The state of a segment.
    pub fn state(&self, n: u64) -> Option<SegState> {
        self.segs.get(&n).map(|s| s.state)
    }

    /// True once [`Action::End`] has been emitted.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// A verified manifest arrived; returns the segments it taught us (newly learned).
    pub fn on_manifest(&mut self, m: &Manifest) -> Vec<u64> {
        self.target_ms = ticks_to_ms(m.target_duration);
        if self.next_play.is_none() {
            self.next_play = if self.config.from_start {
                m.segments.first().map(|s| s.number)
            } else {
                m.segments.last().map(|s| s.number)
            };
        }
        let mut learned = Vec::new();
        let first_listed = m.segments.first().map(|s| s.number);
        for seg in self.segs.iter_mut() {
            seg.1.in_window = first_listed.is_some_and(|f| *seg.0 >= f);
        }
        if let Some(start) = self.next_play {
            for s in m.segments.iter().filter(|s| s.number >= start) {
                self.segs.entry(s.number).or_insert_with(|| {
                    learned.push(s.number);
                    ScheduledSegment {
                        duration_ms: ticks_to_ms(s.duration),
                        added_ms: None,
                        complete_ms: None,
                        state: SegState::Known,
                        in_window: true,
                        retry_at_ms: 0,
                        http_gone: false,
                    }
                });
            }
        }
        if m.end_of_stream {
            self.eos_last = Some(m.segments.last().map(|s| s.number));
        }
        learned
    }

    /// A segment is complete and verified (from the swarm or over HTTP). A fallback under way
    /// for it was not refused: the hold after refusals starts again from [`FALLBACK_HOLD_MS`].
    pub fn on_complete(&mut self, n: u64, now_ms: u64) {
        if let Some(s) = self.segs.get_mut(&n) {
            if s.state == SegState::Fetching {
                self.next_hold_ms = FALLBACK_HOLD_MS;
            }
            if matches!(
                s.state,
                SegState::Known | SegState::Added | SegState::Fetching
            ) {
                s.state = SegState::Complete;
                s.complete_ms = Some(now_ms);
            }
        }
    }

    /// An HTTP fallback failed at `now_ms`: the segment goes back to waiting for the swarm, and
    /// `why` says when HTTP may be asked again (see [`FetchFailure`]).
    pub fn on_fetch_failed(&mut self, n: u64, now_ms: u64, why: FetchFailure) {
        let Some(s) = self.segs.get_mut(&n) else {
            return;
        };
        if s.state != SegState::Fetching {
            return;
        }
        s.state = SegState::Added;
        match why {
            FetchFailure::Gone => s.http_gone = true,
            FetchFailure::Failed => s.retry_at_ms = now_ms + FALLBACK_RETRY_MS,
            FetchFailure::Busy => {
                self.stats.fallbacks_refused += 1;
                self.hold_until_ms = now_ms + self.next_hold_ms;
                self.next_hold_ms = (2 * self.next_hold_ms).min(MAX_FALLBACK_HOLD_MS);
            }
        }
    }

    /// When segment `n` (added, not being fetched) may start an HTTP fallback, ignoring whether
    /// another one is under way; `None`: never.
    fn fallback_due(&self, n: u64, s: &ScheduledSegment) -> Option<u64> {
        if !self.config.http_fallback || s.state != SegState::Added || s.http_gone {
            return None;
        }
        let due = match self.deadline(n) {
            // A segment added late plays no earlier than the playout delay after it was added
            // (`ready_at`): its fallback waits for that too, so the swarm gets its allowance.
            Some(d) => d
                .max(self.rebuffer_floor(s))
                .saturating_sub(self.config.fallback_margin_ms),
            None => s.added_ms.unwrap_or(0) + self.target_ms.max(MIN_AUTO_DELAY_MS),
        };
        Some(due.max(s.retry_at_ms).max(self.hold_until_ms))
    }

    /// When a complete segment due at `anchor`, complete at `done`, plays: at `anchor` if it was
    /// on time; if late, when it completed, but no earlier than the playout delay after it was
    /// added ([`rebuffer_floor`](Self::rebuffer_floor)). The floor matters only for a segment
    /// added less than the delay before it plays: one published late (a publisher restarted, an
    /// encoder that paused, a manifest source that was down). Without it the clock slips only
    /// to the segment's completion, every later segment is due the moment it is published, and
    /// each goes to HTTP at once: after a publisher's restart a viewer fetched 388 of the next 417
    /// segments over HTTP (docs/reliability.md). With it the viewer rebuffers once, as a player
    /// does, and its swarm has the delay again. A segment added in time (the usual case: the
    /// viewer plays several segments behind the newest) is unaffected.
    fn ready_at(&self, seg: &ScheduledSegment, anchor: u64, done: u64) -> u64 {
        if done <= anchor {
            anchor
        } else {
            done.max(self.rebuffer_floor(seg))
        }
    }

    /// The playout delay after `s` was added (0 before playback has a delay).
    fn rebuffer_floor(&self, s: &ScheduledSegment) -> u64 {
        s.added_ms
            .map_or(0, |a| a.saturating_add(self.stats.delay_ms.unwrap_or(0)))
    }

    /// True while an HTTP fallback is under way.
    fn fetching(&self) -> bool {
        self.segs.values().any(|s| s.state == SegState::Fetching)
    }

    /// Deadline of segment `n`, if playback has started and `n` is not behind it.
    pub fn deadline(&self, n: u64) -> Option<u64> {
        let (anchor, next) = (self.anchor_ms?, self.next_play?);
        if n < next {
            return None;
        }
        // Unlisted numbers count one target duration each: O(listed), not O(n - next), so a
        // manifest that jumps far ahead costs nothing per number.
        let listed = self.segs.range(next..n);
        let (count, sum) = listed.fold((0u64, 0u64), |(c, t), (_, s)| {
            (c + 1, t.saturating_add(s.duration_ms))
        });
        let unlisted = (n - next - count).saturating_mul(self.target_ms);
        Some(anchor.saturating_add(sum).saturating_add(unlisted))
    }

    /// Decides what to do at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(next) = self.next_play else {
            return actions;
        };
        if self.ended {
            return actions;
        }
        let next = self.play(next, now_ms, &mut actions);
        self.next_play = Some(next);
        if self.ended {
            return actions;
        }
        self.prefetch(next, now_ms, &mut actions);
        self.start_fallback(next, now_ms, &mut actions);
        self.forget_behind(next, &mut actions);
        actions
    }

    /// Playback from segment `next`: plays what is due, counts stalls, skips what will not
    /// come, ends at the end of the stream. The segment to play next.
    fn play(&mut self, mut next: u64, now_ms: u64, actions: &mut Vec<Action>) -> u64 {
        loop {
            if let Some(last) = self.eos_last {
                if last.is_none_or(|l| next > l) {
                    self.ended = true;
                    actions.push(Action::End);
                    break;
                }
            }
            let Some(seg) = self.segs.get(&next).cloned() else {
                // Not listed yet; or it left the window before we ever learned of it: skip to
                // the next listed number at once.
                if let Some((&listed, _)) = self.segs.range(next + 1..).next() {
                    let count = listed - next;
                    self.stats.skipped += count;
                    actions.push(Action::SkipUnlisted { first: next, count });
                    next = listed;
                    continue;
                }
                break;
            };
            let gone = !seg.in_window && matches!(seg.state, SegState::Known);
            if gone {
                self.skip(next, actions);
                next += 1;
                continue;
            }
            let Some(anchor) = self.anchor_ms else {
                // Startup: the first segment plays `delay` after it completes.
                if !seg.in_window && seg.state != SegState::Complete {
                    // It left the window before it completed: the publisher has dropped it and
                    // peers are dropping it, so it may never come. Playback has not started, so
                    // waiting for it has no deadline to end it: start with the next one instead.
                    self.skip(next, actions);
                    next += 1;
                    continue;
                }
                if let (SegState::Complete, Some(done)) = (seg.state, seg.complete_ms) {
                    let fetch = done.saturating_sub(seg.added_ms.unwrap_or(done));
                    let delay = self
                        .config
                        .delay_ms
                        .unwrap_or_else(|| self.auto_delay(fetch));
                    self.stats.delay_ms = Some(delay);
                    self.anchor_ms = Some(done + delay);
                    continue;
                }
                break;
            };
            if now_ms < anchor {
                break;
            }
            match seg.state {
                SegState::Complete => {
                    let done = seg.complete_ms.unwrap_or(now_ms);
                    let ready = self.ready_at(&seg, anchor, done);
                    if now_ms < ready {
                        // Late and rebuffering: it plays at `ready`.
                        break;
                    }
                    let stall_ms = ready.saturating_sub(anchor);
                    if stall_ms > 0 {
                        self.stats.stalls += 1;
                        self.stats.stall_ms += stall_ms;
                    }
                    self.stats.played += 1;
                    let start = anchor.max(ready);
                    actions.push(Action::Play {
                        number: next,
                        deadline_ms: anchor,
                        stall_ms,
                    });
                    if let Some(s) = self.segs.get_mut(&next) {
                        s.state = SegState::Played;
                    }
                    self.anchor_ms = Some(start + seg.duration_ms);
                    next += 1;
                }
                _ if !seg.in_window
                    && now_ms.saturating_sub(anchor) > (2 * seg.duration_ms).max(2000) =>
                {
                    // Stalled long after leaving the window: give up on it.
                    self.skip(next, actions);
                    next += 1;
                }
                _ => break,
            }
        }
        next
    }

    /// Adds the segments ahead of playback at `next` that are listed and not yet added.
    fn prefetch(&mut self, next: u64, now_ms: u64, actions: &mut Vec<Action>) {
        for n in self.ahead(next) {
            if let Some(s) = self.segs.get_mut(&n) {
                if s.state == SegState::Known && s.in_window {
                    s.state = SegState::Added;
                    s.added_ms = Some(now_ms);
                    actions.push(Action::Add(n));
                }
            }
        }
    }

    /// Starts an HTTP fallback if one is due.
    fn start_fallback(&mut self, next: u64, now_ms: u64, actions: &mut Vec<Action>) {
        // HTTP fallback: one at a time (the publisher serves few at once, and a viewer's second
        // fetch only competes with its first), the earliest deadline first.
        if self.config.http_fallback && !self.fetching() {
            let due = self.ahead(next).into_iter().find(|n| {
                self.segs
                    .get(n)
                    .and_then(|s| self.fallback_due(*n, s))
                    .is_some_and(|due| now_ms >= due)
            });
            if let Some(n) = due {
                self.stats.fallbacks += 1;
                if let Some(s) = self.segs.get_mut(&n) {
                    s.state = SegState::Fetching;
                }
                actions.push(Action::FetchHttp(n));
            }
        }
    }

    /// Forgets what is behind playback at `next` and out of the window.
    fn forget_behind(&mut self, next: u64, actions: &mut Vec<Action>) {
        for (n, s) in self.segs.iter_mut() {
            if *n < next && !s.in_window && matches!(s.state, SegState::Played | SegState::Skipped)
            {
                s.state = SegState::Forgotten;
                actions.push(Action::Forget(*n));
            }
        }
    }

    /// The segments fetched ahead of playback at `next`: from `next` on, up to the
    /// `prefetch`-th segment the window lists (or `prefetch` numbers on, if the window lists
    /// fewer). Segments that left the window do not count: a viewer playing behind the window
    /// (its next segment left it, and is being finished) still reaches every segment the window
    /// lists. Counting numbers instead, a viewer 5.5 segments behind live with a window of 5
    /// added each new segment only when playback moved on, 1.3 s after it was listed, and
    /// completed it later still, which kept it behind (docs/experiments.md, "Hole punching
    /// between viewers behind NAT").
    ///
    /// Only the listed numbers of that range are returned (nothing else can be fetched), so a
    /// window far ahead of `next` costs nothing per number in between.
    fn ahead(&self, next: u64) -> Vec<u64> {
        let prefetch = self.config.prefetch;
        let least = next.saturating_add(prefetch as u64);
        let end = self
            .segs
            .range(next..)
            .filter(|(_, s)| s.in_window)
            .nth(prefetch - 1)
            .map_or(least, |(n, _)| n.saturating_add(1).max(least));
        self.segs.range(next..end).map(|(n, _)| *n).collect()
    }

    /// The automatic playout delay for a first segment fetched in `fetch_ms`: the swarm's
    /// allowance, twice that fetch time but at least 250 ms and at most
    /// [`MAX_AUTO_ALLOWANCE_MS`], plus the HTTP fallback margin when fallback is on. (It is not
    /// cut to one segment: how much later than the first a next segment may complete does not
    /// shrink with the segment.) A segment is learned about when it is
    /// published, so at the live edge the time between learning a segment and its deadline is
    /// about this delay plus the first fetch: the swarm must get its allowance before the fallback
    /// margin starts. (The floor matters: a first segment fetched in 8 ms left the swarm 24 ms,
    /// less than librqbit's ~40 ms stall on each new connection, and most segments went to HTTP.)
    pub fn auto_delay(&self, fetch_ms: u64) -> u64 {
        let margin = if self.config.http_fallback {
            self.config.fallback_margin_ms
        } else {
            0
        };
        (2 * fetch_ms).clamp(MIN_AUTO_DELAY_MS, MAX_AUTO_ALLOWANCE_MS) + margin
    }

    fn skip(&mut self, n: u64, actions: &mut Vec<Action>) {
        self.stats.skipped += 1;
        if let Some(s) = self.segs.get_mut(&n) {
            s.state = SegState::Skipped;
        }
        actions.push(Action::Skip(n));
    }

    /// When `poll` should next be called if nothing else happens (ms), if ever; `now_ms` is the
    /// time of the last [`poll`](Self::poll).
    ///
    /// Always later than `now_ms`: the last `poll` acted on everything due by then, so a deadline
    /// already passed (a stalled segment, one not yet listed, a fallback already started) is
    /// waited out on an event (a completion, a manifest, a failed fetch), not on the clock. What
    /// remains are real future times: the next segment's deadline, HTTP fallback due times, and
    /// the give-up time of a segment stalled after leaving the window.
    pub fn next_wakeup(&self, now_ms: u64) -> Option<u64> {
        if self.ended {
            return None;
        }
        let next = self.next_play?;
        let mut wake: Option<u64> = None;
        let mut consider = |at: u64| {
            if at > now_ms {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        };
        if let Some(anchor) = self.anchor_ms {
            consider(anchor);
            // A late segment that is rebuffering plays at its ready time.
            if let Some(s) = self
                .segs
                .get(&next)
                .filter(|s| s.state == SegState::Complete)
            {
                consider(self.ready_at(s, anchor, s.complete_ms.unwrap_or(anchor)));
            }
        }
        // A fallback under way ends on an event; otherwise the next one's due time.
        if self.config.http_fallback && !self.fetching() {
            for n in self.ahead(next) {
                if let Some(due) = self.segs.get(&n).and_then(|s| self.fallback_due(n, s)) {
                    consider(due);
                }
            }
        }
        if let (Some(anchor), Some(s)) = (self.anchor_ms, self.segs.get(&next)) {
            if !s.in_window {
                consider(anchor + (2 * s.duration_ms).max(2000) + 1);
            }
        }
        wake
    }
}

#[cfg(test)]
pub(crate) mod tests;
