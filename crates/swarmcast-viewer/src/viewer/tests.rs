//! The viewer's loop ([`drive`]: poller, scheduler, handlers, tasks) against the fakes of
//! [`crate::fakes`] on a paused clock: every time asserted is virtual, every wait ends on an
//! event or a timer the loop set, and no socket is opened.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use swarmcast_metrics::{read_events, Event, Kind, Recorder, Role};
use swarmcast_tasks::Tasks;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fakes::{
    Answer, Call, FakeHttp, FakeSink, FakeSwarm, Plan, Stream, BAD_PEER, D, PIECE, SIZE, UPLOADED,
};
use crate::schedule::ScheduleConfig;
use crate::watch::{drive, Parts, WatchConfig, WatchError, WatchSummary};

mod fallback;

/// A viewer's world: the stream, the fakes, a data directory and a counters file.
struct Harness {
    stream: Stream,
    origin: Instant,
    swarm: Arc<FakeSwarm>,
    http: FakeHttp,
    sink: FakeSink,
    base: tempfile::TempDir,
    config: WatchConfig,
    live: crate::live::Live,
}

impl Harness {
    /// `segments` segments; from the start, a playout delay of `delay_ms`, a fallback margin of
    /// 500 ms when `http_fallback`.
    fn new(segments: u64, delay_ms: u64, http_fallback: bool) -> Self {
        let stream = Stream::new(segments);
        let origin = Instant::now();
        let mut config = WatchConfig::new(stream.link());
        config.schedule = ScheduleConfig {
            from_start: true,
            prefetch: 3,
            delay_ms: Some(delay_ms),
            fallback_margin_ms: 500,
            http_fallback,
        };
        Self {
            swarm: FakeSwarm::new(&stream, origin),
            http: FakeHttp::new(&stream, origin),
            sink: FakeSink::new(origin),
            base: tempfile::tempdir().expect("a temporary directory"),
            stream,
            origin,
            config,
            live: crate::live::Live::default(),
        }
    }

    /// Publishes manifest `seq` listing `numbers` at `at_ms`.
    fn publish(&self, at_ms: u64, seq: u64, numbers: std::ops::RangeInclusive<u64>, end: bool) {
        let doc = self.stream.manifest(seq, numbers, end);
        self.http.publish(at_ms, seq, doc);
    }

    fn metrics(&self) -> PathBuf {
        self.base.path().join("metrics.jsonl")
    }

    /// The viewer on the fakes, stopped by `cancel`, its tasks in `tasks`.
    fn viewer(
        &self,
        cancel: &CancellationToken,
        tasks: Tasks,
    ) -> impl Future<Output = Result<WatchSummary, WatchError>> + '_ {
        let recorder =
            Recorder::new("viewer", Role::Viewer, Some(&self.metrics())).expect("a counters file");
        let parts = Parts {
            config: self.config.clone(),
            origin: self.origin,
            recorder,
            dir: self.base.path().to_owned(),
            swarm: self.swarm.clone(),
            http: self.http.clone(),
            sink: self.sink.clone(),
            tasks,
            live: self.live.clone(),
            carried: None,
        };
        let cancel = cancel.clone();
        async move { drive(parts, &cancel).await }
    }

    /// Runs the viewer until it returns, or cancels it at `cancel_ms`: what it returned, and
    /// when (virtual ms).
    async fn run(&self, cancel_ms: u64) -> (WatchSummary, u64) {
        let cancel = CancellationToken::new();
        let viewer = self.viewer(&cancel, Tasks::with_token("watch", cancel.child_token()));
        tokio::pin!(viewer);
        let result = tokio::select! {
            r = &mut viewer => r,
            () = tokio::time::sleep(Duration::from_millis(cancel_ms)) => {
                cancel.cancel();
                viewer.await
            }
        };
        let summary = result.expect("the fakes never fail the viewer");
        (summary, self.origin.elapsed().as_millis() as u64)
    }

    /// The counters the viewer recorded (complete once it returned).
    fn events(&self) -> Vec<Event> {
        read_events(&self.metrics()).expect("the counters file")
    }

    /// What the sink was given: (ms, segment number, bytes identical to the segment's).
    fn played(&self) -> Vec<(u64, u64, bool)> {
        let writes = self.sink.writes();
        let numbers = (0..).take(writes.len());
        writes
            .iter()
            .zip(numbers)
            .map(|((at, data), n)| (*at, n, data[..] == *self.stream.data(n)))
            .collect()
    }
}

/// The counters about segment `n`, in order.
fn of(events: &[Event], n: u64) -> Vec<&Kind> {
    events
        .iter()
        .filter(|e| e.seg == Some(n))
        .map(|e| &e.kind)
        .collect()
}

/// Four segments, three listed at once and the fourth two seconds later with the end of the
/// stream: the first three are added at once (prefetch 3), the fourth when listed; each plays
/// 500 ms after the first completed plus its place in the stream, back to back, in order, byte
/// for byte; then the loop ends by itself.
#[tokio::test(start_paused = true)]
async fn segments_are_prefetched_and_played_back_to_back_in_order() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=2, false);
    h.publish(D, 2, 0..=3, true);
    let (summary, returned_at) = h.run(60_000).await;
    let downloads: Vec<(u64, Call)> = h
        .swarm
        .calls()
        .into_iter()
        .filter(|(_, c)| matches!(c, Call::Download(_)))
        .collect();
    assert_eq!(
        downloads,
        [
            (0, Call::Download(0)),
            (0, Call::Download(1)),
            (0, Call::Download(2)),
            (D, Call::Download(3)),
        ]
    );
    // Complete at 100 ms, plus the 500 ms delay; then one segment duration apart.
    assert_eq!(
        h.played(),
        [
            (600, 0, true),
            (600 + D, 1, true),
            (600 + 2 * D, 2, true),
            (600 + 3 * D, 3, true)
        ]
    );
    assert_eq!(
        returned_at,
        600 + 3 * D,
        "the end of the stream ends the loop"
    );
    assert_eq!(summary.played, [0, 1, 2, 3]);
    assert_eq!(summary.bytes_out, 4 * SIZE);
    assert_eq!((summary.stalls, summary.fallbacks), (0, 0));
    assert_eq!(summary.startup_ms, Some(600));
    assert_eq!(summary.delay_ms, Some(500));
    assert!(summary.end_of_stream);
    assert_eq!(
        (summary.joined_at, summary.newest_at_join),
        (Some(0), Some(2))
    );
    // Half from the publisher, half from another viewer (the fake swarm's split).
    assert_eq!(
        (summary.from_publisher, summary.from_peers),
        (2 * SIZE, 2 * SIZE)
    );
    assert_eq!(summary.uploaded, 4 * UPLOADED);
    // Every segment forgotten, then the session stopped; the sink closed.
    let calls = h.swarm.calls();
    for n in 0..4 {
        assert!(calls.iter().any(|(_, c)| *c == Call::Forget(n)), "{n}");
    }
    assert_eq!(calls.last(), Some(&(returned_at, Call::Shutdown)));
    assert!(h.sink.closed());
}

/// The live state follows the viewer: verified segments are listed (with the buffer they make)
/// before they play, forgotten ones leave, and at the end its figures are the summary's.
#[tokio::test(start_paused = true)]
async fn the_live_state_lists_verified_segments_and_ends_equal_to_the_summary() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=2, false);
    h.publish(D, 2, 0..=3, true);
    let mut rx = h.live.subscribe();
    let watcher = async {
        // Wait (by change, not by time) until three segments are verified.
        loop {
            let s = rx.borrow_and_update().clone();
            if s.segments.len() == 3 {
                return s;
            }
            rx.changed().await.expect("the viewer keeps its live state");
        }
    };
    let ((summary, _), early) = tokio::join!(h.run(60_000), watcher);
    let numbers: Vec<u64> = early.segments.iter().map(|s| s.number).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert_eq!(early.playing, None);
    assert_eq!(early.buffer_ahead_ms, 3 * D);
    assert!(early.segments[0].path.ends_with("00000000.ts"));
    let end = h.live.snapshot();
    assert_eq!(end.played, summary.played.len() as u64);
    assert_eq!(end.playing, Some(3));
    assert_eq!(end.bytes_out, summary.bytes_out);
    assert_eq!(
        (
            end.from_publisher,
            end.from_peers,
            end.from_http,
            end.uploaded
        ),
        (
            summary.from_publisher,
            summary.from_peers,
            summary.from_http,
            summary.uploaded
        )
    );
    assert_eq!(
        (end.stalls, end.fallbacks),
        (summary.stalls, summary.fallbacks)
    );
    assert_eq!(end.manifest_bytes, summary.manifest_bytes);
    assert_eq!(end.manifests, 2);
    assert!(end.end_of_stream);
    assert_eq!(end.target_duration, Some(D * 90));
    assert!(end.segments.is_empty(), "every segment was forgotten");
    assert_eq!(end.peer_share(), Some(0.5));
}

/// A segment that completes after its deadline is a stall: playback waits for it, plays it on
/// completion, and the segments after it slip by as much.
#[tokio::test(start_paused = true)]
async fn a_late_segment_is_counted_as_a_stall_and_playback_slips() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=3, true);
    h.swarm.plan(
        1,
        Plan::Deliver {
            peer_ms: 20,
            done_ms: 3_000,
        },
    );
    let (summary, _) = h.run(60_000).await;
    // Due at 2,600, complete at 3,000: a 400 ms stall.
    assert_eq!(
        h.played(),
        [
            (600, 0, true),
            (3_000, 1, true),
            (3_000 + D, 2, true),
            (3_000 + 2 * D, 3, true)
        ]
    );
    assert_eq!((summary.stalls, summary.stall_ms), (1, 400));
    let played: Vec<(u64, u64)> = of(&h.events(), 1)
        .into_iter()
        .filter_map(|k| match k {
            Kind::Played {
                deadline_us,
                stall_us,
                ..
            } => Some((*deadline_us, *stall_us)),
            _ => None,
        })
        .collect();
    assert_eq!(played, [(2_600_000, 400_000)]);
}

/// A first segment that never completes and leaves the window is skipped before playback
/// starts: playback starts at the next one, with no gap, and the summary says the skip came
/// before playback (the lab counts such skips apart from gaps).
#[tokio::test(start_paused = true)]
async fn a_skip_before_playback_starts_is_counted_apart() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=2, false);
    h.publish(D, 2, 1..=3, true);
    h.swarm.plan(0, Plan::Never);
    let (summary, _) = h.run(60_000).await;
    assert_eq!(summary.skipped, [0]);
    assert_eq!(summary.skipped_before_playback, 1);
    assert_eq!(summary.played, [1, 2, 3]);
    assert_eq!(summary.stalls, 0);
    assert!(
        summary
            .to_string()
            .contains("skipped 1 (1 before playback started)"),
        "{summary}"
    );
}

/// Ctrl-C while a write to the output cannot finish (a pipe whose reader stopped reading): the
/// viewer stops at once all the same, gives closing the output a bounded time, forgets every
/// segment and stops the swarm.
#[tokio::test(start_paused = true)]
async fn cancel_stops_a_viewer_stuck_writing_to_its_output() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=3, false);
    h.sink.stick_after(1);
    // Virtual time: a viewer that does not stop fails here at once, not at nextest's guard.
    let (summary, returned_at) = tokio::time::timeout(Duration::from_secs(600), h.run(5_000))
        .await
        .expect("the viewer stops when cancelled");
    assert_eq!(summary.played, [0]);
    assert_eq!(
        returned_at,
        5_000 + crate::watch::CLOSE_GRACE.as_millis() as u64,
        "cancelled at 5,000 ms, then the output's close given its grace"
    );
    assert!(!h.sink.closed());
    let calls = h.swarm.calls();
    for n in 0..4 {
        assert!(calls.iter().any(|(_, c)| *c == Call::Forget(n)), "{n}");
    }
    assert_eq!(calls.last(), Some(&(returned_at, Call::Shutdown)));
}

/// Stopped before the end of the stream (`cancel`): the loop ends at once, having played what
/// was due, and records that the stream did not end.
#[tokio::test(start_paused = true)]
async fn cancel_ends_the_loop_before_the_end_of_the_stream() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=3, false);
    let (summary, returned_at) = h.run(5_000).await;
    assert_eq!(returned_at, 5_000);
    assert_eq!(summary.played, [0, 1, 2]);
    assert!(!summary.end_of_stream);
    let ended: Vec<Kind> = h
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, Kind::Ended { .. }))
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        ended,
        [Kind::Ended {
            end_of_stream: false
        }]
    );
}

/// A sink that closes (a player that quit) stops the viewer: nothing more is played.
#[tokio::test(start_paused = true)]
async fn a_closed_output_stops_the_loop() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=3, true);
    h.sink.break_after(2);
    let (summary, returned_at) = h.run(60_000).await;
    assert_eq!(summary.played, [0, 1]);
    assert_eq!(returned_at, 600 + 2 * D, "stopped at the failed write");
    assert!(!summary.end_of_stream);
    assert!(summary.output_closed);
    assert!(
        summary.to_string().contains("the output was closed"),
        "{summary}"
    );
}

/// A sink that cannot be written (a file on a full disk) stops the viewer with the error,
/// typed and naming the segment, after cleaning up as on any end (every segment forgotten, the
/// sink closed).
#[tokio::test(start_paused = true)]
async fn an_output_that_cannot_be_written_stops_the_viewer_with_the_error() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=3, true);
    h.sink.fail_after(1, std::io::ErrorKind::StorageFull);
    let cancel = CancellationToken::new();
    let err = h
        .viewer(&cancel, Tasks::with_token("watch", cancel.child_token()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WatchError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("cannot write segment 1 to the output"),
        "{err}"
    );
    assert!(h.sink.closed());
    let events = h.events();
    let added = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Added))
        .count();
    let forgotten = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Forgotten { .. }))
        .count();
    assert!(
        added >= 2 && forgotten >= added,
        "{added} added, {forgotten} forgotten"
    );
}

/// The counters of each segment, in order, with their figures: learned, added, first peer and
/// first piece (sampled every 5 ms), completed (bytes by source, connections), played, forgotten;
/// and the stream's: two manifests fetched by blocking reload, joined, ended.
#[tokio::test(start_paused = true)]
async fn every_segment_records_its_overhead_counters() {
    let h = Harness::new(4, 500, false);
    h.publish(0, 1, 0..=2, false);
    h.publish(D, 2, 0..=3, true);
    h.run(60_000).await;
    let events = h.events();
    for n in 0..4 {
        // Joining is recorded about the first segment to play.
        let kinds: Vec<&Kind> = of(&events, n)
            .into_iter()
            .filter(|k| !matches!(k, Kind::Joined { .. }))
            .collect();
        let names: Vec<&str> = kinds.iter().map(|k| kind_name(k)).collect();
        assert_eq!(
            names,
            [
                "learned",
                "added",
                "first_peer",
                "first_piece",
                "completed",
                "played",
                "forgotten"
            ],
            "segment {n}"
        );
        let (peer_us, piece_us) = match (kinds[2], kinds[3]) {
            (Kind::FirstPeer { since_added_us: a }, Kind::FirstPiece { since_added_us: b }) => {
                (*a, *b)
            }
            other => panic!("{other:?}"),
        };
        // Planned at 20 ms and 60 ms, seen within one 5 ms sample.
        assert!((20_000..25_000).contains(&peer_us), "{peer_us}");
        assert!((60_000..65_000).contains(&piece_us), "{piece_us}");
        assert_eq!(
            kinds[4],
            &Kind::Completed {
                since_added_us: 100_000,
                via: "swarm".into(),
                from_publisher: SIZE / 2,
                from_peers: SIZE / 2,
                from_http: 0,
                connect_attempts: Some(3),
                connect_errors: Some(1),
                failed_dials: Some(1),
            }
        );
        assert_eq!(
            kinds[5],
            &Kind::Played {
                deadline_us: (600 + n * D) * 1_000,
                stall_us: 0,
                bytes: SIZE,
            }
        );
        // Already reported at completion: nothing more received.
        assert_eq!(
            kinds[6],
            &Kind::Forgotten {
                uploaded_bytes: UPLOADED,
                from_publisher: 0,
                from_peers: 0,
                hash_failures: 0,
                discarded_bytes: 0,
                bad_peers: vec![],
                refused_banned: 0,
            }
        );
    }
    let joined: Vec<(Option<u64>, &Kind)> = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Joined { .. }))
        .map(|e| (e.seg, &e.kind))
        .collect();
    assert_eq!(joined, [(Some(0), &Kind::Joined { newest: 2 })]);
    let stream: Vec<&Kind> = events
        .iter()
        .filter(|e| e.seg.is_none())
        .map(|e| &e.kind)
        .collect();
    let seqs: Vec<(u64, String)> = stream
        .iter()
        .filter_map(|k| match k {
            Kind::ManifestFetched { seq, mode, .. } => Some((*seq, mode.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [(1, "long_poll".into()), (2, "long_poll".into())]);
    assert_eq!(
        stream.last(),
        Some(&&Kind::Ended {
            end_of_stream: true
        })
    );
}

/// A segment counter's name, as in the JSON lines.
fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Learned { .. } => "learned",
        Kind::Added => "added",
        Kind::FirstPeer { .. } => "first_peer",
        Kind::FirstPiece { .. } => "first_piece",
        Kind::Completed { .. } => "completed",
        Kind::Played { .. } => "played",
        Kind::Forgotten { .. } => "forgotten",
        Kind::HttpFallback { .. } => "http_fallback",
        Kind::Skipped { .. } => "skipped",
        _ => "other",
    }
}

/// Runs `scenario` (a viewer to end, and a probe counting the runtime's tasks while it runs) on
/// a dedicated current-thread runtime with a paused clock: the tasks alive during the run, and
/// those alive once it returned.
fn alive_tasks<F, Fut>(scenario: F) -> (usize, usize)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = usize>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let during = runtime.block_on(scenario());
    (during, runtime.metrics().num_alive_tasks())
}

/// The viewer's task group, with a task in it that only the group's shutdown ends (as the
/// playback HTTP server's).
fn tasks(cancel: &CancellationToken) -> Tasks {
    let tasks = Tasks::with_token("watch", cancel.child_token());
    tasks.spawn("until-shutdown", std::future::pending::<()>());
    tasks
}

/// The number of tasks alive on this runtime.
fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// When the viewer returns, none of its tasks is left: after the end of the stream, and after
/// `cancel` in the middle of a stalled segment (its watcher, a hung HTTP fallback and a held
/// manifest request all alive until then).
#[test]
fn no_task_is_left_running_when_the_viewer_returns() {
    let (during, after) = alive_tasks(|| async {
        let h = Harness::new(3, 500, false);
        h.publish(0, 1, 0..=2, true);
        let cancel = CancellationToken::new();
        let viewer = h.viewer(&cancel, tasks(&cancel));
        let probe = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            alive()
        };
        let (result, during) = tokio::join!(viewer, probe);
        assert!(result.expect("no error").end_of_stream);
        during
    });
    // Three segment watchers, the live figures' tick and the group's own task at 50 ms (the
    // poller returned at the end of the stream).
    assert_eq!((during, after), (5, 0));

    let (during, after) = alive_tasks(|| async {
        let h = Harness::new(3, 1_000, true);
        h.publish(0, 1, 0..=2, false);
        h.swarm.plan(1, Plan::Never);
        h.http.answer(1, &[Answer::Hang]);
        let cancel = CancellationToken::new();
        let viewer = h.viewer(&cancel, tasks(&cancel));
        let probe = async {
            tokio::time::sleep(Duration::from_millis(2_700)).await;
            let during = alive();
            cancel.cancel();
            during
        };
        let (result, during) = tokio::join!(viewer, probe);
        assert!(!result.expect("no error").end_of_stream);
        assert_eq!(h.http.dropped(), [(2_700, 1)]);
        during
    });
    // The poller, segment 1's watcher and its fallback, the live figures' tick, and the group's
    // own task.
    assert_eq!((during, after), (5, 0));
}

/// A peer that sent pieces failing their hash check in segments 1 and 2: each segment's
/// `forgotten` record names it with its failures, bytes discarded and refused connections; the
/// other segments' records carry none of them; the summary adds them up and names the peer once.
#[tokio::test(start_paused = true)]
async fn hash_failures_are_recorded_per_segment_and_summed_with_the_bad_peer_named_once() {
    let h = Harness::new(4, 500, false);
    h.swarm.bad_peer(1);
    h.swarm.bad_peer(2);
    h.publish(0, 1, 0..=2, false);
    h.publish(D, 2, 0..=3, true);
    let (summary, _) = h.run(60_000).await;
    let events = h.events();
    for n in 0..4 {
        let forgotten = of(&events, n)
            .into_iter()
            .find(|k| matches!(k, Kind::Forgotten { .. }))
            .cloned();
        let Some(Kind::Forgotten {
            hash_failures,
            discarded_bytes,
            bad_peers,
            refused_banned,
            ..
        }) = forgotten
        else {
            panic!("segment {n} not forgotten");
        };
        let bad = n == 1 || n == 2;
        assert_eq!(
            (hash_failures, discarded_bytes, refused_banned),
            if bad { (1, PIECE, 2) } else { (0, 0, 0) },
            "segment {n}"
        );
        let want: Vec<String> = if bad { vec![BAD_PEER.into()] } else { vec![] };
        assert_eq!(bad_peers, want, "segment {n}");
    }
    assert_eq!(
        (
            summary.hash_failures,
            summary.discarded_bytes,
            summary.refused_banned
        ),
        (2, 2 * PIECE, 4)
    );
    assert_eq!(summary.bad_peers, [BAD_PEER]);
    assert!(
        summary.to_string().contains(&format!(
            "bad pieces: 2 failed their hash check ({} bytes discarded), from {BAD_PEER}; 4 connections from banned addresses refused",
            2 * PIECE
        )),
        "{summary}"
    );
    // Played byte for byte all the same.
    assert!(h.played().iter().all(|p| p.2));
}
