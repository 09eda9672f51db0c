//! The publisher's pipeline: each cut segment is hashed, seeded, added to the window and
//! published; segments that leave the window are forgotten after their grace period; a restart
//! re-seeds the previous window; the end of the stream is published and lingered over.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use swarmcast_core::manifest::{self, SegmentEntry, SignedManifest};
use swarmcast_core::{SegmentTorrent, Window};
use swarmcast_metrics::{Kind, Recorder};
use swarmcast_segmenter::source::{self, CutSegment, Input, SegmentConfig};
use swarmcast_segmenter::CutterConfig;
use swarmcast_swarm::seeder::{Seeded, Seeder};
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http::{Served, Shared};
use crate::state::{self, Persisted, StateDir};
use crate::{
    dir_error, error_chain, FeedInput, PublishConfig, PublishError, Shutdown, Summary,
    HOUSEKEEPING, SEED_TIMEOUT,
};

mod retire;
mod segment;

pub(crate) struct Live {
    pub(crate) entry: SegmentEntry,
    pub(crate) torrent: Option<Seeded>,
    /// When it left the window, if it did.
    pub(crate) dropped_at: Option<Instant>,
    pub(crate) uploaded: u64,
}

/// A segment hashed and seeded, ready for the window.
pub(crate) struct Ready {
    entry: SegmentEntry,
    seeded: Option<Seeded>,
    torrent_bytes: Bytes,
    received: Instant,
    size: u64,
}

pub(crate) struct Publisher {
    /// The publisher's tasks (the feed, hashing and state writes run in them).
    pub(crate) tasks: Tasks,
    pub(crate) config: PublishConfig,
    pub(crate) seeder: Seeder,
    pub(crate) window: Window,
    pub(crate) state: StateDir,
    pub(crate) stream_dir: PathBuf,
    pub(crate) shared: Arc<Shared>,
    pub(crate) recorder: Recorder,
    pub(crate) trackers: Vec<String>,
    pub(crate) public_peer: Option<SocketAddr>,
    pub(crate) live: BTreeMap<u64, Live>,
    pub(crate) grace: Duration,
    pub(crate) summary: Summary,
    pub(crate) removed_uploaded: u64,
    /// Removed segments whose HTTP responses may still be running: (swarm bytes, of them on
    /// dialled connections, HTTP bytes recorded, the live HTTP counter), for a final count.
    pub(crate) removed_http: BTreeMap<u64, (u64, u64, u64, Arc<std::sync::atomic::AtomicU64>)>,
    /// How far the segmenter's numbers are ahead of the published ones (segments lost).
    pub(crate) shift: u64,
    /// The segment writer's outages logged so far.
    pub(crate) outages_seen: u64,
    /// The Icecast push and the relay directory, if on.
    pub(crate) relays: crate::icecast::RelayOutputs,
}

/// Puts the segment file `from` at `to` in the mirror directory, whole or not at all: a hard
/// link (no copy, when both are on one file system) or else a copy, under a temporary name
/// renamed into place.
fn mirror_file(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    let tmp = to.with_extension("ts.tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp)?;
    }
    std::fs::rename(&tmp, to)
}

impl Publisher {
    /// Re-seeds the previous run's window and serves it under a new sequence number: the newest
    /// segments whose files are all still here, and only if every one of them seeds (a window must
    /// stay contiguous with the segments that follow).
    pub(crate) async fn reseed(&mut self, doc: &[u8]) {
        let mut entries = match manifest::verify(doc, &self.window_key()) {
            Ok(m) => m.manifest.segments,
            Err(e) => {
                tracing::warn!(error = %e, "the previous run's manifest is unusable: not re-seeding its window");
                return;
            }
        };
        let first_kept = entries
            .iter()
            .rposition(|e| !self.segment_path(e.number).exists())
            .map_or(0, |i| i + 1);
        if first_kept > 0 {
            tracing::warn!(
                missing = entries[first_kept - 1].number,
                "a previous segment file is gone: re-seeding only the segments after it"
            );
        }
        let entries = entries.split_off(first_kept);
        let mut seeded = Vec::with_capacity(entries.len());
        for entry in &entries {
            match self.seed_entry(entry).await {
                Ok(torrent) => seeded.push(torrent),
                Err(e) => {
                    tracing::warn!(segment = entry.number, error = %e, "cannot re-seed a previous segment: not re-serving the previous window");
                    for t in &seeded {
                        self.seeder.forget(t).await;
                    }
                    return;
                }
            }
        }
        for (entry, torrent) in entries.into_iter().zip(seeded) {
            let torrent_bytes = self.torrent_bytes(&entry);
            self.serve(&entry, Some(torrent), torrent_bytes);
            if let Err(e) = self.window.push(entry) {
                tracing::warn!(error = %e, "cannot re-add a previous segment");
            }
        }
        if self.window.segments().len() > 0 {
            self.update_whitelist().await;
            if let Err(e) = self.sign_and_serve(None).await {
                tracing::warn!(error = %e, "cannot serve the re-seeded window");
            }
        }
    }

    fn window_key(&self) -> swarmcast_core::StreamKey {
        self.window.key()
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.stream_dir.join(format!("{number:08}.ts"))
    }

    fn torrent_bytes(&self, entry: &SegmentEntry) -> Bytes {
        let info = swarmcast_core::InfoDict::decode_strict(&entry.info)
            .expect("window entries hold valid info");
        Bytes::from(SegmentTorrent::from_info(info, self.trackers.clone()).to_torrent_bytes())
    }

    pub(crate) async fn seed_entry(&self, entry: &SegmentEntry) -> Result<Seeded, PublishError> {
        let torrent = self.torrent_bytes(entry);
        Ok(self
            .seeder
            .seed(
                &torrent,
                &format!("{:08}.ts", entry.number),
                &self.stream_dir,
                SEED_TIMEOUT,
            )
            .await?)
    }

    fn serve(&mut self, entry: &SegmentEntry, torrent: Option<Seeded>, torrent_bytes: Bytes) {
        let seeded = torrent.is_some();
        if let Some(stripes) = &self.relays.stripes {
            // Striped as it is published: the substreams carry what the manifest lists.
            let path = self.segment_path(entry.number);
            let meta = swarmcast_stripe::code::SegmentMeta {
                seq: entry.number,
                media_start_us: entry.media_start * 100 / 9,
                duration_us: (entry.duration * 100 / 9).min(u64::from(u32::MAX)) as u32,
            };
            stripes.stripe(meta, path);
        }
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                entry.number,
                Served {
                    path: self.segment_path(entry.number),
                    torrent: torrent_bytes.clone(),
                    info_hash: entry.info_hash,
                    size: entry.size,
                    in_window: true,
                    http_bytes: Arc::default(),
                },
            );
        if let Some(tracker) = &self.shared.tracker {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_segment(
                    entry.info_hash.0,
                    self.public_peer.filter(|_| seeded),
                    entry.number,
                );
        }
        if let Some(m) = &self.config.mirror_dir {
            let path = m
                .join("segments")
                .join(format!("{:08}.torrent", entry.number));
            if let Err(e) = state::write_atomic(&path, &torrent_bytes) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the mirror's torrent");
            }
            let path = m.join("segments").join(format!("{:08}.ts", entry.number));
            if let Err(e) = mirror_file(&self.segment_path(entry.number), &path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot put the segment file in the mirror (its HTTP fallback will answer 404)");
            }
        }
        self.live.insert(
            entry.number,
            Live {
                entry: entry.clone(),
                torrent,
                dropped_at: None,
                uploaded: 0,
            },
        );
    }

    /// Rewrites the external tracker's whitelist with every segment served (the window and the
    /// grace period) and signals the tracker, if `--tracker-whitelist` is set: before a new
    /// segment is listed, and after one is forgotten. A failure is logged and counted, not
    /// fatal: the segment is published anyway (the manifest's peer hints and the HTTP fallback
    /// reach the publisher without the tracker).
    pub(crate) async fn update_whitelist(&self) {
        let Some(whitelist) = self.config.tracker_whitelist.clone() else {
            return;
        };
        let hashes: Vec<swarmcast_core::InfoHash> = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.info_hash)
            .collect();
        let result = self
            .tasks
            .spawn_blocking("tracker-whitelist", move || {
                whitelist.update(&hashes).map_err(|e| error_chain(&e))
            })
            .await
            .unwrap_or_else(|e| Err(format!("the whitelist writer failed: {e}")));
        match result {
            Ok(()) => {
                self.shared
                    .whitelist_updates
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                self.shared
                    .whitelist_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %reason,
                    "cannot update the tracker whitelist: publishing anyway (the external tracker \
                     may refuse this segment; viewers still reach the publisher through the \
                     manifest and the HTTP fallback)"
                );
            }
        }
    }

    /// Signs the next manifest, persists the counters, then serves it.
    pub(crate) async fn sign_and_serve(
        &mut self,
        next_segment: Option<u64>,
    ) -> Result<Arc<SignedManifest>, PublishError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let signed = self.window.sign(now_ms)?;
        let next_segment = next_segment
            .unwrap_or_else(|| self.window.segments().last().map_or(0, |s| s.number + 1));
        let persisted = Persisted {
            next_seq: self.window.next_seq(),
            next_segment,
        };
        // The writes fsync: on a blocking thread, not on the runtime that serves and seeds.
        let signed = Arc::new(signed);
        let (state, mirror, doc) = (
            self.state.clone(),
            self.config.mirror_dir.clone(),
            signed.clone(),
        );
        self.tasks
            .spawn_blocking("save-state", move || {
                state.save(persisted, &doc.bytes)?;
                if let Some(m) = mirror {
                    if let Err(e) = state::write_atomic(&m.join("manifest"), &doc.bytes) {
                        tracing::warn!(error = %e, "cannot write the mirror's manifest");
                    }
                }
                Ok(())
            })
            .await
            .unwrap_or_else(|e| {
                Err(std::io::Error::other(format!(
                    "the state writer failed: {e}"
                )))
            })
            .map_err(dir_error(&self.stream_dir))?;
        self.summary.last_seq = signed.manifest.seq;
        self.shared.serve_manifest(signed.clone());
        Ok(signed)
    }

    /// Takes segments from the feed until it ends or `shutdown.stop`, then publishes the end of
    /// the stream. What was published stays on disk and served if the end cannot be: the
    /// publisher says why (degraded) and returns.
    pub(crate) async fn run_to_end(
        &mut self,
        first_number: u64,
        restarted: bool,
        shutdown: &Shutdown,
    ) -> Result<(), PublishError> {
        self.run_feed(first_number, restarted, shutdown).await?;
        if let Err(e) = self.end_of_stream(shutdown).await {
            self.degrade(format!(
                "cannot publish the end of the stream: {}",
                error_chain(&e)
            ));
        }
        Ok(())
    }

    /// Starts the segmenter on the configured input (numbering from `first_number`), sending
    /// what it cuts to `tx`; it stops when `feed_tasks` is cancelled, finishing its last segment.
    fn start_feed(
        &self,
        first_number: u64,
        restarted: bool,
        tx: mpsc::Sender<CutSegment>,
        feed_tasks: &Tasks,
    ) -> tokio::task::JoinHandle<Option<Result<source::RunSummary, source::SourceError>>> {
        let segment_config = SegmentConfig {
            out_dir: self.stream_dir.clone(),
            cutter: CutterConfig {
                target: self.config.target,
                first_number,
                first_discontinuity: restarted,
            },
            format: self.config.format,
            health: self.shared.feed.clone(),
            // Live input must never wait on the publisher (docs/reliability.md).
            drop_when_busy: matches!(self.config.input, FeedInput::Stdin),
            tap: self.relays.push.as_ref().map(|p| p.tap.clone()),
        };
        let input = self.config.input.clone();
        let stop = feed_tasks.token().clone();
        let synth_tasks = feed_tasks.child("synth");
        {
            // Not a task of `feed_tasks`: cancelling the feed asks the segmenter to finish its
            // last segment, not to drop it.
            self.tasks.spawn("segmenter", async move {
                match input {
                    FeedInput::Stdin => {
                        source::segment_stream(Input::Stdin, segment_config, tx, stop).await
                    }
                    FeedInput::File { path, follow } => {
                        source::segment_stream(
                            Input::File { path, follow },
                            segment_config,
                            tx,
                            stop,
                        )
                        .await
                    }
                    FeedInput::WatchDir(dir) => {
                        source::watch_dir(&dir, segment_config, tx, stop).await
                    }
                    FeedInput::Synth { bitrate, duration } => {
                        let synth = match swarmcast_segmenter::synth::Synth::new(bitrate, 0) {
                            Ok(s) => s,
                            Err(e) => {
                                return Err(source::SourceError::Read {
                                    what: "the synthetic feed".into(),
                                    source: std::io::Error::other(e),
                                })
                            }
                        };
                        let reader = source::synth_reader(synth, true, duration, &synth_tasks);
                        source::segment_stream(
                            Input::Reader(Box::new(reader)),
                            segment_config,
                            tx,
                            stop,
                        )
                        .await
                    }
                }
            })
        }
    }

    /// Takes segments from the feed until it ends or `shutdown.stop`.
    pub(crate) async fn run_feed(
        &mut self,
        first_number: u64,
        restarted: bool,
        shutdown: &Shutdown,
    ) -> Result<(), PublishError> {
        let (tx, mut rx) = mpsc::channel::<CutSegment>(4);
        // The feed's own group: cancelled (stop) ends the input, and the synthetic feed's writer.
        let feed_tasks = self.tasks.child("feed");
        let feed_stop = feed_tasks.token().clone();
        let mut feed = self.start_feed(first_number, restarted, tx, &feed_tasks);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut feed_done = false;
        let mut taking = true;
        loop {
            tokio::select! {
                segment = rx.recv(), if taking => match segment {
                    Some(segment) => {
                        let expected = self
                            .window
                            .segments()
                            .last()
                            .map_or(first_number, |s| s.number + 1);
                        if let Err(e) = self.publish_segment(segment, expected).await {
                            self.degrade(format!("{e}"));
                            feed_stop.cancel();
                            taking = false;
                        }
                    }
                    None => taking = false,
                },
                result = &mut feed, if !feed_done => {
                    feed_done = true;
                    match result {
                        Ok(Some(Ok(run))) => tracing::info!(segments = run.segments, bytes = run.bytes_in, skipped = run.cutter.bytes_skipped, "input ended"),
                        Ok(Some(Err(e))) => self.degrade(error_chain(&e)),
                        Ok(None) => tracing::debug!("the segmenter was cancelled"),
                        Err(e) => self.degrade(format!("the segmenter task failed: {e}")),
                    }
                },
                _ = housekeeping.tick() => self.housekeeping().await,
                () = shutdown.stop.cancelled(), if !feed_stop.is_cancelled() => feed_stop.cancel(),
                () = shutdown.abort.cancelled() => return Ok(()),
            }
            if feed_done && !taking {
                break;
            }
        }
        if let Some(reason) = self.summary.degraded.clone() {
            // No new segments, but what is published stays served until Ctrl-C.
            tracing::error!(%reason, "not taking new segments; still serving the published ones (Ctrl-C to end)");
            loop {
                tokio::select! {
                    _ = housekeeping.tick() => self.housekeeping().await,
                    () = shutdown.stop.cancelled() => break,
                    () = shutdown.abort.cancelled() => break,
                }
            }
        }
        Ok(())
    }

    pub(crate) fn degrade(&mut self, reason: String) {
        tracing::error!(%reason, "stopped taking new segments");
        *self
            .shared
            .degraded
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        self.summary.degraded.get_or_insert(reason);
    }
}
