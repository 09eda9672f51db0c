//! The viewer's state and the handlers of the manifest poller's and the segments' events
//! (used by [`crate::watch`](mod@crate::watch)); the scheduler's actions are carried out in
//! `act`, HTTP fetches in `fetch`. The viewer is generic over its edges ([`crate::io`]): the
//! real swarm, HTTP clients and sink in `watch`, fakes in the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use swarmcast_core::carry::Carry;
use swarmcast_core::manifest::SegmentEntry;
use swarmcast_core::{InfoDict, SegmentTorrent, SignedManifest};
use swarmcast_metrics::{Kind, Recorder};
use swarmcast_swarm::ratelimit::ByteLimiter;
use swarmcast_swarm::Download;
use swarmcast_tasks::Tasks;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::fallback;
use crate::io::{SegmentFetch, SegmentSwarm};
use crate::live::{Live, LiveSegment, RateMeter};
use crate::poller::PollEvent;
use crate::schedule::Scheduler;
use crate::watch::{WatchConfig, WatchError, WatchSummary, REFUSALS_BEFORE_GIVING_UP};

mod act;
mod fetch;
#[cfg(test)]
mod tests;

/// How long resolving a publisher's host name may take before the segment is added without it.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// A segment the viewer knows of; `T` is the swarm's torrent handle.
pub(crate) struct ViewerSegment<T> {
    pub(crate) entry: SegmentEntry,
    pub(crate) torrent: Option<T>,
    pub(crate) watcher: Option<JoinHandle<Option<()>>>,
    pub(crate) added: Option<Instant>,
    pub(crate) first_piece_seen: bool,
    pub(crate) complete: bool,
    /// Payload bytes uploaded by an earlier torrent handle of this segment (one dropped when an
    /// HTTP fallback handed the segment back to librqbit).
    pub(crate) uploaded_before: u64,
    /// Bytes of the current torrent handle already reported (publisher, peers) in `completed`.
    pub(crate) reported: (u64, u64),
    /// The HTTP fallback under way, if any.
    pub(crate) fallback: Option<Fallback>,
}

/// An HTTP fallback fetch under way: stopped when the swarm completes the segment first, so the
/// publisher's uplink does not go on sending a copy nobody needs.
pub(crate) struct Fallback {
    task: JoinHandle<Option<()>>,
    /// Bytes received so far.
    received: Arc<AtomicU64>,
}

/// Attempts of an HTTP-baseline fetch.
pub(crate) const HTTP_ATTEMPTS: u32 = 20;
/// Pause between them.
pub(crate) const HTTP_RETRY: Duration = Duration::from_millis(250);

pub(crate) enum ViewerEvent {
    FirstPeer(u64, Duration),
    FirstPiece(u64, Duration),
    Complete(u64),
    Http(u64, Result<u64, fallback::FetchError>),
    /// Time to sample the swarm for the live figures ([`crate::live::TICK`]).
    Tick,
    /// The lookup of the stream's peer key found peers ([`crate::carried::look_up_peer_key`]).
    PeersFound,
}

/// The viewer: `S` its swarm, `H` its HTTP client for segments, `K` its sink.
pub(crate) struct Viewer<S: SegmentSwarm, H, K> {
    pub(crate) config: WatchConfig,
    pub(crate) swarm: Arc<S>,
    pub(crate) dir: PathBuf,
    pub(crate) recorder: Recorder,
    pub(crate) scheduler: Scheduler,
    pub(crate) segs: BTreeMap<u64, ViewerSegment<S::Torrent>>,
    pub(crate) latest: Option<Arc<SignedManifest>>,
    /// The HTTP source of the newest manifest that came over HTTP (segment fallbacks go there).
    pub(crate) source: Option<Url>,
    pub(crate) http: H,
    /// The download limit for HTTP fetches (librqbit has its own).
    pub(crate) limiter: Option<Arc<ByteLimiter>>,
    pub(crate) ev_tx: mpsc::Sender<ViewerEvent>,
    pub(crate) sink: K,
    /// Where the viewer's tasks are spawned (segment watchers, HTTP fetches, clean-ups).
    pub(crate) tasks: Tasks,
    pub(crate) origin: Instant,
    pub(crate) summary: WatchSummary,
    /// What the viewer is doing now, for its readers.
    pub(crate) live: Live,
    /// The download rate's samples.
    pub(crate) rate: RateMeter,
    /// The manifest exchange: every manifest accepted is offered to it (`None`: HTTP only).
    pub(crate) exchange: Option<swarmcast_swarm::exchange::Exchange>,
    /// What the DHT finder reads: the newest manifest held.
    pub(crate) held: Arc<crate::carried::Held>,
    /// Documents refused that came from the link's sources (not from peers or the DHT).
    pub(crate) http_refused: u64,
    /// The peers carried from segment to segment.
    pub(crate) carry: Carry,
    /// What the lookups of the stream's peer key found ([`crate::carried::look_up_peer_key`]).
    pub(crate) found: Arc<std::sync::Mutex<crate::carried::Found>>,
}

pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<S: SegmentSwarm, H: SegmentFetch, K> Viewer<S, H, K> {
    pub(crate) fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub(crate) fn on_poll(&mut self, event: PollEvent) -> Result<(), WatchError> {
        match event {
            PollEvent::Manifest {
                manifest,
                source,
                mode,
                fetched,
                delta,
            } => {
                let m = &manifest.manifest;
                self.summary.manifest_bytes += fetched;
                // Several sources (HTTP, peers, the DHT) each verify what they take; only a
                // newer manifest than the one held moves the viewer on.
                if self
                    .latest
                    .as_ref()
                    .is_some_and(|l| l.manifest.seq >= m.seq)
                {
                    return Ok(());
                }
                if let Some(exchange) = &self.exchange {
                    exchange.offer(manifest.bytes.clone().into());
                }
                self.held
                    .seq
                    .store(m.seq, std::sync::atomic::Ordering::Relaxed);
                self.held
                    .target_ms
                    .store(m.target_duration / 90, std::sync::atomic::Ordering::Relaxed);
                self.held
                    .ended
                    .store(m.end_of_stream, std::sync::atomic::Ordering::Relaxed);
                self.recorder.record(
                    None,
                    Kind::ManifestFetched {
                        seq: m.seq,
                        bytes: fetched,
                        delta,
                        mode: mode.into(),
                    },
                );
                let stale_after = (3 * m.target_duration / 90).max(30_000);
                if !m.end_of_stream && wall_ms().saturating_sub(m.issued_ms) > stale_after {
                    tracing::warn!(
                        seq = m.seq,
                        age_ms = wall_ms().saturating_sub(m.issued_ms),
                        "the newest manifest is old: the feed may be frozen or replayed"
                    );
                }
                let first = self.latest.is_none();
                let learned = self.scheduler.on_manifest(m);
                if first {
                    let newest = m.segments.last().map_or(0, |s| s.number);
                    self.summary.newest_at_join = Some(newest);
                    self.summary.joined_at = self.scheduler.next_play();
                    self.recorder
                        .record(self.scheduler.next_play(), Kind::Joined { newest });
                }
                for n in learned {
                    if let Some(entry) = m.segments.iter().find(|s| s.number == n) {
                        self.recorder.record(
                            Some(n),
                            Kind::Learned {
                                seq: m.seq,
                                published_ms: entry.published_ms,
                            },
                        );
                        self.segs.insert(
                            n,
                            ViewerSegment {
                                entry: entry.clone(),
                                torrent: None,
                                watcher: None,
                                added: None,
                                first_piece_seen: false,
                                complete: false,
                                uploaded_before: 0,
                                reported: (0, 0),
                                fallback: None,
                            },
                        );
                    }
                }
                let (target, end) = (m.target_duration, m.end_of_stream);
                self.live.update(|s| {
                    s.manifests += 1;
                    s.target_duration.get_or_insert(target);
                    s.end_of_stream = end;
                });
                if !crate::carried::is_peer(&source) {
                    self.source = Some(source);
                }
                self.latest = Some(manifest);
            }
            PollEvent::Refused { error, source } => {
                self.summary.manifests_refused += 1;
                self.recorder.record(
                    None,
                    Kind::ManifestRefused {
                        reason: error.to_string(),
                    },
                );
                // A peer's forgery does not make the viewer give up on the stream (any peer can
                // send one, and the next peer may have the real manifest): only refusals of the
                // link's own sources count.
                if !crate::carried::is_peer(&source) {
                    self.http_refused += 1;
                }
                if self.latest.is_none() && self.http_refused >= REFUSALS_BEFORE_GIVING_UP {
                    return Err(WatchError::Refused(error));
                }
            }
            PollEvent::Unreachable { .. } => {}
        }
        Ok(())
    }

    pub(crate) async fn on_event(&mut self, ev: ViewerEvent) {
        match ev {
            ViewerEvent::FirstPeer(n, since) => {
                self.recorder.record(
                    Some(n),
                    Kind::FirstPeer {
                        since_added_us: since.as_micros() as u64,
                    },
                );
            }
            ViewerEvent::FirstPiece(n, since) => {
                if let Some(seg) = self.segs.get_mut(&n) {
                    if !seg.first_piece_seen {
                        seg.first_piece_seen = true;
                        self.summary.setup_ms.push(since.as_secs_f64() * 1000.0);
                        self.live
                            .update(|s| s.last_setup_ms = Some(since.as_secs_f64() * 1000.0));
                        self.summary
                            .published_to_first_piece_ms
                            .push(wall_ms().saturating_sub(seg.entry.published_ms) as f64);
                        self.recorder.record(
                            Some(n),
                            Kind::FirstPiece {
                                since_added_us: since.as_micros() as u64,
                            },
                        );
                    }
                }
            }
            ViewerEvent::Complete(n) => self.complete_from_swarm(n),
            ViewerEvent::Http(n, result) => self.http_done(n, result).await,
            ViewerEvent::Tick => {
                self.dial_found();
                self.sample_live();
            }
            ViewerEvent::PeersFound => self.dial_found(),
        }
        self.sync_live();
    }

    /// Lists segment `n` as verified in the live state (its file is in place).
    pub(crate) fn live_verified(&self, n: u64) {
        if let Some(seg) = self.segs.get(&n) {
            let e = &seg.entry;
            self.live.verified(LiveSegment {
                number: n,
                duration: e.duration,
                discontinuity: e.discontinuity,
                published_ms: e.published_ms,
                size: e.size,
                path: self.dir.join(format!("{n:08}.ts")),
            });
        }
    }

    /// Samples the swarm: the peers traded with, connections open now, and the download rate.
    fn sample_live(&mut self) {
        let (mut peers, mut connections, mut pending) = (0, 0, 0);
        let publishers = self.publisher_addrs();
        for seg in self.segs.values() {
            if let Some(t) = &seg.torrent {
                let s = self.swarm.stats(t);
                connections += s.live_peers;
                if !seg.complete {
                    pending += s.fetched;
                }
                let traded = self
                    .swarm
                    .peer_bytes(t)
                    .into_iter()
                    .filter(|p| (p.fetched > 0 || p.uploaded > 0) && !publishers.contains(&p.addr))
                    .count() as u64;
                peers = peers.max(traded);
            }
            if let Some(f) = &seg.fallback {
                pending += f.received.load(Ordering::Relaxed);
            }
        }
        let sum = &self.summary;
        let total = sum.from_publisher + sum.from_peers + sum.from_http + pending;
        let rate = self.rate.sample(self.now_ms(), total);
        self.live.update(|s| {
            s.peers = peers;
            s.connections = connections;
            s.download_rate = rate;
        });
    }

    /// Copies the summary's and the scheduler's figures into the live state.
    pub(crate) fn sync_live(&self) {
        let (sum, stats) = (&self.summary, self.scheduler.stats());
        let next = self.scheduler.next_play();
        self.live.update(|s| {
            s.playing = sum.played.last().copied();
            s.played = sum.played.len() as u64;
            s.bytes_out = sum.bytes_out;
            s.from_publisher = sum.from_publisher;
            s.from_peers = sum.from_peers;
            s.from_http = sum.from_http;
            s.uploaded = sum.uploaded;
            s.stalls = stats.stalls;
            s.stall_ms = stats.stall_ms;
            s.fallbacks = stats.fallbacks;
            s.skipped = sum.skipped.len() as u64 + sum.skipped_unlisted;
            s.manifest_bytes = sum.manifest_bytes;
            s.manifests_refused = sum.manifests_refused;
            s.buffer_ahead_ms = crate::live::buffer_ahead_ms(&s.segments, next);
        });
    }

    pub(crate) fn publisher_addrs(&self) -> Vec<String> {
        self.latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.peers.clone())
    }

    /// Payload bytes received by `t` so far: (from the publisher, from other peers).
    fn received(&self, t: &S::Torrent) -> (u64, u64) {
        self.tally(t).0
    }

    /// One read of `t`'s per-peer counters: the bytes of [`Self::received`], and (outgoing
    /// connection attempts, connections that ended in an error, failed dials).
    fn tally(&self, t: &S::Torrent) -> ((u64, u64), (u64, u64, u64)) {
        let publishers = self.publisher_addrs();
        let (mut received, mut connections) = ((0, 0), (0, 0, 0));
        for p in self.swarm.peer_bytes(t) {
            if publishers.contains(&p.addr) {
                received.0 += p.fetched;
            } else {
                received.1 += p.fetched;
            }
            connections.0 += p.connection_attempts;
            connections.1 += p.errors;
            connections.2 += p.failed_dials;
        }
        (received, connections)
    }

    pub(crate) fn complete_from_swarm(&mut self, n: u64) {
        let tally = match self.segs.get(&n) {
            Some(seg) if !seg.complete => seg.torrent.as_ref().map(|t| self.tally(t)),
            _ => return,
        };
        let (received, connections) = (tally.map(|t| t.0), tally.map(|t| t.1));
        let Some(seg) = self.segs.get_mut(&n) else {
            return;
        };
        seg.complete = true;
        let superseded = seg.fallback.take();
        let (from_publisher, from_peers) = received.unwrap_or_default();
        seg.reported = (from_publisher, from_peers);
        self.summary.from_publisher += from_publisher;
        self.summary.from_peers += from_peers;
        let since = seg.added.map_or(0, |a| a.elapsed().as_micros() as u64);
        self.recorder.record(
            Some(n),
            Kind::Completed {
                since_added_us: since,
                via: "swarm".into(),
                from_publisher,
                from_peers,
                from_http: 0,
                connect_attempts: connections.map(|c| c.0),
                connect_errors: connections.map(|c| c.1),
                failed_dials: connections.map(|c| c.2),
            },
        );
        if let Some(f) = superseded {
            // The swarm won the race: stop the fetch (its connection closes, and the publisher
            // stops sending) and count what it had received.
            stop_fallback(&self.recorder, n, f, true);
            let temp = fallback::temp_path(&self.dir, n);
            self.tasks.spawn("remove-fallback-file", async move {
                let _ = tokio::fs::remove_file(temp).await;
            });
        }
        let now = self.now_ms();
        self.scheduler.on_complete(n, now);
        self.live_verified(n);
    }

    pub(crate) fn torrent_bytes(&self, entry: &SegmentEntry) -> Vec<u8> {
        let trackers = self
            .latest
            .as_ref()
            .map_or_else(Vec::new, |m| m.manifest.trackers.clone());
        let info =
            InfoDict::decode_strict(&entry.info).expect("verified manifests hold valid info");
        SegmentTorrent::from_info(info, trackers).to_torrent_bytes()
    }

    /// How segment `n` is downloaded: the publisher's addresses (`publisher`), and on the DHT
    /// path the peers carried from earlier segments (and found under the stream's peer key)
    /// and whether the DHT looks the segment up ([`swarmcast_core::carry`]). Carried only with
    /// the manifest exchange on (it knows where peers listen) and no tracker in the manifest (a
    /// tracker chooses who meets whom: behind NAT, reachable uplinks; carrying would undo
    /// that, as PEX would).
    pub(crate) fn download_plan(&mut self, n: u64, publisher: Vec<SocketAddr>) -> Download {
        let mut how = Download {
            initial_peers: publisher,
            upload_rank: self.config.urgent_first.then_some(n),
            ..Default::default()
        };
        if self.config.dht_in_effect().is_none() {
            return how;
        }
        let no_tracker = self
            .latest
            .as_ref()
            .is_some_and(|m| m.manifest.trackers.is_empty());
        let exchange = self
            .exchange
            .as_ref()
            .filter(|_| no_tracker && self.config.carry_peers);
        let Some(exchange) = exchange else {
            self.summary.dht_lookups += 1;
            return how;
        };
        let live = exchange.live_peers();
        self.dial_found();
        let plan = self.carry.plan(&live, Instant::now().into_std());
        for p in plan.peers {
            if !how.initial_peers.contains(&p) {
                how.initial_peers.push(p);
            }
        }
        how.skip_dht = !plan.lookup;
        how.reconnect_first_wait = Some(swarmcast_core::carry::RECONNECT_FIRST_WAIT);
        if plan.lookup {
            self.summary.dht_lookups += 1;
        } else {
            self.summary.dht_skipped += 1;
        }
        tracing::debug!(
            segment = n,
            live = live.len(),
            dialled = how.initial_peers.len(),
            lookup = plan.lookup,
            "peers carried"
        );
        how
    }

    /// Peers the stream's peer key found since the last call: carried from now on, and dialled
    /// at once for every segment downloading (a newcomer's first segments were added before
    /// its lookup answered: alone with the publisher there, it would hold the only copy of the
    /// pieces the publisher's super-seeding gives it, and nobody would fetch them from it).
    pub(crate) fn dial_found(&mut self) {
        let peers = std::mem::take(&mut self.found.lock().unwrap_or_else(|e| e.into_inner()).fresh);
        if peers.is_empty() {
            return;
        }
        self.carry.found(&peers, Instant::now().into_std());
        let mut dialled = 0;
        for seg in self.segs.values().filter(|s| !s.complete) {
            if let Some(t) = &seg.torrent {
                dialled += self.swarm.add_peers(t, &peers);
            }
        }
        tracing::debug!(
            found = peers.len(),
            dialled,
            "peers found under the stream's peer key"
        );
    }

    /// The publisher's addresses from the manifest, names resolved (each within
    /// [`DNS_TIMEOUT`]).
    pub(crate) async fn initial_peers(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for p in self.publisher_addrs() {
            match p.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                // Bounded: a resolver that does not answer must not hold the watch loop (and
                // with it playback); the segment is added without that peer.
                Err(_) => {
                    match tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host(p.as_str()))
                        .await
                    {
                        Ok(Ok(addrs)) => out.extend(addrs),
                        Ok(Err(e)) => {
                            tracing::warn!(peer = %p, error = %e, "cannot resolve the publisher's address")
                        }
                        Err(_) => tracing::warn!(
                            peer = %p,
                            timeout_ms = DNS_TIMEOUT.as_millis() as u64,
                            "resolving the publisher's address timed out"
                        ),
                    }
                }
            }
        }
        out
    }
}

/// Stops segment `n`'s fallback fetch under way and records what it had received
/// (`superseded`: the swarm completed the segment first).
fn stop_fallback(recorder: &Recorder, n: u64, f: Fallback, superseded: bool) {
    f.task.abort();
    recorder.record(
        Some(n),
        Kind::HttpFallback {
            bytes: f.received.load(Ordering::Relaxed),
            ok: false,
            superseded,
            refused: false,
        },
    );
}
