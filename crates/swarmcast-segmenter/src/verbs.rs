//! The `segment` and `synth` verbs: cut a feed into segment files, or write the synthetic feed.
//! The binary declares their flags and prints; the work is here.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use swarmcast_tasks::Tasks;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::source::{self, CutSegment, Input, RunSummary, SegmentConfig, SourceError};
use crate::synth::Synth;

/// Where `segment` reads its feed.
#[derive(Debug)]
pub enum Feed {
    /// A stream: stdin, a file (followed or not), any reader.
    Stream(Input),
    /// A directory an encoder writes finished segment files into.
    WatchDir(PathBuf),
}

/// Why `segment` failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The input could not be read, or the directory watched.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Segments were dropped because they could not be written (the segmenter goes on past a
    /// segment it cannot write, as a publisher must; for the `segment` verb that is a failure).
    #[error(
        "{segments} segments could not be written ({bytes} input bytes dropped); the last reason: {reason}"
    )]
    Dropped {
        /// Segments dropped.
        segments: u64,
        /// Their input bytes.
        bytes: u64,
        /// The last write error.
        reason: String,
    },
}

/// Cuts `feed` into segment files as `config` says, calling `each` with every segment as it is
/// written, until the feed ends or `cancel`. Fails if the feed cannot be read or a segment could
/// not be written (what was written stays).
pub async fn segment(
    feed: Feed,
    config: SegmentConfig,
    cancel: CancellationToken,
    mut each: impl FnMut(&CutSegment),
) -> Result<RunSummary, SegmentError> {
    let health = config.health.clone();
    let (tx, mut rx) = mpsc::channel::<CutSegment>(16);
    let segmenting = async move {
        match feed {
            Feed::WatchDir(dir) => source::watch_dir(&dir, config, tx, cancel).await,
            Feed::Stream(input) => source::segment_stream(input, config, tx, cancel).await,
        }
    };
    // Ends when the segmenter, done, drops its sender.
    let reporting = async move {
        while let Some(s) = rx.recv().await {
            each(&s);
        }
    };
    let (summary, ()) = tokio::join!(segmenting, reporting);
    let summary = summary?;
    let segments = health.dropped_segments.load(Ordering::Relaxed);
    if segments > 0 {
        return Err(SegmentError::Dropped {
            segments,
            bytes: health.dropped_bytes.load(Ordering::Relaxed),
            reason: health.last_failure().unwrap_or_default(),
        });
    }
    Ok(summary)
}

/// Writes the synthetic feed to `out`: paced in real time or as fast as possible, for
/// `duration` (90 kHz ticks) or until `cancel`. A reader that goes away (`synth | head`) ends it
/// without an error.
pub async fn write_synth(
    synth: Synth,
    realtime: bool,
    duration: Option<u64>,
    mut out: impl AsyncWrite + Unpin,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    // Cancelling ends the writer task, and with it the feed.
    let tasks = Tasks::with_token("synth", cancel);
    let mut reader = source::synth_reader(synth, realtime, duration, &tasks);
    let copied = match tokio::io::copy(&mut reader, &mut out).await {
        Ok(_) => out.flush().await,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e),
    };
    drop(reader);
    tasks.shutdown().await;
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_synthetic_feed_is_written_whole_and_ends_after_its_duration() {
        let synth = Synth::new(Some(400_000), 0).unwrap();
        let mut out = Vec::new();
        write_synth(
            synth,
            false,
            Some(90_000),
            &mut out,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(!out.is_empty());
        assert_eq!(out.len() % crate::ts::PACKET, 0, "whole packets");
        // The same generator, read directly, gives the same bytes.
        let mut again = Synth::new(Some(400_000), 0).unwrap();
        let mut direct = Vec::new();
        loop {
            let chunk = again.next_chunk();
            if chunk.offset >= 90_000 {
                break;
            }
            direct.extend_from_slice(&chunk.bytes);
        }
        assert_eq!(out, direct);
    }

    #[tokio::test]
    async fn a_segment_that_cannot_be_written_fails_the_verb_naming_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("segments");
        let config = SegmentConfig::new(
            out.clone(),
            crate::CutterConfig {
                target: 90_000,
                first_number: 0,
                first_discontinuity: false,
            },
            source::Format::Ts,
        );
        // 48 s of media, 48 segments: more than the verb's channel (16) holds, so the writer
        // cannot have written them all before the first one is reported (under load it wrote
        // all 8 of an 8 s feed first, and nothing failed).
        let mut synth = Synth::new(Some(400_000), 0).unwrap();
        let mut feed = Vec::new();
        while feed.len() < 2_400_000 {
            feed.extend_from_slice(&synth.next_chunk().bytes);
        }
        // The output directory goes away after the first segment reported: what comes after
        // cannot be written. It goes at once, by a rename (a removal could race the writer
        // creating the next file, and leave the directory in place).
        let gone = dir.path().join("gone");
        let mut seen = Vec::new();
        let e = segment(
            Feed::Stream(Input::Reader(Box::new(std::io::Cursor::new(feed)))),
            config,
            CancellationToken::new(),
            |s| {
                seen.push(s.path.clone());
                let _ = std::fs::rename(&out, &gone);
            },
        )
        .await
        .unwrap_err();
        // The first segment was written and reported before the directory went.
        assert!(!seen.is_empty());
        let SegmentError::Dropped {
            segments,
            bytes,
            reason,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert!(*segments > 0 && *bytes > 0, "{e}");
        assert!(reason.contains("segments"), "{reason}");
    }
}
