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
use tokio::sync::mpsc;
use tokio::time::Instant;
use swarmcast_tasks::Tasks;

use crate::http::{Served, Shared};
use crate::state::{self, Persisted, StateDir};
use crate::{
    dir_error, error_chain, FeedInput, PublishConfig, PublishError, Shutdown, Summary,
    HOUSEKEEPING, SEED_TIMEOUT,
};

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
        self.tasks.spawn_blocking("save-state", move || {
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
        };
        let mut feed = {
            let input = self.config.input.clone();
            let stop = feed_stop.clone();
            let synth_tasks = feed_tasks.child("synth");
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
        };
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

    /// Publishes `cut` as segment `expected`. A segment that cannot be hashed or seeded (out of
    /// files, say) is dropped and counted, and the next one is published under its number as a
    /// discontinuity: the window stays contiguous and the publisher keeps going. Only an error
    /// of the window itself is returned.
    pub(crate) async fn publish_segment(
        &mut self,
        cut: CutSegment,
        expected: u64,
    ) -> Result<(), PublishError> {
        let injected = self.config.fail_segment == Some(cut.meta.number);
        let (number, size, path) = (cut.meta.number, cut.meta.size, cut.path.clone());
        let result = match self.renumber(cut, expected).await {
            Err(e) => Err(e),
            Ok(cut) if injected => Err(dir_error(&cut.path)(std::io::Error::other(
                "failure injected by --fail-segment (testing flag)",
            ))),
            Ok(cut) => self.hash_and_seed(cut).await,
        };
        // Where its file is now: under `expected`'s name once renumbered.
        let (number, path) = if path.exists() {
            (number, path)
        } else {
            (expected, self.segment_path(expected))
        };
        match result {
            Ok(ready) => {
                self.add_to_window(ready).await?;
                if self.shared.feed.recovered() {
                    tracing::info!(segment = number, "publishing again");
                }
                Ok(())
            }
            Err(e) => {
                // Never listed: nobody can have it, and its number goes to the next segment.
                let _ = tokio::fs::remove_file(&path).await;
                let reason = self.explain(&e);
                let feed = &self.shared.feed;
                feed.dropped_bytes.fetch_add(size, Ordering::Relaxed);
                feed.lose(format!("segment {number} could not be published: {reason}"));
                tracing::error!(
                    segment = number,
                    %reason,
                    "segment dropped: it could not be published; the next one takes its number"
                );
                Ok(())
            }
        }
    }

    /// Gives `cut` the number `expected` when segments before it were lost (by the segment
    /// writer or by [`Self::publish_segment`]); the first segment after each loss is marked a
    /// discontinuity.
    async fn renumber(
        &mut self,
        mut cut: CutSegment,
        expected: u64,
    ) -> Result<CutSegment, PublishError> {
        let shift = cut.meta.number.saturating_sub(expected);
        if shift != self.shift {
            self.shift = shift;
            cut.meta.discontinuity = true;
            tracing::warn!(
                cut = cut.meta.number,
                published_as = expected,
                "segments were lost before this one: it takes the next number, as a discontinuity"
            );
        }
        if shift == 0 {
            return Ok(cut);
        }
        let to = self.segment_path(expected);
        // Whatever is at `to` was never listed (only segments before `expected` were).
        let _ = tokio::fs::remove_file(&to).await;
        tokio::fs::rename(&cut.path, &to)
            .await
            .map_err(dir_error(&cut.path))?;
        cut.path = to;
        cut.meta.number = expected;
        Ok(cut)
    }

    /// `e` with what it means when files ran out: the limit and who holds the files.
    pub(crate) fn explain(&self, e: &PublishError) -> String {
        let chain = error_chain(e);
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if crate::fds::out_of_files(io) {
                    let (limit, _) = crate::fds::FdBudget::measure();
                    let http = self.shared.conns.open.load(Ordering::Relaxed);
                    let peer = self
                        .seeder
                        .connections()
                        .map_or_else(|| "a librqbit session's".into(), |n| n.to_string());
                    return format!(
                        "{chain} (out of files: the limit is {limit} (`ulimit -n`); {http} HTTP \
                         and {peer} peer connections are open; raise the limit, or lower \
                         --http-max-conns)"
                    );
                }
            }
            source = err.source();
        }
        chain
    }

    /// Hashes and seeds `cut`: what [`Self::add_to_window`] needs.
    async fn hash_and_seed(&mut self, cut: CutSegment) -> Result<Ready, PublishError> {
        let received = Instant::now();
        let meta = cut.meta.clone();
        let n = meta.number;
        self.recorder.record(
            Some(n),
            Kind::Cut {
                size: meta.size,
                media_start: meta.media_start,
                duration: meta.duration,
                discontinuity: meta.discontinuity,
            },
        );
        let (path, name, trackers, piece_length) = (
            cut.path.clone(),
            format!("{n:08}.ts"),
            self.trackers.clone(),
            self.config.piece_length,
        );
        let torrent = self
            .tasks
            .spawn_blocking("hash", move || {
                crate::segment_file::torrent_of_file(&path, &name, piece_length, trackers)
            })
        .await
        .map_err(|source| PublishError::Task {
            what: "hashing",
            source,
        })??;
        let hashed = received.elapsed();
        self.recorder.record(
            Some(n),
            Kind::Hashed {
                hash_us: hashed.as_micros() as u64,
                pieces: torrent.info().piece_count(),
                piece_length: torrent.info().piece_length,
                info_hash: torrent.info_hash().to_string(),
            },
        );
        let entry = SegmentEntry {
            number: n,
            media_start: meta.media_start,
            duration: meta.duration,
            size: meta.size,
            discontinuity: meta.discontinuity,
            published_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            info_hash: torrent.info_hash(),
            info: torrent.info_bytes().to_vec(),
        };
        let torrent_bytes = Bytes::from(torrent.to_torrent_bytes());
        let seeded = if self.config.withhold_segment == Some(n) {
            tracing::warn!(
                segment = n,
                "withholding this segment from the swarm (testing flag)"
            );
            None
        } else {
            let add = Instant::now();
            let t = self
                .seeder
                .seed(
                    &torrent_bytes,
                    &format!("{n:08}.ts"),
                    &self.stream_dir,
                    SEED_TIMEOUT,
                )
                .await?;
            self.recorder.record(
                Some(n),
                Kind::Seeding {
                    add_us: add.elapsed().as_micros() as u64,
                },
            );
            Some(t)
        };
        Ok(Ready {
            entry,
            seeded,
            torrent_bytes,
            received,
            size: meta.size,
        })
    }

    /// Serves a hashed and seeded segment, adds it to the window, signs and serves the manifest.
    async fn add_to_window(&mut self, ready: Ready) -> Result<(), PublishError> {
        let Ready {
            entry,
            seeded,
            torrent_bytes,
            received,
            size,
        } = ready;
        let n = entry.number;
        self.serve(&entry, seeded, torrent_bytes);
        if let Some(dropped) = self.window.push(entry)? {
            if let Some(live) = self.live.get_mut(&dropped.number) {
                live.dropped_at = Some(Instant::now());
            }
            if let Some(s) = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&dropped.number)
            {
                s.in_window = false;
            }
        }
        let signed = match self.sign_and_serve(Some(n + 1)).await {
            Ok(signed) => signed,
            Err(e @ PublishError::Dir { .. }) => {
                // Listed in the window; the next manifest signed carries it.
                tracing::error!(segment = n, reason = %self.explain(&e), "cannot save the manifest: the next segment's carries this one");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.summary.segments += 1;
        self.summary.segment_bytes += size;
        self.recorder.record(
            Some(n),
            Kind::Published {
                seq: signed.manifest.seq,
                manifest_bytes: signed.bytes.len() as u64,
                cut_to_published_us: received.elapsed().as_micros() as u64,
            },
        );
        tracing::info!(
            segment = n,
            seq = signed.manifest.seq,
            size,
            ms = received.elapsed().as_millis() as u64,
            "segment published"
        );
        Ok(())
    }

    /// Forgets segments whose grace period is over; samples upload counts.
    pub(crate) async fn housekeeping(&mut self) {
        let outages = self.shared.feed.outages.load(Ordering::Relaxed);
        if outages != self.outages_seen {
            self.outages_seen = outages;
            if let Some(reason) = self.shared.feed.failing() {
                // Who holds the files, for the one who has to find out.
                tracing::warn!(
                    %reason,
                    file_limit = crate::fds::FdBudget::measure().0,
                    http_connections = self.shared.conns.open.load(Ordering::Relaxed),
                    peer_connections = ?self.seeder.connections(),
                    "dropping input (counted in swarmcast_input_dropped_bytes_total)"
                );
            }
        }
        let mut total = self.removed_uploaded;
        for live in self.live.values_mut() {
            if let Some(t) = &live.torrent {
                live.uploaded = self.seeder.uploaded(t);
            }
            total += live.uploaded;
        }
        let (late, arrived) = self.seeder.late_pieces();
        self.shared.late_pieces.store(late, Ordering::Relaxed);
        self.shared.late_arrived.store(arrived, Ordering::Relaxed);
        if self.shared.uploaded_bytes.swap(total, Ordering::Relaxed) < total {
            self.shared
                .swarm_active_ms
                .store(self.shared.now_ms(), Ordering::Relaxed);
        }
        if let Some(tracker) = &self.shared.tracker {
            let now = self.shared.now_ms();
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expire(now);
        }
        let due: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, l)| l.dropped_at.is_some_and(|d| d.elapsed() >= self.grace))
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            self.remove(n).await;
        }
    }

    /// Payload bytes of `t` sent on connections this publisher dialled (see `Kind::Uploaded`).
    fn dialled_bytes(&self, t: &Seeded) -> u64 {
        self.seeder.dialled_bytes(t)
    }

    /// Bytes of segment `n` sent over HTTP so far.
    fn http_bytes(&self, n: u64) -> u64 {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
            .map_or(0, |s| s.http_bytes.load(Ordering::Relaxed))
    }

    pub(crate) async fn remove(&mut self, n: u64) {
        let Some(live) = self.live.remove(&n) else {
            return;
        };
        let mut uploaded = live.uploaded;
        let mut dialled_bytes = 0;
        if let Some(t) = &live.torrent {
            uploaded = self.seeder.uploaded(t);
            dialled_bytes = self.dialled_bytes(t);
            self.seeder.forget(t).await;
            // The wire seeder's count is final once forget returns (its connections ended);
            // librqbit's may read lower after the torrent is gone, hence the larger of the two.
            uploaded = uploaded.max(self.seeder.uploaded(t));
        }
        self.removed_uploaded += uploaded;
        let http_bytes = self.http_bytes(n);
        if let Some(s) = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&n)
        {
            self.removed_http.insert(
                n,
                (uploaded, dialled_bytes, http_bytes, s.http_bytes.clone()),
            );
        }
        self.shared
            .segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&n);
        if let Some(tracker) = &self.shared.tracker {
            tracker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove_torrent(&live.entry.info_hash.0);
        }
        if !self.config.keep_segments {
            if let Err(e) = std::fs::remove_file(self.segment_path(n)) {
                tracing::warn!(segment = n, error = %e, "cannot delete the segment file");
            }
        }
        if let Some(m) = &self.config.mirror_dir {
            let _ = std::fs::remove_file(m.join("segments").join(format!("{n:08}.torrent")));
        }
        self.summary.http_uploaded_bytes += http_bytes;
        self.recorder.record(
            Some(n),
            Kind::Uploaded {
                bytes: uploaded,
                http_bytes,
                dialled_bytes,
            },
        );
        self.recorder.record(
            Some(n),
            Kind::Removed {
                uploaded_bytes: uploaded,
                kept_file: self.config.keep_segments,
            },
        );
        tracing::debug!(segment = n, uploaded, "segment forgotten");
    }

    /// Serves the end-of-stream manifest, then lingers.
    pub(crate) async fn end_of_stream(&mut self, shutdown: &Shutdown) -> Result<(), PublishError> {
        if shutdown.abort.is_cancelled() {
            return Ok(());
        }
        self.window.end_stream();
        let signed = self.sign_and_serve(None).await?;
        self.recorder.record(
            None,
            Kind::EndOfStream {
                seq: signed.manifest.seq,
            },
        );
        let linger = self.config.linger.unwrap_or(Duration::from_micros(
            self.config.target * self.window.segments().len().max(1) as u64 * 100 / 9,
        ));
        tracing::info!(
            seq = signed.manifest.seq,
            linger_s = linger.as_secs_f64(),
            "end of stream: lingering so viewers get the end (Ctrl-C to exit now)"
        );
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let until = Instant::now() + linger;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                _ = housekeeping.tick() => self.housekeeping().await,
                () = shutdown.abort.cancelled() => break,
                // A Ctrl-C during the linger (the first one, if the input ended by itself).
                () = shutdown.stop.cancelled(), if !shutdown.stop.is_cancelled() => break,
            }
        }
        Ok(())
    }

    pub(crate) async fn finish(&mut self) {
        self.housekeeping().await;
        let feed = &self.shared.feed;
        self.summary.dropped_segments = feed.dropped_segments.load(Ordering::Relaxed);
        self.summary.dropped_bytes = feed.dropped_bytes.load(Ordering::Relaxed);
        self.summary.dropping = feed.failing();
        let conns = &self.shared.conns;
        self.summary.http_connections = crate::HttpConnections {
            accepted: conns.accepted.load(Ordering::Relaxed),
            refused_per_address: conns.refused_per_address.load(Ordering::Relaxed),
            refused_full: conns.refused_full.load(Ordering::Relaxed),
            evicted: conns.evicted.load(Ordering::Relaxed),
            header_timeouts: conns.header_timeouts.load(Ordering::Relaxed),
        };
        for (n, live) in std::mem::take(&mut self.live) {
            let http_bytes = self.http_bytes(n);
            let dialled_bytes = live.torrent.as_ref().map_or(0, |t| self.dialled_bytes(t));
            self.summary.http_uploaded_bytes += http_bytes;
            self.recorder.record(
                Some(n),
                Kind::Uploaded {
                    bytes: live.uploaded,
                    http_bytes,
                    dialled_bytes,
                },
            );
        }
        // HTTP responses still running when their segment was removed: their final count.
        for (n, (bytes, dialled_bytes, recorded, counter)) in std::mem::take(&mut self.removed_http)
        {
            let http_bytes = counter.load(Ordering::Relaxed);
            if http_bytes > recorded {
                self.summary.http_uploaded_bytes += http_bytes - recorded;
                self.recorder.record(
                    Some(n),
                    Kind::Uploaded {
                        bytes,
                        http_bytes,
                        dialled_bytes,
                    },
                );
            }
        }
        self.summary.uploaded_bytes = self.shared.uploaded_bytes.load(Ordering::Relaxed);
        self.seeder.shutdown().await;
    }
}
