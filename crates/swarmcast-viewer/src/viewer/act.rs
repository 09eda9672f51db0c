//! Carrying out the scheduler's actions: add a segment to the swarm (and watch it), play it
//! into the sink, skip it, forget it.

use std::sync::Arc;

use bytes::Bytes;
use swarmcast_metrics::Kind;
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{wall_ms, Viewer, ViewerEvent, ViewerSegment};
use crate::fallback;
use crate::io::{PlaybackSink, SegmentFetch, SegmentSwarm};
use crate::schedule::Action;
use crate::watch::{Transport, WatchError, SAMPLE};

impl<S: SegmentSwarm, H: SegmentFetch, K: PlaybackSink> Viewer<S, H, K> {
    /// Carries out actions; true when playback is over.
    pub(crate) async fn act(&mut self, actions: Vec<Action>) -> Result<bool, WatchError> {
        for action in actions {
            match action {
                Action::Add(n) => self.add(n).await,
                Action::FetchHttp(n) => self.fetch_http(n),
                Action::Play {
                    number,
                    deadline_ms,
                    stall_ms,
                } => {
                    if !self.play(number, deadline_ms, stall_ms).await? {
                        self.sync_live();
                        return Ok(true);
                    }
                }
                Action::Skip(n) => {
                    tracing::warn!(
                        segment = n,
                        "segment left the window before it could be fetched: skipped"
                    );
                    self.summary.skipped.push(n);
                    if self.summary.played.is_empty() {
                        self.summary.skipped_before_playback += 1;
                    }
                    self.recorder.record(Some(n), Kind::Skipped { count: None });
                }
                Action::SkipUnlisted { first, count } => {
                    tracing::warn!(
                        first,
                        count,
                        "segments no manifest listed (they left the window unseen, or the \
                         manifest jumped ahead): skipped"
                    );
                    if count == 1 {
                        self.summary.skipped.push(first);
                    } else {
                        self.summary.skipped_unlisted += count;
                    }
                    if self.summary.played.is_empty() {
                        self.summary.skipped_before_playback += count;
                    }
                    let count = (count > 1).then_some(count);
                    self.recorder.record(Some(first), Kind::Skipped { count });
                }
                Action::Forget(n) => self.forget(n).await,
                Action::End => {
                    self.sync_live();
                    return Ok(true);
                }
            }
        }
        self.sync_live();
        Ok(false)
    }

    pub(crate) async fn add(&mut self, n: u64) {
        if self.config.transport == Transport::Http {
            self.add_http(n);
            return;
        }
        let Some(seg) = self.segs.get(&n) else { return };
        let torrent = self.torrent_bytes(&seg.entry);
        let peers = self.initial_peers().await;
        if let Some(exchange) = &self.exchange {
            // The publisher's seeder holds every manifest first: no pushes to it.
            exchange.set_sources(peers.clone());
        }
        let how = self.download_plan(n, peers);
        let name = format!("{n:08}.ts");
        let added = Instant::now();
        self.recorder.record(Some(n), Kind::Added);
        match self.swarm.download(&torrent, &name, &self.dir, how).await {
            Ok(t) => {
                let watcher = spawn_watcher(
                    &self.tasks,
                    self.swarm.clone(),
                    t.clone(),
                    n,
                    added,
                    self.ev_tx.clone(),
                );
                if let Some(seg) = self.segs.get_mut(&n) {
                    seg.torrent = Some(t);
                    seg.watcher = Some(watcher);
                    seg.added = Some(added);
                }
            }
            Err(e) => {
                tracing::warn!(segment = n, error = %e, "cannot add the segment to the swarm; HTTP fallback will fetch it")
            }
        }
    }

    /// Writes a segment to the sink; false if the sink is gone (a closed pipe), an error if it
    /// cannot be written (a full disk).
    pub(crate) async fn play(
        &mut self,
        n: u64,
        deadline_ms: u64,
        stall_ms: u64,
    ) -> Result<bool, WatchError> {
        let path = self.dir.join(format!("{n:08}.ts"));
        let data = match tokio::fs::read(&path).await {
            Ok(d) => Bytes::from(d),
            Err(e) => {
                tracing::error!(segment = n, error = %e, "cannot read a complete segment: skipped");
                self.summary.skipped.push(n);
                return Ok(true);
            }
        };
        if self.summary.startup_ms.is_none() {
            self.summary.startup_ms = Some(self.now_ms());
        }
        if stall_ms > 0 {
            tracing::warn!(segment = n, stall_ms, "stall: the segment was late");
        }
        let len = data.len() as u64;
        if let Err(e) = self.sink.write(data).await {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::warn!(segment = n, error = %e, "the output was closed (its reader quit?): stopping");
                self.summary.output_closed = true;
                return Ok(false);
            }
            return Err(WatchError::Io {
                what: format!("cannot write segment {n} to the output"),
                source: e,
            });
        }
        self.summary.bytes_out += len;
        self.summary.played.push(n);
        if let Some(seg) = self.segs.get(&n) {
            self.summary
                .behind_live_ms
                .push(wall_ms().saturating_sub(seg.entry.published_ms) as f64);
        }
        self.recorder.record(
            Some(n),
            Kind::Played {
                deadline_us: deadline_ms * 1000,
                stall_us: stall_ms * 1000,
                bytes: len,
            },
        );
        Ok(true)
    }

    pub(crate) async fn forget(&mut self, n: u64) {
        let Some(mut seg) = self.segs.remove(&n) else {
            return;
        };
        self.live.forgotten(n);
        if let Some(w) = seg.watcher.take() {
            w.abort();
        }
        if let Some(f) = seg.fallback.take() {
            // Dropped while a fallback was under way: it ends here, with what it had received.
            super::stop_fallback(&self.recorder, n, f, false);
        }
        let mut uploaded = seg.uploaded_before;
        // Bytes received and not reported at completion: all of them for a segment that never
        // completed from the swarm (wasted, but received).
        let (mut from_publisher, mut from_peers) = (0, 0);
        let mut bad = BadPieces::default();
        if let Some(t) = seg.torrent.take() {
            let stats = self.swarm.stats(&t);
            uploaded += stats.uploaded;
            bad.refused_banned = stats.refused_banned;
            let (p, q) = self.received(&t);
            from_publisher = p.saturating_sub(seg.reported.0);
            from_peers = q.saturating_sub(seg.reported.1);
            for p in self.swarm.peer_bytes(&t) {
                if p.hash_failures > 0 {
                    bad.hash_failures += p.hash_failures;
                    bad.discarded_bytes += p.discarded_bytes;
                    bad.peers.push(p.addr);
                }
            }
            bad.peers.sort();
            self.swarm.forget(&t).await;
        }
        self.summary.uploaded += uploaded;
        self.summary.from_publisher += from_publisher;
        self.summary.from_peers += from_peers;
        self.summary.hash_failures += bad.hash_failures;
        self.summary.discarded_bytes += bad.discarded_bytes;
        self.summary.refused_banned += bad.refused_banned;
        for p in &bad.peers {
            if let Err(at) = self.summary.bad_peers.binary_search(p) {
                self.summary.bad_peers.insert(at, p.clone());
            }
        }
        self.recorder.record(
            Some(n),
            Kind::Forgotten {
                uploaded_bytes: uploaded,
                from_publisher,
                from_peers,
                hash_failures: bad.hash_failures,
                discarded_bytes: bad.discarded_bytes,
                bad_peers: bad.peers,
                refused_banned: bad.refused_banned,
            },
        );
        if !self.config.keep_segments {
            let _ = tokio::fs::remove_file(self.dir.join(format!("{n:08}.ts"))).await;
        }
        // An HTTP fetch aborted above leaves its temporary file.
        let _ = tokio::fs::remove_file(fallback::temp_path(&self.dir, n)).await;
    }
}

pub(super) fn seg_added_us<T>(seg: Option<&ViewerSegment<T>>) -> u64 {
    seg.and_then(|s| s.added)
        .map_or(0, |a| a.elapsed().as_micros() as u64)
}

/// Samples a downloading segment every [`SAMPLE`]: librqbit timestamps neither the first peer nor
/// the first piece, so their times are known to within one sample.
fn spawn_watcher<S: SegmentSwarm>(
    tasks: &Tasks,
    swarm: Arc<S>,
    t: S::Torrent,
    n: u64,
    added: Instant,
    tx: mpsc::Sender<ViewerEvent>,
) -> JoinHandle<Option<()>> {
    tasks.spawn("segment-watcher", async move {
        let (mut peer, mut piece) = (false, false);
        loop {
            let s = swarm.stats(&t);
            if !peer && s.live_peers > 0 {
                peer = true;
                let _ = tx.send(ViewerEvent::FirstPeer(n, added.elapsed())).await;
            }
            if !piece && (s.pieces > 0 || s.finished) {
                piece = true;
                let _ = tx.send(ViewerEvent::FirstPiece(n, added.elapsed())).await;
            }
            if s.finished {
                let _ = tx.send(ViewerEvent::Complete(n)).await;
                return;
            }
            tokio::time::sleep(SAMPLE).await;
        }
    })
}

/// A segment's pieces that failed their hash check, read when it is forgotten.
#[derive(Default)]
struct BadPieces {
    hash_failures: u64,
    discarded_bytes: u64,
    /// The peers that sent them, sorted.
    peers: Vec<String>,
    refused_banned: u64,
}
