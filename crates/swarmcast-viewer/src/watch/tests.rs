//! The watch loop ([`run`]) on a paused clock, with a real [`Scheduler`] and fake events: it
//! must wake for events and real deadlines only. With a paused clock a wake-up in the past
//! completes at once and a closed channel answers at once, so a loop that spins does so without
//! the clock moving: it is stopped at [`CAP`] iterations and the test fails rather than hangs.

use std::time::Duration;

use swarmcast_core::Manifest;
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::datadir::{remove_leftovers, LOCK_FILE};
use super::{run, Host, WatchError};
use crate::schedule::tests::{manifest, D};
use crate::schedule::{Action, ScheduleConfig, Scheduler};

/// Iterations after which a spinning loop is stopped.
const CAP: u64 = 10_000;
/// A bound on the iterations of a loop that wakes only for events and real deadlines, in every
/// test here (each has fewer than ten of them).
const FEW: u64 = 20;
/// Longer than any test: how long a channel that stays open is kept open, ms.
const HOUR: u64 = 3_600_000;

/// The viewer's part, faked: manifests and completions go to the scheduler; actions are only
/// recorded, with their (virtual) time.
struct Fake {
    scheduler: Scheduler,
    origin: Instant,
    iterations: u64,
    done: Vec<(u64, Action)>,
}

impl Fake {
    fn new(config: ScheduleConfig) -> Self {
        Self {
            scheduler: Scheduler::new(config),
            origin: Instant::now(),
            iterations: 0,
            done: Vec::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The segments played: (number, virtual time).
    fn played(&self) -> Vec<(u64, u64)> {
        self.done
            .iter()
            .filter_map(|(at, a)| match a {
                Action::Play { number, .. } => Some((*number, *at)),
                _ => None,
            })
            .collect()
    }
}

impl Host for Fake {
    type Poll = Manifest;
    /// A segment completed.
    type Event = u64;

    fn scheduler(&mut self) -> &mut Scheduler {
        &mut self.scheduler
    }

    fn handle_poll(&mut self, m: Manifest) -> Result<(), WatchError> {
        self.scheduler.on_manifest(&m);
        Ok(())
    }

    fn poll_stopped(&mut self) {}

    async fn handle_event(&mut self, n: u64) {
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
    }

    async fn carry_out(&mut self, actions: Vec<Action>) -> Result<bool, WatchError> {
        self.iterations += 1;
        let now = self.now_ms();
        let end = actions.contains(&Action::End);
        self.done.extend(actions.into_iter().map(|a| (now, a)));
        Ok(end || self.iterations >= CAP)
    }
}

fn config(http_fallback: bool) -> ScheduleConfig {
    ScheduleConfig {
        from_start: true,
        prefetch: 3,
        delay_ms: Some(500),
        fallback_margin_ms: 500,
        http_fallback,
    }
}

/// Sends `items` on `tx` in a task of `tasks`, each at its virtual time (ms after now); keeps
/// `tx` open until `hold_ms` if given, else drops it after the last.
fn send_at<T: Send + 'static>(
    tasks: &Tasks,
    tx: mpsc::Sender<T>,
    items: Vec<(u64, T)>,
    hold_ms: Option<u64>,
) {
    let start = Instant::now();
    tasks.spawn("send-at", async move {
        for (at, item) in items {
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            let _ = tx.send(item).await;
        }
        if let Some(hold) = hold_ms {
            tokio::time::sleep_until(start + Duration::from_millis(hold)).await;
        }
    });
}

/// Runs the loop until playback ends, `CAP`, or `cancel_ms` of virtual time.
async fn run_for(
    fake: &mut Fake,
    manifests: Vec<(u64, Manifest)>,
    manifests_open_ms: Option<u64>,
    completions: Vec<(u64, u64)>,
    cancel_ms: u64,
) {
    let (poll_tx, poll_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let tasks = Tasks::new("test");
    send_at(&tasks, poll_tx, manifests, manifests_open_ms);
    // The viewer keeps its event sender: that channel never closes.
    send_at(&tasks, ev_tx, completions, Some(HOUR));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tasks.spawn("cancel", async move {
        tokio::time::sleep(Duration::from_millis(cancel_ms)).await;
        stop.cancel();
    });
    let origin = fake.origin;
    let result = run(fake, origin, poll_rx, ev_rx, &cancel).await;
    tasks.shutdown().await;
    result.expect("the fake never fails");
}

/// The first busy loop: after the end-of-stream manifest the poller returns and its
/// channel closes, while the last segments are still to play.
#[tokio::test(start_paused = true)]
async fn the_loop_does_not_spin_on_the_closed_poller_channel() {
    let mut fake = Fake::new(config(false));
    run_for(
        &mut fake,
        vec![(0, manifest(0..=3, true))],
        None,
        vec![(100, 0), (200, 1), (300, 2), (400, 3)],
        10_000,
    )
    .await;
    assert!(
        fake.iterations < FEW,
        "{} iterations for 1 manifest, 4 completions and 4 deadlines",
        fake.iterations
    );
    // Every segment played at its deadline (600 = completion + delay), then the end.
    assert_eq!(
        fake.played(),
        vec![(0, 600), (1, 600 + D), (2, 600 + 2 * D), (3, 600 + 3 * D)]
    );
    assert_eq!(fake.done.last(), Some(&(600 + 3 * D, Action::End)));
}

/// The second busy loop: a segment late past its deadline (the publisher degraded; its
/// HTTP fallback never answers), while the poller is still open.
#[tokio::test(start_paused = true)]
async fn the_loop_does_not_spin_while_a_segment_is_late() {
    let mut fake = Fake::new(config(true));
    run_for(
        &mut fake,
        vec![(0, manifest(0..=3, false))],
        Some(HOUR),
        vec![(100, 0)],
        10_000,
    )
    .await;
    assert!(
        fake.iterations < FEW,
        "{} iterations for 1 manifest, 1 completion, 1 deadline and 1 fallback",
        fake.iterations
    );
    assert_eq!(fake.played(), vec![(0, 600)]);
    // The fallback started at its due time, a margin before the deadline; it never ends, and
    // fallbacks run one at a time, so no other started.
    let fetches: Vec<_> = fake
        .done
        .iter()
        .filter(|(_, a)| matches!(a, Action::FetchHttp(_)))
        .cloned()
        .collect();
    assert_eq!(fetches, vec![(600 + D - 500, Action::FetchHttp(1))]);
}

/// A segment not yet listed at its deadline (the publisher froze), then listed: the loop sleeps
/// until the manifest, and plays it as soon as it completes.
#[tokio::test(start_paused = true)]
async fn the_loop_does_not_spin_while_a_segment_is_not_listed() {
    let mut fake = Fake::new(config(false));
    run_for(
        &mut fake,
        vec![(0, manifest(0..=0, false)), (8_000, manifest(0..=1, false))],
        Some(HOUR),
        vec![(100, 0), (8_300, 1)],
        10_000,
    )
    .await;
    assert!(
        fake.iterations < FEW,
        "{} iterations for 2 manifests, 2 completions and 2 deadlines",
        fake.iterations
    );
    // Listed at 8,000 (published late): it plays the delay after (500 ms), not on completion.
    assert_eq!(fake.played(), vec![(0, 600), (1, 8_500)]);
}

/// Both at once, as after the end of a stream whose last segment is late.
#[tokio::test(start_paused = true)]
async fn the_loop_does_not_spin_on_a_late_last_segment() {
    let mut fake = Fake::new(config(false));
    run_for(
        &mut fake,
        vec![(0, manifest(0..=1, true))],
        None,
        vec![(100, 0), (7_000, 1)],
        10_000,
    )
    .await;
    assert!(
        fake.iterations < FEW,
        "{} iterations for 1 manifest, 2 completions and 1 deadline",
        fake.iterations
    );
    assert_eq!(fake.played(), vec![(0, 600), (1, 7_000)]);
    assert_eq!(fake.done.last(), Some(&(7_000, Action::End)));
}

#[test]
fn data_directories_of_killed_viewers_are_removed_and_live_ones_kept() {
    use std::time::SystemTime;
    let base = tempfile::tempdir().unwrap();
    let make = |name: &str, lock: bool| {
        let d = base.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("00000001.ts"), b"segment").unwrap();
        lock.then(|| std::fs::File::create(d.join(LOCK_FILE)).unwrap())
    };
    // A killed viewer's: its lock file is held by nobody.
    drop(make("swarmcast-viewer-killed", true));
    // One from before lock files: none.
    make("swarmcast-viewer-old", false);
    // A live viewer's: it holds its lock.
    let live = make("swarmcast-viewer-live", true).unwrap();
    live.try_lock().unwrap();
    // Something else.
    make("other-program", false);
    // An hour later, all are old enough.
    let later = SystemTime::now() + Duration::from_secs(3600);
    // Too young: nothing is touched (a viewer may be between creating its directory and
    // locking its file).
    assert_eq!(remove_leftovers(base.path(), SystemTime::now()), 0);
    assert_eq!(remove_leftovers(base.path(), later), 2);
    let mut left: Vec<String> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["other-program", "swarmcast-viewer-live"]);
    // Once its viewer is gone, the live one is a leftover too.
    drop(live);
    assert_eq!(remove_leftovers(base.path(), later), 1);
}

/// An earlier recording in the output file is refused before anything starts, unless
/// `overwrite`; an empty file is no recording.
#[tokio::test]
async fn an_earlier_recording_is_not_truncated_unasked() {
    use crate::{watch, SinkConfig, WatchConfig};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recording.ts");
    std::fs::write(&out, b"an earlier recording").unwrap();
    let key = swarmcast_core::StreamSecret::from_seed(&[7; 32]).public();
    // A source nobody listens on: the check must come first, so it is never asked.
    let link =
        swarmcast_core::StreamLink::new(key, vec!["http://127.0.0.1:9/".parse().unwrap()]).unwrap();
    let mut config = WatchConfig::new(link);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.sink = SinkConfig::File {
        path: out.clone(),
        overwrite: false,
    };
    let err = watch(config, CancellationToken::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WatchError::OutputExists { path, bytes: 20 } if *path == out),
        "{err}"
    );
    assert!(err.to_string().contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"an earlier recording");
}
