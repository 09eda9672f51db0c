//! The segmenter's async sources on a real filesystem: ordering asserted by events, and every
//! wait bounded by a generous hang guard (never a pass criterion).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use swarmcast_segmenter::source::{self, CutSegment, Format, Input, SegmentConfig};
use swarmcast_segmenter::synth::Synth;
use swarmcast_segmenter::CutterConfig;
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const HANG_GUARD: Duration = Duration::from_secs(30);

fn config(out: &Path, target_secs: u64) -> SegmentConfig {
    SegmentConfig::new(
        out.to_owned(),
        CutterConfig {
            target: target_secs * 90_000,
            first_number: 0,
            first_discontinuity: false,
        },
        Format::Auto,
    )
}

/// `seconds` of the synthetic feed (a keyframe every second).
fn synth_bytes(seconds: u64, start_pts: u64) -> Vec<u8> {
    Synth::new(Some(300_000), start_pts)
        .unwrap()
        .take(seconds * 90_000)
}

async fn next(rx: &mut mpsc::Receiver<CutSegment>) -> CutSegment {
    tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .expect("hang guard")
        .expect("channel closed")
}

#[tokio::test]
async fn watch_dir_never_publishes_a_half_file_after_a_later_one() {
    let encoder = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    // The watch is in place when start() returns: no race with the encoder below.
    let watch = source::DirWatch::start(encoder.path()).unwrap();
    let task = Tasks::new("test").spawn(
        "watch",
        watch.run(config(out.path(), 2), tx, cancel.clone()),
    );

    // The encoder opens seg000 and writes half of it, then writes and closes seg001.
    let seg0 = synth_bytes(2, 0);
    let seg1 = synth_bytes(2, 2 * 90_000);
    let seg2 = synth_bytes(2, 4 * 90_000);
    let mut half = std::fs::File::create(encoder.path().join("seg000.ts")).unwrap();
    half.write_all(&seg0[..seg0.len() / 2]).unwrap();
    half.flush().unwrap();
    std::fs::write(encoder.path().join("seg001.ts"), &seg1).unwrap();

    let first = next(&mut rx).await;
    assert_eq!(first.meta.number, 0);
    assert_eq!(
        std::fs::read(&first.path).unwrap(),
        seg1,
        "segment 0 is the finished later file"
    );

    // Now seg000 finishes: it must never become a segment. seg002 finishing next proves the
    // watcher moved on: events are handled in order, so seg000 would have come first.
    half.write_all(&seg0[seg0.len() / 2..]).unwrap();
    drop(half);
    std::fs::write(encoder.path().join("seg002.ts"), &seg2).unwrap();
    let second = next(&mut rx).await;
    assert_eq!(second.meta.number, 1);
    assert_eq!(std::fs::read(&second.path).unwrap(), seg2);
    assert_eq!(second.meta.media_start, 4 * 90_000);
    assert_eq!(second.meta.duration, 2 * 90_000);

    cancel.cancel();
    let summary = tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .expect("not cancelled")
        .unwrap();
    assert_eq!(summary.segments, 2);
    assert_eq!(summary.files_out_of_order, 1);
}

#[tokio::test]
async fn a_followed_file_is_cut_as_it_grows_and_closed_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("live.ts");
    let feed = synth_bytes(6, 0);
    let third = feed.len() / 3;
    std::fs::write(&input, &feed[..third]).unwrap();

    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let out = dir.path().join("out");
    let task = Tasks::new("test").spawn(
        "segment",
        source::segment_stream(
            Input::File {
                path: input.clone(),
                follow: Some(Duration::from_secs(600)),
            },
            config(&out, 1),
            tx,
            cancel.clone(),
        ),
    );
    // The first second is cut once the keyframe at 1 s has been read.
    assert_eq!(next(&mut rx).await.meta.number, 0);
    // The encoder appends the rest; segments keep coming.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(&feed[third..])
        .unwrap();
    for n in 1..5 {
        assert_eq!(next(&mut rx).await.meta.number, n);
    }
    // The encoder stops; the flag ends the run and the last segment is closed.
    cancel.cancel();
    assert_eq!(next(&mut rx).await.meta.number, 5);
    let summary = tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .expect("not cancelled")
        .unwrap();
    assert_eq!(summary.segments, 6);
    assert_eq!(summary.bytes_in, feed.len() as u64);
    let joined: Vec<u8> = (0..6)
        .flat_map(|n| std::fs::read(out.join(format!("{n:08}.ts"))).unwrap())
        .collect();
    assert_eq!(joined, feed);
    assert!(std::fs::read_dir(&out).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
}

#[tokio::test]
async fn a_followed_file_ends_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("done.ts");
    std::fs::write(&input, synth_bytes(2, 0)).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let run = source::segment_stream(
        Input::File {
            path: input,
            follow: Some(Duration::from_millis(300)),
        },
        config(&dir.path().join("out"), 1),
        tx,
        CancellationToken::new(),
    );
    let summary = tokio::time::timeout(HANG_GUARD, run)
        .await
        .expect("hang guard")
        .unwrap();
    assert_eq!(summary.segments, 2);
    assert_eq!(next(&mut rx).await.meta.number, 0);
}

#[tokio::test]
async fn a_missing_input_and_an_unwritable_output_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(16);
    let err = source::segment_stream(
        Input::File {
            path: dir.path().join("nope.ts"),
            follow: None,
        },
        config(dir.path(), 1),
        tx.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nope.ts"), "{err}");

    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = source::segment_stream(
        Input::Reader(Box::new(&b"data"[..])),
        config(&blocker.join("sub"), 1),
        tx,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("file/sub"), "{err}");
}

/// A segmenter's task: its summary, unless cancelled.
type Segmenting = tokio::task::JoinHandle<Option<Result<source::RunSummary, source::SourceError>>>;

/// A running `segment_stream` reading from a pipe of `pipe` bytes: the pipe's writing end, the
/// segments it hands on (one at a time: the channel holds one), and its task.
fn feed(
    config: SegmentConfig,
    pipe: usize,
) -> (
    tokio::io::DuplexStream,
    mpsc::Receiver<CutSegment>,
    Segmenting,
) {
    let (tx, rx) = mpsc::channel(1);
    let (writer, reader) = tokio::io::duplex(pipe);
    let task = Tasks::new("test").spawn(
        "segment",
        source::segment_stream(
            Input::Reader(Box::new(reader)),
            config,
            tx,
            CancellationToken::new(),
        ),
    );
    (writer, rx, task)
}

/// Every segment still to come, until the segmenter closes the channel.
async fn drain(rx: &mut mpsc::Receiver<CutSegment>) -> Vec<CutSegment> {
    let mut got = Vec::new();
    while let Some(s) = tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .expect("hang guard")
    {
        got.push(s);
    }
    got
}

/// The segmenter's summary once its task ends.
async fn ended(task: Segmenting) -> source::RunSummary {
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .expect("hang guard")
        .unwrap()
        .expect("not cancelled")
        .unwrap()
}

async fn wait(rx: &mut mpsc::Receiver<()>, what: &str) {
    tokio::time::timeout(HANG_GUARD, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("hang guard: {what}"));
}

/// The segment writer losing its directory (as it would lose files to a full disk or a
/// file-descriptor limit): the input keeps being read, the lost segments are counted, and the
/// next segment written after the directory is back is a discontinuity.
#[tokio::test]
async fn the_segment_writer_drops_input_while_it_cannot_write_and_recovers() {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let base = tempfile::tempdir().unwrap();
    let out = base.path().join("out");
    let config = config(&out, 1);
    let health = config.health.clone();
    let (mut writer, mut rx, task) = feed(config, 64 * 1024);
    let seconds = synth_bytes(12, 0);
    let second = seconds.len() / 12;
    // The encoder: three seconds, then (when told) four more, then (when told) the rest.
    let (go_tx, mut go) = mpsc::channel::<()>(1);
    let (written_tx, mut written) = mpsc::channel::<()>(1);
    let encoder = Tasks::new("test").spawn("encoder", async move {
        for part in [
            &seconds[..3 * second],
            &seconds[3 * second..7 * second],
            &seconds[7 * second..],
        ] {
            writer.write_all(part).await.unwrap();
            written_tx.send(()).await.unwrap();
            if go.recv().await.is_none() {
                break;
            }
        }
        seconds.len() as u64
    });
    // Segments 0 and 1 are complete (2 waits for its end).
    assert_eq!(next(&mut rx).await.meta.number, 0);
    let one = next(&mut rx).await;
    assert_eq!(one.meta.number, 1);
    wait(&mut written, "the first seconds").await;
    // The directory goes; four more seconds arrive and are read (the writer never blocks). It
    // goes at once, by a rename: a removal raced the writer, which may be creating segment 2's
    // file while the directory is emptied ("Directory not empty", half the runs).
    std::fs::rename(&out, base.path().join("gone")).unwrap();
    go_tx.send(()).await.unwrap();
    wait(&mut written, "the input was not read during the outage").await;
    let start = std::time::Instant::now();
    while health.failing().is_none() {
        assert!(start.elapsed() < HANG_GUARD, "hang guard: no outage");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(health
        .failing()
        .unwrap()
        .contains("cannot write segment file"));
    // The directory is back: the next segment is written, marked a discontinuity.
    std::fs::create_dir_all(&out).unwrap();
    go_tx.send(()).await.unwrap();
    let after = next(&mut rx).await;
    assert!(after.meta.number > 2, "{:?}", after.meta);
    assert!(after.meta.discontinuity, "{:?}", after.meta);
    assert!(after.path.exists());
    drop(go_tx);
    drain(&mut rx).await;
    drop(written);
    let total = encoder.await.unwrap().expect("not cancelled");
    let summary = ended(task).await;
    let lost = health.dropped_segments.load(Ordering::Relaxed);
    assert!(lost >= 1, "{lost}");
    assert!(health.dropped_bytes.load(Ordering::Relaxed) > 0);
    assert_eq!(health.outages.load(Ordering::Relaxed), 1);
    assert!(health.failing().is_none());
    // Every byte was read.
    assert_eq!(summary.bytes_in, total);
}

/// A live input whose receiver does not take segments is never stalled: segments with no room
/// are dropped, their files removed, and counted.
#[tokio::test]
async fn a_live_input_is_never_held_back_by_a_busy_receiver() {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let out = tempfile::tempdir().unwrap();
    let mut config = config(out.path(), 1);
    config.drop_when_busy = true;
    let health = config.health.clone();
    let (mut writer, mut rx, task) = feed(config, 64 * 1024);
    let seconds = synth_bytes(8, 0);
    // Nobody receives while eight seconds are written: the channel holds one segment.
    tokio::time::timeout(HANG_GUARD, writer.write_all(&seconds))
        .await
        .expect("hang guard: the input was held back")
        .unwrap();
    drop(writer);
    // Now take everything: segment 0 (it was in the channel), then what came once there was
    // room, the first of it a discontinuity; the input over, the last segment waited for room
    // rather than being dropped.
    let got: Vec<_> = drain(&mut rx).await;
    assert!(got.iter().all(|s| s.path.exists()));
    let got: Vec<_> = got.into_iter().map(|s| s.meta).collect();
    assert_eq!(got[0].number, 0);
    assert!(
        got.len() >= 2 && got[1].number > 1 && got[1].discontinuity,
        "{got:?}"
    );
    let summary = ended(task).await;
    let lost = health.dropped_segments.load(Ordering::Relaxed);
    assert!(lost >= 4, "{lost} dropped");
    // Dropped segments' files are removed; what is handed on is there.
    let files = std::fs::read_dir(out.path()).unwrap().count() as u64;
    assert_eq!(files, summary.segments, "{summary:?}");
    assert_eq!(files, got.len() as u64);
    assert_eq!(summary.bytes_in, seconds.len() as u64);
}
