//! The async edge of the segmenter: inputs in, segment files out.
//!
//! - [`segment_stream`] reads a byte stream (stdin, a file, a file that keeps growing, or any
//!   `AsyncRead` such as [`synth_reader`]) through a cutter and writes each segment as
//!   `<out>/<number as 8 digits>.ts`, announcing it on a channel once the file is complete.
//! - [`watch_dir`] takes the files an encoder finishes in a directory, one segment each, in order.
//!
//! A segment file is written as `<name>.part` and renamed when complete, so a reader of `<out>`
//! never sees a partial segment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarmcast_tasks::Tasks;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cutter::{ClockCutter, CutterConfig, CutterStats, Output, SegmentMeta, TsCutter};
use crate::framer::looks_like_ts;
use crate::synth::Synth;
use crate::ts::PACKET;

mod dir;
mod writer;

pub use dir::{watch_dir, DirWatch};
use writer::SegmentFiles;

/// How often a followed file is checked for growth.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 64 * 1024;

/// Errors of the segmenter's I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The input could not be opened.
    #[error("cannot open input {path}")]
    Open {
        /// The input.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the input failed.
    #[error("reading {what} failed")]
    Read {
        /// The input.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A segment file could not be written (disk full, permissions).
    #[error("cannot write segment file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory could not be watched.
    #[error("cannot watch directory {path}: {reason}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Whether the input is MPEG-TS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Decide from the first bytes: TS if three packets in a row line up.
    #[default]
    Auto,
    /// MPEG-TS: cut at keyframes.
    Ts,
    /// Anything else: cut by wall clock.
    Raw,
}

/// Where and how to cut.
#[derive(Clone, Debug)]
pub struct SegmentConfig {
    /// Directory the segment files go to (created if missing).
    pub out_dir: PathBuf,
    /// Cutting parameters.
    pub cutter: CutterConfig,
    /// Input format.
    pub format: Format,
    /// What the segment writer dropped, shared with whoever reports it.
    pub health: Arc<FeedHealth>,
    /// A live input: a segment the receiver has no room for is dropped (and counted) rather
    /// than waited for, so the input is never stalled behind a slow receiver. Off, the writer
    /// waits (a file read as fast as it can be is held back instead).
    pub drop_when_busy: bool,
    /// Called with every byte the cutter puts into a segment, in order, as it is cut (before
    /// the segment file is written): the publisher's Icecast push (`publish --icecast`).
    pub tap: Option<Tap>,
}

/// A callback that sees the stream's segment bytes as they are cut ([`SegmentConfig::tap`]).
/// It must not block: it is called on the segmenter's task.
#[derive(Clone)]
pub struct Tap(pub Arc<TapFn>);

/// What a [`Tap`] calls.
pub type TapFn = dyn Fn(&[u8]) + Send + Sync;

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl SegmentConfig {
    /// Cutting with `cutter` into `out_dir`, the writer waiting for a slow receiver.
    pub fn new(out_dir: PathBuf, cutter: CutterConfig, format: Format) -> Self {
        Self {
            out_dir,
            cutter,
            format,
            health: Arc::default(),
            drop_when_busy: false,
            tap: None,
        }
    }
}

/// What the segment writer lost to I/O errors (too many open files, a full disk, a directory
/// removed) or to a busy receiver. A failed segment is dropped whole; its input is read and
/// counted, never waited on; the next segment written tries again and is marked a
/// discontinuity. Nothing already written is touched.
#[derive(Debug, Default)]
pub struct FeedHealth {
    /// Input bytes that went into no segment file.
    pub dropped_bytes: AtomicU64,
    /// Segments lost (their numbers are skipped).
    pub dropped_segments: AtomicU64,
    /// Times the writer started failing.
    pub outages: AtomicU64,
    /// Why segments are being dropped now (None: they are not).
    failing: Mutex<Option<String>>,
    /// Why the last segment was lost.
    last: Mutex<Option<String>>,
}

impl FeedHealth {
    /// Why segments are being dropped now (None: they are not).
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts a segment lost for `reason`, and starts an outage (returns true) unless one is on.
    pub fn lose(&self, reason: String) -> bool {
        self.dropped_segments.fetch_add(1, Ordering::Relaxed);
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let started = failing.is_none();
        if started {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        *failing = Some(reason.clone());
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        started
    }

    /// Why the last segment was lost, if one was.
    pub fn last_failure(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ends an outage (a segment went through); true if one was on.
    pub fn recovered(&self) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
    }
}

/// A segment whose file is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutSegment {
    /// What the cutter knows about it.
    pub meta: SegmentMeta,
    /// The segment file.
    pub path: PathBuf,
}

/// What a run met, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Segments written.
    pub segments: u64,
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// The cutter's counters (all zero for wall-clock cutting).
    pub cutter: CutterStats,
    /// The input was cut as MPEG-TS.
    pub ts: bool,
    /// Files the watched directory finished out of order and that were therefore not used.
    pub files_out_of_order: u64,
    /// Files in the watched directory that were empty or not MPEG-TS.
    pub files_unusable: u64,
}

impl std::fmt::Display for RunSummary {
    /// The summary `swarmcast segment` prints at exit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.cutter;
        write!(
            f,
            "{} segments from {} bytes ({}); skipped {} bytes, {} resyncs, {} forced cuts, {} discontinuities",
            self.segments,
            self.bytes_in,
            if self.ts {
                "mpeg-ts, cut at keyframes"
            } else {
                "raw, cut by wall clock"
            },
            c.bytes_skipped,
            c.resyncs,
            c.forced_cuts,
            c.discontinuities,
        )
    }
}

/// An input for [`segment_stream`].
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file, read to its end; with `follow`, read as it grows until nothing new has arrived for
    /// the idle timeout (or until cancelled).
    File {
        /// The file.
        path: PathBuf,
        /// Idle timeout when following.
        follow: Option<Duration>,
    },
    /// Any reader.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdin => f.write_str("stdin"),
            Self::File { path, .. } => write!(f, "{}", path.display()),
            Self::Reader(_) => f.write_str("reader"),
        }
    }
}

enum Cutter {
    Ts(Box<TsCutter>),
    Clock(ClockCutter),
}

/// Milliseconds on the runtime's clock.
fn now_ms(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// Cuts `input` into segment files in `config.out_dir`; sends each complete segment on `tx`.
/// Ends at the end of the input (or the idle timeout when following, or on `cancel`), closing
/// the last segment.
pub async fn segment_stream(
    input: Input,
    config: SegmentConfig,
    tx: mpsc::Sender<CutSegment>,
    cancel: CancellationToken,
) -> Result<RunSummary, SourceError> {
    let what = format!("{input:?}");
    let (mut reader, follow): (Box<dyn AsyncRead + Send + Unpin>, Option<Duration>) = match input {
        Input::Stdin => (Box::new(tokio::io::stdin()), None),
        Input::File { path, follow } => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|source| SourceError::Open { path, source })?;
            (Box::new(file), follow)
        }
        Input::Reader(r) => (r, None),
    };
    let origin = Instant::now();
    let mut files = SegmentFiles::new(&config).await?;
    let mut next_number = config.cutter.first_number;
    let mut summary = RunSummary::default();
    let mut cutter: Option<Cutter> = None;
    let mut prefix = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_data = Instant::now();

    loop {
        // A followed file is read to its current end even after `cancel`: what the encoder already
        // wrote is input. Other inputs (pipes) stop at once.
        let n = if follow.is_some() {
            reader
                .read(&mut buf)
                .await
                .map_err(|source| SourceError::Read {
                    what: what.clone(),
                    source,
                })?
        } else {
            tokio::select! {
                r = reader.read(&mut buf) => r.map_err(|source| SourceError::Read { what: what.clone(), source })?,
                () = cancel.cancelled() => 0,
            }
        };
        if n == 0 {
            match follow {
                Some(idle) if !cancel.is_cancelled() && last_data.elapsed() < idle => {
                    tokio::select! {
                        () = tokio::time::sleep(FOLLOW_POLL) => continue,
                        () = cancel.cancelled() => {}
                    }
                }
                _ => {}
            }
            break;
        }
        last_data = Instant::now();
        summary.bytes_in += n as u64;
        let data = &buf[..n];
        let outputs = match &mut cutter {
            Some(Cutter::Ts(c)) => c.push(data),
            Some(Cutter::Clock(c)) => c.push(data, now_ms(origin)),
            None => {
                prefix.extend_from_slice(data);
                if prefix.len() < 3 * PACKET + PACKET && config.format == Format::Auto {
                    continue;
                }
                let (c, outputs) =
                    start_cutter(&config, std::mem::take(&mut prefix), now_ms(origin));
                cutter = Some(c);
                outputs
            }
        };
        files.apply(outputs, &mut next_number, &tx).await;
    }

    let outputs = match &mut cutter {
        Some(Cutter::Ts(c)) => c.finish(),
        Some(Cutter::Clock(c)) => c.finish(now_ms(origin)),
        None if prefix.is_empty() => Vec::new(),
        None => {
            let (mut c, mut outputs) =
                start_cutter(&config, std::mem::take(&mut prefix), now_ms(origin));
            outputs.extend(match &mut c {
                Cutter::Ts(c) => c.finish(),
                Cutter::Clock(c) => c.finish(now_ms(origin)),
            });
            cutter = Some(c);
            outputs
        }
    };
    // The input has ended: nothing is held back by waiting for the receiver now, so the last
    // segment is handed on, not dropped.
    files.drop_when_busy = false;
    files.apply(outputs, &mut next_number, &tx).await;
    summary.segments = files.written;
    if let Some(Cutter::Ts(c)) = &cutter {
        summary.ts = true;
        summary.cutter = c.stats();
    }
    Ok(summary)
}

fn start_cutter(config: &SegmentConfig, prefix: Vec<u8>, now: u64) -> (Cutter, Vec<Output>) {
    let ts = match config.format {
        Format::Ts => true,
        Format::Raw => false,
        Format::Auto => looks_like_ts(&prefix),
    };
    tracing::info!(
        format = if ts {
            "mpeg-ts"
        } else {
            "raw (wall-clock cuts)"
        },
        "input format"
    );
    if ts {
        let mut c = TsCutter::new(config.cutter.clone());
        let out = c.push(&prefix);
        (Cutter::Ts(Box::new(c)), out)
    } else {
        let mut c = ClockCutter::new(config.cutter.clone());
        let out = c.push(&prefix, now);
        (Cutter::Clock(c), out)
    }
}

/// A reader of the synthetic feed: paced in real time (each frame at its media time after the
/// start) or as fast as possible, ending after `duration` (90 kHz ticks) if given, or when
/// `tasks` is cancelled. The writer is a task of `tasks`.
pub fn synth_reader(
    mut synth: Synth,
    realtime: bool,
    duration: Option<u64>,
    tasks: &Tasks,
) -> impl AsyncRead + Send + Unpin {
    let (mut tx, rx) = tokio::io::duplex(256 * 1024);
    // Cancelled, the task is dropped with its end of the pipe: the reader sees the end.
    tasks.spawn("synth-feed", async move {
        let start = Instant::now();
        loop {
            let chunk = synth.next_chunk();
            if duration.is_some_and(|d| chunk.offset >= d) {
                break;
            }
            if realtime {
                let at = start + Duration::from_micros(chunk.offset * 100 / 9);
                tokio::time::sleep_until(at).await;
            }
            if tx.write_all(&chunk.bytes).await.is_err() {
                break; // the reader went away
            }
        }
        let _ = tx.shutdown().await;
    });
    rx
}
