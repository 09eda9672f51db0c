//! The viewer's HTTP fetches: the fallback for a segment the swarm is late with (handed back
//! to the swarm once verified), and the HTTP baseline ([`Transport::Http`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::InfoDict;
use swarmcast_metrics::Kind;
use tokio::time::Instant;

use super::act::seg_added_us;
use super::{Fallback, Viewer, ViewerEvent, HTTP_ATTEMPTS, HTTP_RETRY};
use crate::fallback::{self, Milestone};
use crate::io::{SegmentFetch, SegmentSwarm};
use crate::schedule::FetchFailure;
use crate::watch::Transport;

impl<S: SegmentSwarm, H: SegmentFetch, K> Viewer<S, H, K> {
    pub(crate) async fn http_done(&mut self, n: u64, result: Result<u64, fallback::FetchError>) {
        let temp = fallback::temp_path(&self.dir, n);
        let Some(seg) = self.segs.get_mut(&n) else {
            let _ = tokio::fs::remove_file(&temp).await;
            return;
        };
        seg.fallback = None;
        let Some(seg) = self.segs.get(&n) else {
            return;
        };
        if self.config.transport == Transport::Http {
            match result {
                Ok(bytes) => self.http_complete(n, bytes).await,
                Err(e) => {
                    tracing::warn!(segment = n, error = %e, "HTTP fetch failed {HTTP_ATTEMPTS} times: giving up");
                    let now = self.now_ms();
                    self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
                }
            }
            return;
        }
        match result {
            Err(e) => {
                let why = e.failure();
                self.recorder.record(
                    Some(n),
                    Kind::HttpFallback {
                        bytes: 0,
                        ok: false,
                        superseded: false,
                        refused: why == FetchFailure::Busy,
                    },
                );
                match why {
                    FetchFailure::Gone => {
                        tracing::warn!(segment = n, error = %e, "HTTP fallback: the publisher no longer has the segment; waiting for the swarm")
                    }
                    FetchFailure::Busy => {
                        tracing::debug!(segment = n, error = %e, "HTTP fallback refused (the publisher is busy); waiting for the swarm, every fallback held back")
                    }
                    FetchFailure::Failed => {
                        tracing::warn!(segment = n, error = %e, "HTTP fallback failed; waiting for the swarm, retrying later")
                    }
                }
                if !seg.complete {
                    let now = self.now_ms();
                    self.scheduler.on_fetch_failed(n, now, why);
                }
            }
            Ok(_) if seg.complete => {
                // The swarm won the race (counted when it did): keep its copy.
                let _ = tokio::fs::remove_file(&temp).await;
            }
            Ok(bytes) => self.hand_to_swarm(n, bytes).await,
        }
    }

    /// A fallback fetch verified segment `n` (`bytes` long) before the swarm completed it: hand
    /// the file to the swarm (forget the torrent, keeping its file; put ours in place; re-add it
    /// so librqbit re-checks it and seeds it to others), then count it complete.
    async fn hand_to_swarm(&mut self, n: u64, bytes: u64) {
        let temp = fallback::temp_path(&self.dir, n);
        self.recorder.record(
            Some(n),
            Kind::HttpFallback {
                bytes,
                ok: true,
                superseded: false,
                refused: false,
            },
        );
        let name = format!("{n:08}.ts");
        // Hand the verified file to librqbit: forget the torrent (keeping its file), put
        // ours in place, re-add it so librqbit re-checks it and seeds it to others.
        let Some(torrent_bytes) = self.segs.get(&n).map(|seg| self.torrent_bytes(&seg.entry))
        else {
            return;
        };
        // What the swarm delivered before the fallback won (wasted bytes, but received),
        // and what this handle uploaded, so the counters survive the new handle.
        let old = self.segs.get_mut(&n).and_then(|seg| {
            if let Some(w) = seg.watcher.take() {
                w.abort();
            }
            seg.reported = (0, 0);
            seg.torrent.take()
        });
        let (mut from_publisher, mut from_peers) = (0, 0);
        if let Some(t) = old {
            (from_publisher, from_peers) = self.received(&t);
            let uploaded = self.swarm.stats(&t).uploaded;
            if let Some(seg) = self.segs.get_mut(&n) {
                seg.uploaded_before += uploaded;
            }
            self.swarm.forget(&t).await;
        }
        self.summary.from_publisher += from_publisher;
        self.summary.from_peers += from_peers;
        if let Err(e) = tokio::fs::rename(&temp, self.dir.join(&name)).await {
            tracing::warn!(segment = n, error = %e, "cannot move the fetched segment into place");
            let now = self.now_ms();
            self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
            return;
        }
        let seeded = self
            .swarm
            .seed(&torrent_bytes, &name, &self.dir, Duration::from_secs(30))
            .await;
        match seeded {
            Ok(t) => {
                if let Some(seg) = self.segs.get_mut(&n) {
                    seg.torrent = Some(t);
                }
            }
            Err(e) => {
                tracing::warn!(segment = n, error = %e, "cannot seed the fetched segment; playing it anyway")
            }
        }
        self.completed_over_http(n, (from_publisher, from_peers), bytes);
    }

    /// Records a segment complete over HTTP: `swarm` is what the swarm had delivered before
    /// (publisher, peers; already in the summary), `bytes` what HTTP did.
    fn completed_over_http(&mut self, n: u64, swarm: (u64, u64), bytes: u64) {
        let since = seg_added_us(self.segs.get(&n));
        if let Some(seg) = self.segs.get_mut(&n) {
            seg.complete = true;
            seg.watcher = None;
        }
        self.summary.from_http += bytes;
        self.recorder.record(
            Some(n),
            Kind::Completed {
                since_added_us: since,
                via: "http".into(),
                from_publisher: swarm.0,
                from_peers: swarm.1,
                from_http: bytes,
                connect_attempts: None,
                connect_errors: None,
                failed_dials: None,
            },
        );
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
        self.live_verified(n);
    }

    /// The HTTP baseline's segment arrived: into place, and done (nothing is seeded).
    async fn http_complete(&mut self, n: u64, bytes: u64) {
        let temp = fallback::temp_path(&self.dir, n);
        let name = format!("{n:08}.ts");
        if let Err(e) = tokio::fs::rename(&temp, self.dir.join(name)).await {
            tracing::warn!(segment = n, error = %e, "cannot move the fetched segment into place");
            let now = self.now_ms();
            self.scheduler.on_fetch_failed(n, now, FetchFailure::Failed);
            return;
        }
        self.completed_over_http(n, (0, 0), bytes);
    }

    pub(crate) fn fetch_http(&mut self, n: u64) {
        let (Some(seg), Some(source)) = (self.segs.get_mut(&n), self.source.clone()) else {
            return;
        };
        let Ok(url) = source.join(&format!("segments/{n:08}.ts")) else {
            return;
        };
        let Ok(info) = InfoDict::decode_strict(&seg.entry.info) else {
            return;
        };
        tracing::info!(segment = n, %url, "fetching over HTTP (the swarm is late)");
        let (http, temp, tx, limiter) = (
            self.http.clone(),
            fallback::temp_path(&self.dir, n),
            self.ev_tx.clone(),
            self.limiter.clone(),
        );
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = self.tasks.spawn("http-fallback", async move {
            let progress = move |m: Milestone| {
                if let Milestone::Received(total) = m {
                    counter.store(total, Ordering::Relaxed);
                }
            };
            let result = http
                .segment(&url, &info, &temp, limiter.as_deref(), &progress)
                .await;
            let _ = tx.send(ViewerEvent::Http(n, result)).await;
        });
        if let Some(old) = seg.fallback.replace(Fallback { task, received }) {
            old.task.abort();
        }
    }

    /// The HTTP baseline ([`Transport::Http`]): the segment is fetched from the publisher's
    /// `/segments/<n>.ts`, retried while it is wanted (at most [`HTTP_ATTEMPTS`] times). The
    /// response headers count as its first peer, the first verified piece as its first piece.
    pub(crate) fn add_http(&mut self, n: u64) {
        let (Some(seg), Some(source)) = (self.segs.get_mut(&n), self.source.clone()) else {
            return;
        };
        let (Ok(url), Ok(info)) = (
            source.join(&format!("segments/{n:08}.ts")),
            InfoDict::decode_strict(&seg.entry.info),
        ) else {
            return;
        };
        let added = Instant::now();
        seg.added = Some(added);
        self.recorder.record(Some(n), Kind::Added);
        let (http, temp, tx, limiter) = (
            self.http.clone(),
            fallback::temp_path(&self.dir, n),
            self.ev_tx.clone(),
            self.limiter.clone(),
        );
        seg.watcher = Some(self.tasks.spawn("http-fetch", async move {
            let seen = std::sync::Mutex::new((false, false));
            let progress = |m: Milestone| {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let ev = match m {
                    Milestone::Response if !seen.0 => {
                        seen.0 = true;
                        ViewerEvent::FirstPeer(n, added.elapsed())
                    }
                    Milestone::FirstPiece if !seen.1 => {
                        seen.1 = true;
                        ViewerEvent::FirstPiece(n, added.elapsed())
                    }
                    _ => return,
                };
                let _ = tx.try_send(ev);
            };
            let mut attempt = 1;
            let result = loop {
                let result = http
                    .segment(&url, &info, &temp, limiter.as_deref(), &progress)
                    .await;
                match &result {
                    Err(e) if e.failure() != FetchFailure::Gone && attempt < HTTP_ATTEMPTS => {
                        tracing::warn!(segment = n, attempt, error = %e, "HTTP fetch failed");
                        tokio::time::sleep(HTTP_RETRY).await;
                        attempt += 1;
                    }
                    _ => break result,
                }
            };
            let _ = tx.send(ViewerEvent::Http(n, result)).await;
        }));
    }
}
